"""A third task, defined here and registered with one line, runs through the whole pipeline:
generate, inspect, train and evaluate, all through the CLI, with no other module changed.

The task: reverse the leftmost occurrence of a two-letter pattern x in z (z unchanged when x
is absent). Instructions are patterns; test patterns never occur in training.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from rewritelab.cli.main import main
from rewritelab.core.version import __version__
from rewritelab.tasks.base import Task
from rewritelab.tasks.registry import TASKS
from rewritelab.tasks.statistics import check_lines
from rewritelab.tasks.storage import FORMAT, SPLIT_FILES, read_records, write_lines, write_manifest


def reversed_leftmost(x: str, z: str) -> str:
    at = z.find(x)
    return z if at < 0 else z[:at] + x[::-1] + z[at + len(x) :]


class ReversalTask(Task):
    """Reverse the leftmost x of z: a test-only task, to show what adding one takes."""

    name = "reverse"
    layout = "rule"  # prompts `<bos> x <to> <in> z <out>`: the rule layout with y empty
    split_files = SPLIT_FILES
    own_split_keys = ()
    disjoint_modes = ("patterns",)
    breakdowns = {"noop": lambda r: "noop" if r["noop"] else "has_op"}

    def validate(self, spec):
        patterns = len(spec.alphabet) ** 2
        if spec.train.instructions + spec.test.instructions > patterns:
            raise ValueError("more instructions than two-letter patterns")

    def columns(self, config):
        return {"instruction": "int64", "x": "string", "z": "string", "output": "string",
                "noop": "bool"}  # fmt: skip

    def build(self, spec, bar):
        rng = np.random.default_rng(spec.seed)
        patterns = ["".join(p) for p in itertools.product(spec.alphabet, repeat=2)]
        order = rng.permutation(len(patterns))
        train = [patterns[i] for i in order[: spec.train.instructions]]
        test = [patterns[i] for i in order[spec.train.instructions :][: spec.test.instructions]]

        def split(xs, per):
            records = []
            for instruction, x in enumerate(xs):
                for _ in range(per):
                    noop = rng.random() < spec.train.noop_share
                    filler = "".join(rng.choice(list(spec.alphabet), size=4))
                    z = filler if noop and x not in filler else filler[:2] + x + filler[2:]
                    out = reversed_leftmost(x, z)
                    records.append({"instruction": instruction, "x": x, "z": z, "output": out,
                                    "noop": x not in z})  # fmt: skip
            return records

        per_train, per_test = (
            spec.train.examples_per_instruction,
            spec.test.examples_per_instruction,
        )
        return {"train": split(train, per_train), "seen_test": split(train, 5),
                "test": split(test, per_test)}  # fmt: skip

    def write(self, spec, built, directory: Path) -> dict:
        files = {
            SPLIT_FILES[name]: write_lines(
                directory / SPLIT_FILES[name], (json.dumps(r) + "\n" for r in records)
            )
            for name, records in built.items()
        }
        counts = {
            name: {"examples": len(records), "instructions": len({r["x"] for r in records}),
                   "noop": sum(r["noop"] for r in records)}
            for name, records in built.items()
        }  # fmt: skip
        manifest = {"format": FORMAT, "version": __version__, "task": self.name,
                    "config": self.record(spec), "seed": spec.seed, "counts": counts,
                    "files": files}  # fmt: skip
        write_manifest(directory, manifest)
        return manifest

    def encode(self, record, tokenizer, target):
        prompt = tokenizer.encode_prompt(record["x"], "", record["z"])
        kept = {key: record[key] for key in ("x", "z", "output", "noop", "instruction")}
        return prompt, tokenizer.encode_answer(record["output"]), kept

    def inspect(self, data_dir: Path, manifest: dict) -> dict:
        splits = {name: list(read_records(data_dir / f)) for name, f in SPLIT_FILES.items()}
        exact = all(r["output"] == reversed_leftmost(r["x"], r["z"]) for s in splits.values()
                    for r in s)  # fmt: skip
        patterns = {name: {r["x"] for r in s} for name, s in splits.items()}
        return {"task": self.name, "examples": {name: len(s) for name, s in splits.items()},
                "checks": {"every output reverses the leftmost x": exact,
                           "test patterns are absent from training":
                               not patterns["train"] & patterns["test"]}}  # fmt: skip

    def format_inspection(self, report: dict) -> str:
        return "\n".join(
            [f"reversal dataset: {report['examples']}", *check_lines(report["checks"])]
        )


CONFIG = """task = "reverse"
alphabet = "abc"
seen_test_examples = 10
[train]
instructions = 6
examples_per_instruction = 60
noop_share = 0.2
[test]
instructions = 3
examples_per_instruction = 10
"""


@pytest.mark.slow
def test_a_task_added_in_one_module_and_one_registry_line_runs_end_to_end(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setitem(TASKS, "reverse", ReversalTask())  # the one registry line
    config = tmp_path / "reverse.toml"
    config.write_text(CONFIG)
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["generate", "--config", str(config), "--out", str(data)]) == 0
    records = list(read_records(data / "train.jsonl"))
    assert (
        len(records) == 360
        and {r["x"] for r in records}
        and all(r["output"] == reversed_leftmost(r["x"], r["z"]) for r in records)
    )
    capsys.readouterr()
    assert main(["inspect", str(data)]) == 0
    shown = capsys.readouterr().out
    assert "[ok] every output reverses the leftmost x" in shown and "FAIL" not in shown
    assert main(["train", "--data", str(data), "--out", str(run), "--max-steps", "30",
                 "--set", "model.layers=1", "--set", "model.width=32", "--set", "model.heads=2",
                 "--set", "model.context=24", "--quiet"]) == 0  # fmt: skip
    assert main(["evaluate", str(run), "--data", str(data), "--split", "test"]) == 0
    metrics = json.loads(next(run.glob("eval-test-*.json")).read_text())
    assert metrics["overall"]["examples"] == 30
    assert set(metrics["by_noop"]) <= {"noop", "has_op"}
    monkeypatch.delitem(TASKS, "reverse")
    assert main(["inspect", str(data)]) == 2  # unregistered again: refused in one line
    assert "task must be one of rule, markov, got 'reverse'" in capsys.readouterr().err
