"""The algorithm task as a registered `Task`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from rewritelab.core.errors import RewritelabError
from rewritelab.core.version import __version__
from rewritelab.tasks.base import Encoded, Task
from rewritelab.tasks.families import pattern_capacity
from rewritelab.tasks.markov import generate
from rewritelab.tasks.markov.generate import CLASSIC_DIR, SPLIT_FILES, STREAMS
from rewritelab.tasks.markov.inspect import format_algorithm_inspection, inspect_algorithm_dataset
from rewritelab.tasks.spec import (
    DatasetSpec,
    SplitSpec,
    check_counts,
    check_letters,
    check_range,
    check_spread,
)
from rewritelab.tasks.storage import FORMAT, write_lines, write_manifest

# The record fields kept per example: breakdowns by steps, rules, halting kind and no-op; the
# rest to write predictions.
KEPT_FIELDS = ("algorithm", "rules", "rule_count", "input", "output", "step_output", "trace")
BREAKDOWN_FIELDS = ("steps", "rule_count", "halt", "noop")


class MarkovTask(Task):
    """A random Markov algorithm per instruction, run until it halts (see `generate`)."""

    name = "markov"
    layout = "markov"
    split_files = generate.SPLIT_FILES
    own_split_keys = ("rules", "markers", "terminal_share", "max_steps")
    own_top_keys = ("classic",)
    disjoint_modes = ("algorithms", "rules")
    # short rules, so that several fire on a word
    split_defaults = {
        "pattern_length": (1, 3),
        "replacement_length": (0, 3),
        "input_length": (1, 12),
    }
    targets = ("step", "final", "trace")
    default_target = "final"
    breakdowns = {
        "noop": lambda r: "noop" if r["noop"] else "has_op",
        "steps": lambda r: str(r["steps"]),
        "rule_count": lambda r: str(r["rule_count"]),
        "halt": lambda r: r["halt"],
        "algorithm": lambda r: str(r["algorithm"]),
    }

    def columns(self, config) -> dict:
        return {
            "algorithm": "int64",
            "rules": [{"x": "string", "y": "string", "terminal": "bool"}],
            "rule_count": "int64", "input": "string", "output": "string",
            "step_output": "string", "noop": "bool", "steps": "int64", "halt": "string",
            "trace": ["string"],
        }  # fmt: skip

    def validate(self, spec: DatasetSpec) -> None:
        for name in ("train", "test"):
            check_split(getattr(spec, name), name, spec.alphabet)

    def build(self, spec: DatasetSpec, bar):
        return generate.build_algorithm_splits(spec, bar)

    def write(self, spec: DatasetSpec, built, directory: Path) -> dict:
        return write_algorithm_splits(spec, self.record(spec), built, directory)

    def alphabet(self, config: Mapping) -> str:
        """The alphabet, then the markers of either split (in first-seen order)."""
        markers = config["train"]["markers"] + config["test"]["markers"]
        alphabet = config["alphabet"]
        return alphabet + "".join(c for c in dict.fromkeys(markers) if c not in alphabet)

    def encode(self, record: dict, tokenizer, target: str | None) -> Encoded:
        target = self.resolve_target(target)
        prompt = tokenizer.encode_algorithm_prompt(record["rules"], record["input"])
        answer = answer_words(record, target)
        kept = {key: record[key] for key in (*KEPT_FIELDS, *BREAKDOWN_FIELDS)}
        return prompt, tokenizer.encode_trace(answer), kept | {"target": target, "answer": answer}

    def inspect(self, data_dir: Path, manifest: dict) -> dict:
        return inspect_algorithm_dataset(data_dir, manifest)

    def format_inspection(self, report: dict) -> str:
        return format_algorithm_inspection(report)


def answer_words(record: dict, target: str) -> list[str]:
    """The words the model writes for an algorithm record: one, or the trace (`trace or
    [output]`: a run in which no rule fires writes its input)."""
    if target == "step":
        return [record["step_output"]]
    if target == "final":
        return [record["output"]]
    return list(record["trace"]) or [record["output"]]


def check_split(split: SplitSpec, name: str, alphabet: str) -> None:
    """The checks of one algorithm-task split, naming the first bad setting."""
    check_counts(split, name)
    check_spread(split.spread, split.alpha, f"{name}.spread")
    check_range(split.input_length, f"{name}.input_length", 0)
    check_range(split.pattern_length, f"{name}.pattern_length", 1)
    check_range(split.replacement_length, f"{name}.replacement_length", 0)
    check_range(split.rules, f"{name}.rules", 1)
    _check_markers(split.markers, alphabet, f"{name}.markers")
    for key in ("noop_share", "terminal_share"):
        if not 0 <= getattr(split, key) <= 1:
            raise RewritelabError(f"{name}.{key} must be in [0, 1], got {getattr(split, key)}")
    if split.max_steps < 1:
        raise RewritelabError(f"{name}.max_steps must be >= 1, got {split.max_steps}")
    patterns = pattern_capacity(split, len(alphabet) + len(split.markers))
    if split.rules[0] > patterns:
        raise RewritelabError(
            f"{name}: algorithms of {split.rules[0]} rules need as many distinct patterns, but "
            f"the alphabet, markers and pattern_length allow only {patterns}"
        )
    if split.noop_share < 1 and split.pattern_length[0] > split.input_length[1]:
        raise RewritelabError(
            f"{name}: patterns of at least {split.pattern_length[0]} letters never fit inputs "
            f"of at most {split.input_length[1]}, so no rule could apply (noop_share < 1)"
        )


def _check_markers(markers: str, alphabet: str, where: str) -> None:
    check_letters(markers, where)
    shared = sorted(set(markers) & set(alphabet))
    if shared:
        raise RewritelabError(f"{where} must not use alphabet letters, got {''.join(shared)!r}")


def record_lines(records: list[dict]):
    """The records as JSON lines (the same text `json.dumps` gives, non-ASCII kept)."""
    return (json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def write_algorithm_splits(spec: DatasetSpec, config: dict, built: dict, directory: Path) -> dict:
    """Write the split files and the manifest (recording `config`); return the manifest."""
    splits = built["splits"]
    files = {
        SPLIT_FILES[name]: write_lines(directory / SPLIT_FILES[name], record_lines(data.records))
        for name, data in splits.items()
    }
    classic = dict(built["classic"])
    if "classic" not in splits:
        classic["note"] = (
            "no classic split: classic = false"
            if not spec.classic
            else f"no example algorithm in {CLASSIC_DIR} fits the alphabet and markers"
            " and halts on its inputs"
        )
    manifest = {
        "format": FORMAT,
        "version": __version__,
        "task": "markov",
        "config": config,
        "seed": spec.seed,
        "streams": list(STREAMS),
        "counts": {name: data.counts for name, data in splits.items()},
        "classic": classic,
        "files": files,
    }
    write_manifest(directory, manifest)
    return manifest
