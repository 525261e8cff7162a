"""`rewritelab inspect`: read a dataset back from disk and report what it really holds.

The dataset's task computes the statistics of every split and checks what must hold (file
hashes match the manifest, every output is what its instruction gives, train and test
instructions are disjoint, the seen-instruction split uses training instructions only).
"""

from __future__ import annotations

from pathlib import Path

from rewritelab.tasks.registry import get_task, task_of
from rewritelab.tasks.storage import read_manifest


def inspect_dataset(data_dir: str | Path) -> dict:
    """Statistics per split plus the integrity checks, as plain data (naming its task)."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    return task_of(manifest).inspect(data_dir, manifest)


def format_inspection(report: dict) -> str:
    """A readable text rendering of `inspect_dataset`'s report."""
    return get_task(report["task"]).format_inspection(report)
