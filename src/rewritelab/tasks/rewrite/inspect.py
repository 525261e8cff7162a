"""`inspect` for rewrite-task datasets: statistics of every split, each record re-derived,
and the checks of what the manifest claims."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.near_misses import is_near_miss
from rewritelab.tasks.rules import count_occurrences, rewrite
from rewritelab.tasks.statistics import (
    check_lines,
    describe,
    histogram,
    length_lines,
    split_header,
)
from rewritelab.tasks.storage import SPLIT_FILES, file_sha256, read_records


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
            "examples_per_instruction": describe(counts),
            "noop_share": self.noops / max(1, self.examples),
            "occurrences": dict(sorted(self.occurrences.items())),
            "families": dict(sorted(self.families.items())),
            "k": {
                str(k): v
                for k, v in sorted(
                    self.k_values.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
                )
            },
            "lengths": {name: describe(np.array(v or [0])) for name, v in self.lengths.items()},
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


def inspect_dataset(data_dir: Path, manifest: dict) -> dict:
    """Statistics per split plus the integrity checks, as plain data."""
    splits: dict[str, SplitStatistics] = {}
    checks: dict[str, bool] = {}
    for name, filename in SPLIT_FILES.items():
        path = data_dir / filename
        if not path.is_file():
            raise RewritelabError(f"{data_dir} has no {filename}")
        expected = manifest.get("files", {}).get(filename, {}).get("sha256")
        checks[f"{filename} matches manifest hash"] = expected == file_sha256(path)
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
        "task": "rule",
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
    lines = [
        f"dataset {report['directory']} (seed {report['seed']}, rewritelab {report['version']})"
    ]
    for name, s in report["splits"].items():
        lines += [
            *split_header(name, s, "instruction", "instructions"),
            f"  no-op share: {s['noop_share']:.4f}",
            f"  occurrences of x: {histogram(s['occurrences'])}",
            f"  families: {histogram(s['families'])}; k: {histogram(s['k'])}",
        ]
        if s["near_miss_kinds"]:
            lines.append(f"  near-misses planted: {histogram(s['near_miss_kinds'])}")
        lines.append(
            f"  inputs with a window one letter off x (|x| >= 2): {s['one_letter_off_share']:.1%}"
        )
        lines += length_lines(s["lengths"], ("x", "y", "z"))
    lines.append(
        f"\ntest rules disjoint from train by {report['disjoint']}; "
        f"test patterns also used by a training rule: {report['test_patterns_seen_in_train']}"
    )
    lines += check_lines(report["checks"])
    return "\n".join(lines)
