"""Exact-match accuracy under greedy decoding, broken down by class; and single predictions.

Two paths give the same verdicts:
- fast: greedy decoding reproduces the answer exactly iff every answer token, end token
  included, is the argmax given the gold prefix, so one teacher-forced forward pass per batch
  decides every example of the batch;
- generate: real greedy decoding with a KV cache, which also yields the model's answer text.
  Prompts are batched by exact prompt length, so no padding or attention mask is needed and
  each example is computed at the same positions as in training. Generation stops at the end
  token, or one token past the gold answer's length, when the verdict can no longer change.

Accuracy is reported overall and per class (no-op / has-op, occurrences of x, |x|,
instruction), because averages hide where a model fails.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2LMHeadModel

from rewritelab.batches import (
    EncodedSplit,
    check_dataset,
    encode_split,
    pad_batch,
    sorted_batches,
    to_device,
)
from rewritelab.errors import RewritelabError
from rewritelab.model import load_model, pick_device, resolve_model_dir
from rewritelab.rules import Rule
from rewritelab.tokenizer import Tokenizer, loss_mask

PATHS = ("fast", "generate")


def default_batch_size(device: torch.device) -> int:
    """Examples per evaluation batch: large on a GPU; small on a CPU, where big batches
    overflow the caches and run several times slower per token."""
    return 1024 if device.type == "cuda" else 64


@torch.no_grad()
def fast_verdicts(
    model: GPT2LMHeadModel,
    split: EncodedSplit,
    tokenizer: Tokenizer,
    batch_size: int | None = None,
) -> np.ndarray:
    """Per example: is the greedy answer exactly right? One teacher-forced pass per batch."""
    device = model.device
    batch_size = batch_size or default_batch_size(device)
    verdicts = np.zeros(len(split), dtype=bool)
    pending = []  # (indices, verdict tensor) pairs, copied to the host once at the end
    for indices in sorted_batches(split.lengths, batch_size):
        ids = pad_batch(split, indices, tokenizer.pad_id)  # (B, T)
        mask = loss_mask(split.prompt_lengths[indices], split.lengths[indices], ids.shape[1])
        ids, mask = to_device(ids, device), to_device(mask, device)
        predicted = model(input_ids=ids).logits[:, :-1].argmax(-1)  # (B, T - 1)
        pending.append((indices, ((predicted == ids[:, 1:]) | ~mask).all(dim=1)))
    for indices, correct in pending:
        verdicts[indices] = correct.cpu().numpy()
    return verdicts


@torch.no_grad()
def greedy_generate(
    model: GPT2LMHeadModel, prompts: torch.Tensor, max_new_tokens: int, eos_id: int
) -> torch.Tensor:
    """Greedy continuation of equal-length prompts (B, P) with a KV cache -> (B, <= max_new).

    Stops once every row has produced `eos_id`; rows that finished earlier keep generating
    (their tokens after the end token are ignored by the caller).
    """
    out = model(input_ids=prompts, use_cache=True)
    generated = [out.logits[:, -1].argmax(-1)]  # each (B,)
    finished = generated[-1] == eos_id
    for _ in range(max_new_tokens - 1):
        if bool(finished.all()):
            break
        out = model(input_ids=generated[-1][:, None], cache=out.cache, use_cache=True)
        generated.append(out.logits[:, -1].argmax(-1))
        finished |= generated[-1] == eos_id
    return torch.stack(generated, dim=1)


def generate_answers(
    model: GPT2LMHeadModel,
    split: EncodedSplit,
    tokenizer: Tokenizer,
    batch_size: int | None = None,
) -> list[list[int]]:
    """Per example, the greedy answer tokens up to the end token (included, if produced)."""
    batch_size = batch_size or default_batch_size(model.device)
    answers: list[list[int]] = [[] for _ in range(len(split))]
    by_prompt_length = defaultdict(list)
    for i, length in enumerate(split.prompt_lengths.tolist()):
        by_prompt_length[length].append(i)
    for prompt_length, members in sorted(by_prompt_length.items()):
        for start in range(0, len(members), batch_size):
            indices = np.array(members[start : start + batch_size])
            prompts = np.stack([split.tokens[split.offsets[i] :][:prompt_length] for i in indices])
            budget = int(split.lengths[indices].max()) - prompt_length  # longest answer + eos
            tokens = greedy_generate(
                model, to_device(prompts, model.device), budget, tokenizer.eos_id
            ).tolist()
            for i, row in zip(indices.tolist(), tokens, strict=True):
                answers[i] = (
                    row[: row.index(tokenizer.eos_id) + 1] if tokenizer.eos_id in row else row
                )
    return answers


def generate_verdicts(answers: list[list[int]], split: EncodedSplit) -> np.ndarray:
    """Per example: do the generated tokens equal the gold answer, end token included?"""
    gold = (
        split.tokens[split.offsets[i] + split.prompt_lengths[i] : split.offsets[i + 1]].tolist()
        for i in range(len(split))
    )
    return np.array([answer == g for answer, g in zip(answers, gold, strict=True)], dtype=bool)


def accuracy_of(verdicts: np.ndarray) -> dict:
    """Accuracy, example count and binomial standard error of a set of verdicts."""
    n = len(verdicts)
    p = float(verdicts.mean()) if n else math.nan
    return {"accuracy": p, "examples": n, "stderr": math.sqrt(p * (1 - p) / n) if n else math.nan}


def breakdown(verdicts: np.ndarray, records: list[dict]) -> dict:
    """Accuracy overall and per class: no-op / has-op, occurrences, |x|, instruction."""
    classes = {
        "noop": lambda r: "noop" if r["noop"] else "has_op",
        "occurrences": lambda r: str(r["occurrences"]),
        "pattern_length": lambda r: str(len(r["x"])),
        "instruction": lambda r: str(r["instruction"]),
    }
    result = {"overall": accuracy_of(verdicts)}
    for name, key_of in classes.items():
        members = defaultdict(list)
        for i, record in enumerate(records):
            members[key_of(record)].append(i)
        result[f"by_{name}"] = {
            key: accuracy_of(verdicts[np.array(indices)])
            for key, indices in sorted(members.items(), key=lambda item: _natural(item[0]))
        }
    return result


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    split: str = "test",
    path: str = "fast",
    predictions_out: str | Path | None = None,
    batch_size: int | None = None,
    device: str = "auto",
) -> dict:
    """Evaluate a trained run (or a model directory) on one split of a dataset.

    Writes the metrics to `<run_dir>/eval-<split>-<path>.json` and returns them; with
    `predictions_out`, also one JSON line per example (with the answer text on the generate
    path; the fast path decides verdicts without producing text).
    """
    if path not in PATHS:
        raise RewritelabError(f"evaluation path must be one of {PATHS}, got {path!r}")
    model_dir = resolve_model_dir(run_dir)
    model, tokenizer = load_model(model_dir, pick_device(device))
    check_dataset(data_dir, tokenizer)
    examples = encode_split(data_dir, split, tokenizer)
    check_context(examples, model.config.n_positions, f"{data_dir} ({split})")
    answers = None
    if path == "fast":
        verdicts = fast_verdicts(model, examples, tokenizer, batch_size)
    else:
        answers = generate_answers(model, examples, tokenizer, batch_size)
        verdicts = generate_verdicts(answers, examples)
    metrics = {
        "model": str(model_dir),
        "data": str(data_dir),
        "split": split,
        "path": path,
        **breakdown(verdicts, examples.records),
    }
    out = Path(run_dir) / f"eval-{split}-{path}.json"
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if predictions_out is not None:
        write_predictions(predictions_out, examples, verdicts, answers, tokenizer)
    return metrics


def write_predictions(
    out: str | Path,
    examples: EncodedSplit,
    verdicts: np.ndarray,
    answers: list[list[int]] | None,
    tokenizer: Tokenizer,
) -> None:
    """One JSON line per example: its record, the verdict and, if generated, the answer."""
    with open(out, "w", encoding="utf-8") as handle:
        for i, record in enumerate(examples.records):
            line = {**record, "correct": bool(verdicts[i])}
            if answers is not None:
                line["prediction"] = tokenizer.decode(answers[i])
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def check_context(examples: EncodedSplit, context: int, where: str) -> None:
    """Refuse examples longer than the model's context (they cannot be answered)."""
    longest = int(examples.lengths.max())
    if longest > context:
        raise RewritelabError(
            f"{where} has examples of {longest} tokens, longer than the model's context ({context})"
        )


def predict(
    run_dir: str | Path, rule_text: str, word: str, device: str = "auto"
) -> tuple[str, str]:
    """The model's greedy answer for one rule and input word, next to the exact answer."""
    rule = Rule.parse(rule_text)
    model, tokenizer = load_model(resolve_model_dir(run_dir), pick_device(device))
    prompt = tokenizer.encode_prompt(rule.x, rule.y, word)
    budget = model.config.n_positions - len(prompt)
    if budget < 1:
        raise RewritelabError(
            f"the prompt is {len(prompt)} tokens, too long for the model's context "
            f"({model.config.n_positions})"
        )
    prompts = torch.tensor([prompt], device=model.device)
    answer = greedy_generate(model, prompts, budget, tokenizer.eos_id)[0].tolist()
    return tokenizer.decode(answer), rule.apply(word)
