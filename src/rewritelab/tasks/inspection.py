"""Statistics and integrity checks of a generated dataset (`rewritelab inspect`).

Reads every split back from disk and reports what it really contains (instructions, examples
per instruction, no-op share, occurrence, family and length distributions), then checks what
must hold: file hashes match the manifest, every output is the exact rewrite of its input,
`noop` and `occurrences` agree with the input, train and test rules are disjoint, and the
seen-instruction test split only uses training rules. Datasets of the algorithm task
(`task = "markov"`) get their own statistics and checks (`inspect_algorithm_dataset`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.datasets import SPLIT_FILES, read_manifest, read_records
from rewritelab.tasks.near_misses import is_near_miss
from rewritelab.tasks.rules import MarkovAlgorithm, Rule, count_occurrences, rewrite


@dataclass
class SplitStatistics:
    """What one split file holds, accumulated record by record."""

    examples: int = 0
    noops: int = 0
    wrong_records: int = 0
    per_instruction: Counter = field(default_factory=Counter)
    occurrences: Counter = field(default_factory=Counter)
    families: Counter = field(default_factory=Counter)
    k_values: Counter = field(default_factory=Counter)
    lengths: dict[str, list[int]] = field(default_factory=lambda: {"x": [], "y": [], "z": []})
    pairs: set[tuple[str, str]] = field(default_factory=set)
    near_miss_kinds: Counter = field(default_factory=Counter)  # planted kinds ("none": none)
    wrong_near_misses: int = 0
    multi_letter: int = 0  # examples whose x has two or more letters
    one_letter_off: int = 0  # of those, inputs holding a window one letter away from x

    def add(self, record: dict) -> None:
        x, y, z = record["x"], record["y"], record["z"]
        occurrences = count_occurrences(x, z)
        consistent = (
            record["output"] == rewrite(x, y, z)
            and record["occurrences"] == occurrences
            and record["noop"] == (occurrences == 0)
        )
        self.wrong_records += not consistent
        self.examples += 1
        self.noops += record["noop"]
        self.per_instruction[record["instruction"]] += 1
        self.occurrences[record["occurrences"]] += 1
        self.families[record["family"]] += 1
        self.k_values[record["k"]] += 1
        for name in ("x", "y", "z"):
            self.lengths[name].append(len(record[name]))
        self.pairs.add((x, y))
        if len(x) >= 2:
            self.multi_letter += 1
            self.one_letter_off += has_one_letter_off(x, z)
        if "near_miss_kind" in record:
            kind = record["near_miss_kind"]
            self.near_miss_kinds[kind or "none"] += 1
            self.wrong_near_misses += kind is not None and not planted_near_miss_holds(record)

    def summary(self) -> dict:
        counts = np.array(list(self.per_instruction.values()) or [0])
        return {
            "examples": self.examples,
            "instructions": len(self.per_instruction),
            "examples_per_instruction": _describe(counts),
            "noop_share": self.noops / max(1, self.examples),
            "occurrences": dict(sorted(self.occurrences.items())),
            "families": dict(sorted(self.families.items())),
            "k": {
                str(k): v
                for k, v in sorted(
                    self.k_values.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
                )
            },
            "lengths": {name: _describe(np.array(v or [0])) for name, v in self.lengths.items()},
            "wrong_records": self.wrong_records,
            "near_miss_kinds": dict(sorted(self.near_miss_kinds.items())),
            "one_letter_off_share": self.one_letter_off / max(1, self.multi_letter),
            "wrong_near_misses": self.wrong_near_misses,
        }


def has_one_letter_off(x: str, z: str) -> bool:
    """Whether `z` holds a window of |x| letters that differs from x in exactly one letter."""
    return any(
        sum(a != b for a, b in zip(x, z[i : i + len(x)], strict=True)) == 1
        for i in range(len(z) - len(x) + 1)
    )


def planted_near_miss_holds(record: dict) -> bool:
    """A record's planted near-miss is of its kind, is not x, and stands in z where it should
    (an overlap glued to the first x); the occurrence count is checked with the record."""
    x, z, text, kind = record["x"], record["z"], record["near_miss"], record["near_miss_kind"]
    if not isinstance(text, str) or not is_near_miss(x, text, kind) or text not in z:
        return False
    if kind != "overlap" or x not in z:
        return True
    first = z.find(x)
    return z[first - len(text) : first] == text or z[first + len(x) :].startswith(text)


def _describe(values: np.ndarray) -> dict:
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 3),
        "max": int(values.max()),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inspect_dataset(data_dir: str | Path) -> dict:
    """Statistics per split plus the integrity checks, as plain data."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    if manifest.get("config", {}).get("task") == "markov":
        return inspect_algorithm_dataset(data_dir, manifest)
    splits: dict[str, SplitStatistics] = {}
    checks: dict[str, bool] = {}
    for name, filename in SPLIT_FILES.items():
        path = data_dir / filename
        if not path.is_file():
            raise RewritelabError(f"{data_dir} has no {filename}")
        expected = manifest.get("files", {}).get(filename, {}).get("sha256")
        checks[f"{filename} matches manifest hash"] = expected == _sha256(path)
        splits[name] = SplitStatistics()
        try:
            for record in read_records(path):
                splits[name].add(record)
        except (ValueError, KeyError, TypeError) as error:  # ValueError: bad JSON or UTF-8
            raise RewritelabError(
                f"{path} is damaged (truncated or edited?): {type(error).__name__}: {error}"
            ) from None
    train, test, seen = splits["train"], splits["test"], splits["seen_test"]
    checks["every record is exact (output, noop, occurrences)"] = all(
        s.wrong_records == 0 for s in splits.values()
    )
    if any(s.near_miss_kinds for s in splits.values()):
        checks["every planted near-miss is of its kind, not x, and in z"] = all(
            s.wrong_near_misses == 0 for s in splits.values()
        )
    checks["train and test rules are disjoint"] = not (train.pairs & test.pairs)
    shared_patterns = {x for x, _ in train.pairs} & {x for x, _ in test.pairs}
    if manifest.get("config", {}).get("disjoint") == "patterns":
        checks["train and test patterns are disjoint"] = not shared_patterns
    checks["train and test instruction ids are disjoint"] = not (
        set(train.per_instruction) & set(test.per_instruction)
    )
    checks["seen_test uses training rules only"] = seen.pairs <= train.pairs
    return {
        "directory": str(data_dir),
        "seed": manifest.get("seed"),
        "version": manifest.get("version"),
        "disjoint": manifest.get("config", {}).get("disjoint"),
        "test_patterns_seen_in_train": len(shared_patterns),
        "splits": {name: stats.summary() for name, stats in splits.items()},
        "checks": checks,
    }


def format_inspection(report: dict) -> str:
    """A readable text rendering of `inspect_dataset`'s report."""
    if report.get("task") == "markov":
        return format_algorithm_inspection(report)
    lines = [
        f"dataset {report['directory']} (seed {report['seed']}, rewritelab {report['version']})"
    ]
    for name, s in report["splits"].items():
        per, length = s["examples_per_instruction"], s["lengths"]
        lines += [
            f"\n[{name}] {s['examples']} examples, {s['instructions']} instructions",
            f"  examples per instruction: min {per['min']}, median {per['median']:g}, "
            f"mean {per['mean']:g}, max {per['max']}",
            f"  no-op share: {s['noop_share']:.4f}",
            f"  occurrences of x: {_histogram(s['occurrences'])}",
            f"  families: {_histogram(s['families'])}; k: {_histogram(s['k'])}",
        ]
        if s["near_miss_kinds"]:
            lines.append(f"  near-misses planted: {_histogram(s['near_miss_kinds'])}")
        lines.append(
            f"  inputs with a window one letter off x (|x| >= 2): {s['one_letter_off_share']:.1%}"
        )
        for side in ("x", "y", "z"):
            d = length[side]
            lines.append(f"  |{side}|: min {d['min']}, mean {d['mean']:g}, max {d['max']}")
    lines.append(
        f"\ntest rules disjoint from train by {report['disjoint']}; "
        f"test patterns also used by a training rule: {report['test_patterns_seen_in_train']}"
    )
    lines.append("checks:")
    lines += [
        f"  [{'ok' if passed else 'FAIL'}] {check}" for check, passed in report["checks"].items()
    ]
    return "\n".join(lines)


def _histogram(counts: dict) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{key}: {value} ({value / total:.1%})" for key, value in counts.items())


# ---------------------------------------------------------------- the algorithm task


def _algorithm_key(record: dict) -> tuple:
    return tuple((rule["x"], rule["y"], rule["terminal"]) for rule in record["rules"])


@dataclass
class AlgorithmStatistics:
    """What one split file of the algorithm task holds, each record re-run by the interpreter."""

    max_steps: int
    markers: str
    examples: int = 0
    noops: int = 0
    wrong_records: int = 0
    marked_records: int = 0
    algorithms: dict[int, set[tuple]] = field(default_factory=dict)  # id -> rule lists seen
    per_algorithm: Counter = field(default_factory=Counter)
    steps: Counter = field(default_factory=Counter)
    halts: Counter = field(default_factory=Counter)
    lengths: dict[str, list[int]] = field(default_factory=lambda: {"input": [], "output": []})

    def add(self, record: dict) -> None:
        key = _algorithm_key(record)
        algorithm = MarkovAlgorithm(tuple(Rule(x, y, terminal) for x, y, terminal in key))
        run = algorithm.run(record["input"], max_steps=self.max_steps, trace=True)
        trace = [step.word for step in run.trace]
        expected = {
            "rule_count": len(key),
            "output": run.output,
            "step_output": trace[0] if trace else record["input"],
            "noop": run.steps == 0,
            "steps": run.steps,
            "halt": run.halt.name.lower(),
            "trace": trace,
        }
        self.wrong_records += not run.finished or any(record[k] != v for k, v in expected.items())
        self.marked_records += any(m in record["input"] + record["output"] for m in self.markers)
        self.examples += 1
        self.noops += record["noop"]
        self.algorithms.setdefault(record["algorithm"], set()).add(key)
        self.per_algorithm[record["algorithm"]] += 1
        self.steps[record["steps"]] += 1
        self.halts[record["halt"]] += 1
        for name in ("input", "output"):
            self.lengths[name].append(len(record[name]))

    @property
    def rule_lists(self) -> set[tuple]:
        return set().union(*self.algorithms.values())

    @property
    def rules(self) -> set[tuple[str, str]]:
        return {(x, y) for key in self.rule_lists for x, y, _ in key}

    def summary(self) -> dict:
        counts = np.array(list(self.per_algorithm.values()) or [0])
        rules = Counter(len(key) for key in self.rule_lists)
        return {
            "examples": self.examples,
            "algorithms": len(self.algorithms),
            "examples_per_algorithm": _describe(counts),
            "rules_per_algorithm": dict(sorted(rules.items())),
            "steps": dict(sorted(self.steps.items())),
            "halt": dict(sorted(self.halts.items())),
            "noop_share": self.noops / max(1, self.examples),
            "lengths": {name: _describe(np.array(v or [0])) for name, v in self.lengths.items()},
            "wrong_records": self.wrong_records,
        }


def inspect_algorithm_dataset(data_dir: Path, manifest: dict) -> dict:
    """Statistics and checks of an algorithm-task dataset: every record re-run, splits disjoint."""
    config = manifest.get("config", {})
    markers = "".join(config.get(name, {}).get("markers", "") for name in ("train", "test"))
    max_steps = {name: config.get(name, {}).get("max_steps", 0) for name in ("train", "test")}
    files = manifest.get("files", {})
    checks: dict[str, bool] = {}
    splits: dict[str, AlgorithmStatistics] = {}
    for filename in files:
        path = data_dir / filename
        if not path.is_file():
            raise RewritelabError(f"{data_dir} has no {filename}")
        checks[f"{filename} matches manifest hash"] = files[filename].get("sha256") == _sha256(path)
        name = filename.removesuffix(".jsonl")
        split_steps = max_steps["train" if name in ("train", "seen_test") else "test"]
        splits[name] = AlgorithmStatistics(split_steps, markers)
        for record in read_records(path):
            splits[name].add(record)
    checks.update(_algorithm_checks(splits, config.get("disjoint")))
    return {
        "task": "markov",
        "directory": str(data_dir),
        "seed": manifest.get("seed"),
        "version": manifest.get("version"),
        "disjoint": config.get("disjoint"),
        "classic": manifest.get("classic", {}),
        "splits": {name: stats.summary() for name, stats in splits.items()},
        "checks": checks,
    }


def _algorithm_checks(splits: dict[str, AlgorithmStatistics], disjoint: str | None) -> dict:
    missing = {"train", "seen_test", "test"} - set(splits)
    if missing:
        raise RewritelabError(f"the manifest lists no {sorted(missing)[0]}.jsonl")
    train, test = splits["train"], splits["test"]
    names: dict[int, set[tuple]] = {}  # id -> rule lists, over every file
    for stats in splits.values():
        for algorithm_id, keys in stats.algorithms.items():
            names.setdefault(algorithm_id, set()).update(keys)
    unheld = [s for name, s in splits.items() if name not in ("train", "seen_test")]
    checks = {
        "every record re-runs exactly (output, step_output, trace, steps, halt, noop)": all(
            s.wrong_records == 0 for s in splits.values()
        ),
        "inputs and outputs hold no markers": all(s.marked_records == 0 for s in splits.values()),
        "an algorithm id names one rule list": all(len(keys) == 1 for keys in names.values()),
        "test algorithms are absent from training": not (train.rule_lists & test.rule_lists),
        "train and test algorithm ids are disjoint": not (
            set(train.algorithms) & set(test.algorithms)
        ),
        "seen_test uses training algorithms only": splits["seen_test"].rule_lists
        <= train.rule_lists,
    }
    if "classic" in splits:
        checks["classic algorithms are absent from training"] = not (
            train.rule_lists & splits["classic"].rule_lists
        )
    if disjoint == "rules":
        checks["test rules are absent from training"] = not any(
            train.rules & s.rules for s in unheld
        )
    return checks


def format_algorithm_inspection(report: dict) -> str:
    """A readable text rendering of `inspect_algorithm_dataset`'s report."""
    lines = [
        f"algorithm dataset {report['directory']} (seed {report['seed']}, "
        f"rewritelab {report['version']})"
    ]
    for name, s in report["splits"].items():
        per, length = s["examples_per_algorithm"], s["lengths"]
        lines += [
            f"\n[{name}] {s['examples']} examples, {s['algorithms']} algorithms",
            f"  examples per algorithm: min {per['min']}, median {per['median']:g}, "
            f"mean {per['mean']:g}, max {per['max']}",
            f"  rules per algorithm: {_histogram(s['rules_per_algorithm'])}",
            f"  steps: {_histogram(s['steps'])}",
            f"  halt: {_histogram(s['halt'])}; no-op share: {s['noop_share']:.4f}",
        ]
        for side in ("input", "output"):
            d = length[side]
            lines.append(f"  |{side}|: min {d['min']}, mean {d['mean']:g}, max {d['max']}")
    classic = report["classic"]
    lines.append(
        f"\ntest algorithms disjoint from train by {report['disjoint']}; classic: "
        + (", ".join(classic.get("used", {}).values()) or classic.get("note", "none"))
    )
    lines.append("checks:")
    lines += [
        f"  [{'ok' if passed else 'FAIL'}] {check}" for check, passed in report["checks"].items()
    ]
    return "\n".join(lines)
