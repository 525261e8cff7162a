"""E4's seen accuracy, split by how many training examples each seen rule had.

    python seen_by_count.py runs/e4-cpu/results.sqlite > SEEN_BY_COUNT.md

The seen test draws its inputs uniformly over the training rules, whatever the spread, so a
rule the power law gave one training example counts as much as one that had a hundred. Under
a steep spread (alpha = 0.03) many rules have one or two examples, and answering fresh inputs
of such a rule asks the model to generalise much as for an unseen rule. For each finished run
this reads what the run already wrote (no model is loaded): the per-rule seen accuracies of
its evaluation (`eval-seen_test-fast.json`) and the training examples per rule
(`train.jsonl`). It prints the seen accuracy as recorded (uniform over rules), the same
accuracies weighted by each rule's share of the training examples (the training
distribution), and the accuracy by training-count bucket.
"""

import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

BUCKETS = ((1, 2), (3, 9), (10, 99), (100, None))  # training examples of a rule, inclusive


def bucket_of(count: int) -> tuple:
    return next(b for b in BUCKETS if count >= b[0] and (b[1] is None or count <= b[1]))


def bucket_name(bucket: tuple) -> str:
    low, high = bucket
    return f"{low}+" if high is None else f"{low}-{high}"


def run_rows(database: Path) -> list[dict]:
    """Every finished run: factors, seed, recorded seen accuracy, run and data directories."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    query = "SELECT factors, seed, seen_accuracy, run_dir, data_dir FROM points WHERE status='done'"
    rows = []
    for factors, seed, seen, run_dir, data_dir in connection.execute(query):
        rows.append({"factors": json.loads(factors), "seed": seed, "seen": seen,
                     "run_dir": Path(run_dir), "data_dir": Path(data_dir)})  # fmt: skip
    connection.close()
    return sorted(rows, key=lambda r: (r["factors"]["dataset.train.instructions"],
                                       r["factors"]["spread"], r["seed"]))  # fmt: skip


def split_rules(path: Path) -> list[tuple[int, tuple[str, str]]]:
    """(instruction id, rule as (x, y)) of every example of a split. The seen test numbers
    its rules afresh (the training rules a spread left without examples are not in it), so
    rules are matched across splits by (x, y), never by id."""
    with open(path, encoding="utf-8") as lines:
        return [(r["instruction"], (r["x"], r["y"])) for r in map(json.loads, lines)]


def seen_by_count(row: dict) -> dict:
    """The run's seen accuracy uniform over rules, weighted by training share, and by bucket."""
    counts = Counter(rule for _, rule in split_rules(row["data_dir"] / "train.jsonl"))
    seen_rules = dict(split_rules(row["data_dir"] / "seen_test.jsonl"))  # its ids are its own
    evaluation = json.loads((row["run_dir"] / "eval-seen_test-fast.json").read_text())
    by_rule = {seen_rules[int(k)]: v for k, v in evaluation["by_instruction"].items()}
    share = sum(counts[rule] for rule in by_rule)
    weighted = sum(counts[rule] * v["accuracy"] for rule, v in by_rule.items()) / share
    buckets = {}
    if min(counts[rule] for rule in by_rule) < 1:
        raise SystemExit(f"{row['data_dir']}: a seen rule has no training example")
    for bucket in BUCKETS:
        rules = [v for rule, v in by_rule.items() if bucket_of(counts[rule]) == bucket]
        examples = sum(v["examples"] for v in rules)
        correct = sum(v["accuracy"] * v["examples"] for v in rules)
        buckets[bucket] = (correct / examples, len(rules)) if examples else None
    return {"uniform": evaluation["overall"]["accuracy"], "weighted": weighted,
            "buckets": buckets, "rules": len(by_rule)}  # fmt: skip


def cell(bucket: tuple | None) -> str:
    """A bucket's accuracy and rule count, or a dash when no seen rule falls in it."""
    if bucket is None:
        return "–"
    accuracy, rules = bucket
    return f"{accuracy:.2f} ({rules} rules)"


def main(database: str) -> None:
    heads = [f"rules with {bucket_name(b)} examples" for b in BUCKETS]
    print("| I | spread | seed | rules | seen (uniform over rules, as recorded) "
          "| seen (weighted by training examples) | " + " | ".join(heads) + " |")  # fmt: skip
    print("|---" * (6 + len(BUCKETS)) + "|")
    for row in run_rows(Path(database)):
        found = seen_by_count(row)
        if abs(found["uniform"] - row["seen"]) > 1e-9:
            raise SystemExit(f"{row['run_dir']}: its evaluation file disagrees with the database")
        cells = [cell(found["buckets"][bucket]) for bucket in BUCKETS]
        factors = row["factors"]
        print(f"| {factors['dataset.train.instructions']} | {factors['spread']} | {row['seed']} "
              f"| {found['rules']} | {found['uniform']:.3f} | {found['weighted']:.3f} | "
              + " | ".join(cells) + " |")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
