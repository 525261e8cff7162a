"""`inspect` for algorithm-task datasets: every record re-run by the interpreter, splits
checked disjoint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.rules import MarkovAlgorithm, Rule
from rewritelab.tasks.statistics import (
    check_lines,
    describe,
    histogram,
    length_lines,
    split_header,
)
from rewritelab.tasks.storage import file_sha256, read_records


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
    def unmarked_lists(self) -> set[tuple]:
        """The rule lists without their terminal marks."""
        return {tuple((x, y) for x, y, _ in key) for key in self.rule_lists}

    @property
    def rules(self) -> set[tuple[str, str]]:
        return {(x, y) for key in self.rule_lists for x, y, _ in key}

    def summary(self) -> dict:
        counts = np.array(list(self.per_algorithm.values()) or [0])
        rules = Counter(len(key) for key in self.rule_lists)
        return {
            "examples": self.examples,
            "algorithms": len(self.algorithms),
            "examples_per_algorithm": describe(counts),
            "rules_per_algorithm": dict(sorted(rules.items())),
            "steps": dict(sorted(self.steps.items())),
            "halt": dict(sorted(self.halts.items())),
            "noop_share": self.noops / max(1, self.examples),
            "lengths": {name: describe(np.array(v or [0])) for name, v in self.lengths.items()},
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
        checks[f"{filename} matches manifest hash"] = files[filename].get("sha256") == file_sha256(
            path
        )
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
        "test_equal_to_training_up_to_terminal_marks": _share_equal_unmarked(splits),
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
        "test algorithms differ from training ones with terminal marks removed": not (
            train.unmarked_lists & test.unmarked_lists
        ),
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


def _share_equal_unmarked(splits: dict[str, AlgorithmStatistics]) -> float:
    """The share of test algorithms whose rule list, terminal marks removed, is a training
    algorithm's (0 in every dataset rewritelab generates)."""
    if "train" not in splits or "test" not in splits:
        return 0.0
    test = splits["test"].unmarked_lists
    return len(test & splits["train"].unmarked_lists) / max(1, len(test))


def format_algorithm_inspection(report: dict) -> str:
    """A readable text rendering of `inspect_algorithm_dataset`'s report."""
    lines = [
        f"algorithm dataset {report['directory']} (seed {report['seed']}, "
        f"rewritelab {report['version']})"
    ]
    for name, s in report["splits"].items():
        lines += [
            *split_header(name, s, "algorithm", "algorithms"),
            f"  rules per algorithm: {histogram(s['rules_per_algorithm'])}",
            f"  steps: {histogram(s['steps'])}",
            f"  halt: {histogram(s['halt'])}; no-op share: {s['noop_share']:.4f}",
        ]
        lines += length_lines(s["lengths"], ("input", "output"))
    classic = report["classic"]
    equal = report["test_equal_to_training_up_to_terminal_marks"]
    lines.append(
        f"\ntest algorithms disjoint from train by {report['disjoint']}; equal to a training "
        f"algorithm up to terminal marks: {equal:.1%}; classic: "
        + (", ".join(classic.get("used", {}).values()) or classic.get("note", "none"))
    )
    lines += check_lines(report["checks"])
    return "\n".join(lines)
