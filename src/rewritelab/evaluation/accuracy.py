"""Accuracies from verdicts: overall with its standard error, per breakdown class of the task,
and what a training-time evaluation point logs."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from rewritelab.model.batches import (
    EncodedSplit,
    eval_subset,
)
from rewritelab.tasks.base import Task


def accuracy_of(verdicts: np.ndarray) -> dict:
    """Accuracy, example count and binomial standard error of a set of verdicts."""
    n = len(verdicts)
    p = float(verdicts.mean()) if n else math.nan
    return {"accuracy": p, "examples": n, "stderr": math.sqrt(p * (1 - p) / n) if n else math.nan}


EVAL_SPLITS = (("seen", "seen_test"), ("unseen", "test"))  # (metric name, dataset split)


def eval_splits(
    encode: Callable[[str], EncodedSplit],
    examples: int,
    seed: int,
    train: EncodedSplit | None = None,
) -> dict[str, EncodedSplit]:
    """The splits a training run measures at each evaluation point, by metric name: fixed
    subsets of `examples` (all when 0) of the seen and unseen test splits, `encode(split)`,
    and, when the encoded training split is given, of it (`train_accuracy`: has the model
    mastered what it was trained on? `stop_at_train_accuracy` reads it)."""
    splits = {name: eval_subset(encode(split), examples, seed, name) for name, split in EVAL_SPLITS}
    if train is not None:
        splits["train"] = eval_subset(train, examples, seed, "train")
    return splits


def evaluation_point(
    evals: dict[str, EncodedSplit], verdicts: Callable[[str, EncodedSplit], np.ndarray]
) -> dict:
    """The accuracies a training-time evaluation point logs (`point_accuracies` of every split
    in `evals`), `verdicts(name, split)` giving each split's exact-match verdicts."""
    accuracies = {}
    for name, split in evals.items():
        accuracies |= point_accuracies(name, verdicts(name, split), split.records)
    return accuracies


def point_accuracies(name: str, verdicts: np.ndarray, records: list[dict]) -> dict:
    """What a training-time evaluation point logs of split `name`: exact-match accuracy and,
    for the unseen split, accuracy on the inputs that hold x (`has_op`): only those need the
    rule, so a test set half of no-ops floors overall accuracy near 0.5 and the transition is
    fitted on this one there (E2). Equal to the accuracy when no example is a no-op; None
    when every one is."""
    accuracies = {f"{name}_accuracy": float(verdicts.mean())}
    if name == "unseen":
        has_op = ~np.array([record["noop"] for record in records], dtype=bool)
        has_op_accuracy = float(verdicts[has_op].mean()) if has_op.any() else None
        accuracies["unseen_has_op_accuracy"] = has_op_accuracy
    return accuracies


def breakdown(verdicts: np.ndarray, records: list[dict], task: Task) -> dict:
    """Accuracy overall and per class of each of the task's breakdowns (`Task.breakdowns`: for
    the rule task no-op / has-op, occurrences, |x|, near-miss kind, instruction; for
    algorithms steps, rules, halting kind, algorithm)."""
    result = {"overall": accuracy_of(verdicts)}
    for name, key_of in task.breakdowns.items():
        members = defaultdict(list)
        for i, record in enumerate(records):
            if (key := key_of(record)) is not None:
                members[key].append(i)
        result[f"by_{name}"] = {
            key: accuracy_of(verdicts[np.array(indices)])
            for key, indices in sorted(members.items(), key=lambda item: _natural(item[0]))
        }
    return result


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)
