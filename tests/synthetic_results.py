"""Synthetic results databases for report tests: runs whose accuracies follow a known curve."""

from __future__ import annotations

import json
import math

import numpy as np

from rewritelab.sweep.database import COLUMNS, JSON_COLUMNS, ResultsDatabase

INSTRUCTIONS = "dataset.train.instructions"


def logistic(instructions, floor, ceiling, slope, i50):
    """floor + (ceiling - floor) / (1 + exp(-slope * (log2 I - log2 i50)))."""
    x = math.log2(instructions) - math.log2(i50)
    return floor + (ceiling - floor) / (1 + math.exp(-slope * x))


def multi_letter_dataset(instructions: int) -> dict:
    """A dataset config of the paper's kind of task: 2-letter rules in words of 6-10 letters."""
    lengths = {"pattern_length": [2, 2], "replacement_length": [2, 2], "input_length": [6, 10]}
    return {"train": {"instructions": instructions, **lengths}, "test": {"instructions": 100}}


def synthetic_row(experiment, preset, seed, factors, unseen, seen, rules, rng, history=True):
    """A finished run whose per-rule unseen accuracies scatter around `unseen`; its recorded
    dataset is of the paper's kind (`multi_letter_dataset`)."""
    per_rule = np.clip(rng.normal(unseen, 0.1, rules), 0, 1) if rules else None
    if per_rule is not None:
        unseen = float(per_rule.mean())
    metrics = {"unseen_accuracy": unseen, "seen_accuracy": seen, "unseen_stderr": 0.01}
    if per_rule is not None:
        metrics["unseen_by_instruction"] = {str(i): float(a) for i, a in enumerate(per_rule)}
    if history:  # generalisation that peaks mid-training, then fades by 0.05 at the end
        metrics["history"] = [
            {"step": 100, "epoch": 1.0, "seen_accuracy": seen, "unseen_accuracy": unseen * 0.5},
            {"step": 200, "epoch": 2.0, "seen_accuracy": seen, "unseen_accuracy": unseen + 0.05},
            {"step": 300, "epoch": 3.0, "seen_accuracy": seen, "unseen_accuracy": unseen},
        ]
    point_id = f"{experiment}-{preset}-{seed}-{json.dumps(factors, sort_keys=True)}"
    return {
        "point_id": point_id, "experiment": experiment, "preset": preset, "seed": seed,
        "kind": None,  # as written before sweeps recorded it: the report reads the name
        "factors": factors, "dataset_id": "d",
        "config": {"dataset": multi_letter_dataset(factors.get(INSTRUCTIONS, 100))},
        "status": "done", "attempts": 1,
        "error": None, "metrics": metrics, "unseen_accuracy": unseen, "seen_accuracy": seen,
        "elapsed_s": 10.0, "device": "cpu", "versions": {"rewritelab": "test"},
        "run_dir": None, "data_dir": None, "updated": "2026-01-01T00:00:00+00:00",
        "owner": None, "heartbeat": None,
    }  # fmt: skip


def write_rows(path, rows: list[dict]) -> None:
    """Insert finished rows straight into a results database."""
    database = ResultsDatabase(path)
    with database.connection:
        for row in rows:
            values = [json.dumps(row[c]) if c in JSON_COLUMNS else row[c] for c in COLUMNS]
            marks = ", ".join("?" * len(COLUMNS))
            database.connection.execute(
                f"INSERT INTO points ({', '.join(COLUMNS)}) VALUES ({marks})", values
            )
    database.close()


def e1_rows(grid=(4, 16, 64, 128, 256, 512, 1024), seeds=3, i50=200.0, slope=2.0, rules=60):
    """An E1-like experiment: unseen accuracy follows a logistic in log2 I, seen stays high."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        shift = rng.normal(0, 0.2)  # seeds differ a little in where they switch on
        for instructions in grid:
            unseen = logistic(instructions, 0.0, 0.95, slope, i50 * 2**shift)
            rows.append(synthetic_row("e1", "cpu", seed, {INSTRUCTIONS: instructions}, unseen,
                                      0.99, rules, rng))  # fmt: skip
    return rows
