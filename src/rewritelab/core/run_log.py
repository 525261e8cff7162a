"""A run's metric log (`metrics.jsonl`, one JSON line per evaluation point), read without torch,
so that reports and sweeps can read a run's history where only the `report` extra is installed."""

from __future__ import annotations

import json
from pathlib import Path

METRICS = "metrics.jsonl"


HISTORY_KEYS = (
    "step",
    "epoch",
    "seen_accuracy",
    "unseen_accuracy",
    "unseen_has_op_accuracy",
    "train_accuracy",
)


def logged_points(run_dir: str | Path) -> list[dict]:
    """Everything a run logged at each evaluation point (`metrics.jsonl`), oldest first;
    empty when the run directory or its log is gone."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]  # fmt: skip


def training_history(run_dir: str | Path) -> list[dict]:
    """The accuracies of `logged_points`. Reports read the best step from it."""
    return [
        {k: logged[k] for k in HISTORY_KEYS if k in logged} for logged in logged_points(run_dir)
    ]
