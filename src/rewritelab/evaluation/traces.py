"""A `trace` model judged step by step (teacher-forced) and by the final word it writes."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from rewritelab.evaluation.accuracy import accuracy_of
from rewritelab.evaluation.exact_match import default_batch_size, logits_of
from rewritelab.model.batches import (
    EncodedSplit,
    pad_batch,
    sorted_batches,
    to_device,
)
from rewritelab.model.tokenizer import Tokenizer


@torch.no_grad()
def answer_token_verdicts(
    model: torch.nn.Module, split: EncodedSplit, batch_size: int = 0
) -> list[np.ndarray]:
    """Per example, per answer token (end token included): is it the argmax given the gold
    prompt and answer before it? (`fast_verdicts` is the all-of these.)"""
    device = next(model.parameters()).device
    verdicts: list[np.ndarray] = [np.zeros(0, dtype=bool)] * len(split)
    for indices in sorted_batches(split.lengths, batch_size or default_batch_size(model)):
        ids = pad_batch(split, indices, pad_id=0)  # (B, T)
        predicted = logits_of(model, to_device(ids, device))[:, :-1].argmax(-1).cpu().numpy()
        correct = predicted == ids[:, 1:]  # (B, T - 1): entry t is about token t + 1
        for row, i in enumerate(indices.tolist()):
            verdicts[i] = correct[row, split.prompt_lengths[i] - 1 : split.lengths[i] - 1]
    return verdicts


def step_verdicts(token_verdicts: np.ndarray, answer_ids: np.ndarray, then_id: int) -> np.ndarray:
    """Per step of a gold trace answer (`w1 <then> w2 ... wn <eos>`): are its word's tokens and
    the token after it (`<then>`, or `<eos>` for the last) all right?"""
    ends = [*np.flatnonzero(answer_ids == then_id).tolist(), len(answer_ids) - 1]
    starts = [0, *(end + 1 for end in ends[:-1])]
    return np.array(
        [token_verdicts[s : e + 1].all() for s, e in zip(starts, ends, strict=True)], dtype=bool
    )


def trace_summary(steps: list[np.ndarray]) -> dict:
    """Step-level metrics of trace answers, from per-step verdicts (`step_verdicts`): the share
    of all gold steps that are right, and where each wrong trace first goes wrong (1-based)."""
    total = sum(len(s) for s in steps)
    first_wrong = [int(np.argmin(s)) + 1 for s in steps if not s.all()]
    counts = defaultdict(int)
    for step in first_wrong:
        counts[str(step)] += 1
    return {
        "step_share": sum(int(s.sum()) for s in steps) / total if total else math.nan,
        "steps_scored": total,
        "first_wrong_step": {
            "mean": float(np.mean(first_wrong)) if first_wrong else None,
            "counts": dict(sorted(counts.items(), key=lambda item: int(item[0]))),
        },
    }


def final_word_verdicts(
    answers: list[list[int]], records: list[dict], tokenizer: Tokenizer
) -> np.ndarray:
    """Per generated trace: did it end (end token) on the algorithm's final word?"""
    return np.array(
        [
            bool(answer)
            and answer[-1] == tokenizer.eos_id
            and tokenizer.decode(answer).split(" ")[-1] == record["output"]
            for answer, record in zip(answers, records, strict=True)
        ],
        dtype=bool,
    )


def trace_metrics(
    model: torch.nn.Module,
    examples: EncodedSplit,
    tokenizer: Tokenizer,
    answers: list[list[int]] | None,
    batch_size: int = 0,
) -> dict:
    """The step-level metrics of a trace model, and its final-word accuracy when generated."""
    tokens = answer_token_verdicts(model, examples, batch_size)
    steps = [
        step_verdicts(tokens[i], examples.answer(i), tokenizer.then_id)
        for i in range(len(examples))
    ]
    summary = trace_summary(steps)
    if answers is not None:
        summary["final_word"] = accuracy_of(
            final_word_verdicts(answers, examples.records, tokenizer)
        )
    return summary
