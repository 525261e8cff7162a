"""Shared helpers: small generated datasets and independent reference semantics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rewritelab.tasks.generate import generate_dataset
from rewritelab.tasks.spec_files import spec_from_dict


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Every test runs with one torch thread, as CI's 2-core machine needs: torch's default
    (a thread per core) makes the suite several times slower as soon as anything else runs.
    `REWRITELAB_THREADS` reaches the runs the tests start, in this process and in workers."""
    import torch

    os.environ["REWRITELAB_THREADS"] = "1"
    torch.set_num_threads(1)
    yield


def pytest_collection_modifyitems(items):
    """The slow tests first (a stable sort): pytest-xdist's worksteal then hands the short ones
    to whichever process is free, instead of one process ending alone on a long test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def reference_occurrences(pattern: str, word: str) -> int:
    """Disjoint copies of `pattern` found scanning left to right, by direct comparison."""
    count, i = 0, 0
    while i + len(pattern) <= len(word):
        if word[i : i + len(pattern)] == pattern:
            count, i = count + 1, i + max(1, len(pattern))
        else:
            i += 1
    return count if pattern else len(word) + 1


def reference_rewrite(x: str, y: str, word: str) -> str:
    """Replace the first position where `x` matches, scanning left to right."""
    for i in range(len(word) - len(x) + 1):
        if word[i : i + len(x)] == x:
            return word[:i] + y + word[i + len(x) :]
    return word


def load_split(directory: Path, name: str) -> list[dict]:
    with open(directory / f"{name}.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture
def make_dataset(tmp_path):
    """Generate a dataset from a config dict into a fresh directory; return the directory."""
    counter = iter(range(1000))

    def make(config: dict) -> Path:
        out = tmp_path / f"data{next(counter)}"
        generate_dataset(spec_from_dict(config), out)
        return out

    return make


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(data dir, run dir, final metrics) of the tiny model trained on the tiny dataset: the
    one trained run the tests share, made once per test process (seconds)."""
    from tiny_run import TINY_DATA_NAME, make_data, tiny_config

    from rewritelab.training.scratch import train

    root = tmp_path_factory.mktemp("shared")
    data = make_data(root / TINY_DATA_NAME)
    run = root / "tiny_run"
    return data, run, train(tiny_config(eval_every=200), data, run, progress=False)


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of one in-process `rewritelab` command."""
    from rewritelab.cli.main import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
