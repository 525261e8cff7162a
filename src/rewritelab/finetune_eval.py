"""Exact-match evaluation of fine-tuned runs, with the from-scratch evaluator's breakdowns.

Greedy decoding with a KV cache (Hugging Face `generate`, left-padded batches) compared as text
with the exact answer; or, when the tokenizer writes every gold answer canonically, the
teacher-forced fast path of `rewritelab.evaluate` (`choose_path`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rewritelab.batches import EncodedSplit, check_dataset, dataset_alphabet, to_device
from rewritelab.errors import RewritelabError
from rewritelab.evaluate import breakdown, fast_verdicts, write_predictions
from rewritelab.pretrained import load_finetuned
from rewritelab.prompts import (
    Codec,
    answer_text,
    check_codec,
    concatenation_is_canonical,
    encode_dataset_split,
)

GENERATE_SLACK = 8  # tokens past the gold answer a generated answer may use


# ------------------------------------------------------------------ evaluation


@torch.no_grad()
def generate_answers(model, split: EncodedSplit, codec: Codec, batch_size: int) -> list[list[int]]:
    """Per example, the greedy answer ids (KV cache, left-padded batches of similar prompt
    length), cut after the end token."""
    from transformers import GenerationConfig

    device = model.device
    answers: list[list[int]] = [[] for _ in range(len(split))]
    order = np.argsort(split.prompt_lengths, kind="stable")
    answer_lengths = split.lengths - split.prompt_lengths
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        width = int(split.prompt_lengths[indices].max())
        ids = np.full((len(indices), width), codec.pad_id, dtype=np.int64)  # (B, P) left-padded
        mask = np.zeros((len(indices), width), dtype=np.int64)
        for row, i in enumerate(indices.tolist()):
            length = int(split.prompt_lengths[i])
            ids[row, width - length :] = split.tokens[split.offsets[i] :][:length]
            mask[row, width - length :] = 1
        generation = GenerationConfig(
            max_new_tokens=int(answer_lengths[indices].max()) + GENERATE_SLACK,
            do_sample=False,
            num_beams=1,
            pad_token_id=codec.pad_id,
            eos_token_id=codec.eos_id,
        )
        out = model.generate(
            input_ids=to_device(ids, device),
            attention_mask=to_device(mask, device),
            generation_config=generation,
        )
        for i, row in zip(indices.tolist(), out[:, width:].tolist(), strict=True):
            answers[i] = row[: row.index(codec.eos_id) + 1] if codec.eos_id in row else row
    return answers


def text_verdicts(answers: list[list[int]], split: EncodedSplit, codec: Codec) -> np.ndarray:
    """Per example: did the model end its answer, and is the answer text the exact output?"""
    return np.array(
        [
            bool(answer)
            and answer[-1] == codec.eos_id
            and answer_text(codec, answer) == r["output"]
            for answer, r in zip(answers, split.records, strict=True)
        ],
        dtype=bool,
    )


def choose_path(path: str, codec: Codec, template: str, split: EncodedSplit) -> str:
    """`fast` when asked or allowed (canonical tokenisation of every answer), else generate."""
    if path == "auto":
        canonical = concatenation_is_canonical(codec, template, split.records)
        return "fast" if canonical else "generate"
    if path == "fast" and not concatenation_is_canonical(codec, template, split.records):
        raise RewritelabError(
            "the fast path needs a tokenizer that writes prompt + answer as prompt ids + answer "
            "ids; this one does not: use the generate path"
        )
    return path


def verdicts_of(
    model, split: EncodedSplit, codec: Codec, path: str, batch_size: int
) -> tuple[np.ndarray, list[list[int]] | None]:
    """Exact-match verdicts on `split` by the (resolved) evaluation path, and the answers."""
    if path == "fast":
        return fast_verdicts(model, split, codec, batch_size), None
    answers = generate_answers(model, split, codec, batch_size)
    return text_verdicts(answers, split, codec), answers


def evaluate_finetuned(
    run_dir: str | Path,
    data_dir: str | Path,
    split: str = "test",
    path: str = "auto",
    predictions_out: str | Path | None = None,
    batch_size: int = 0,
    device: str = "auto",
) -> dict:
    """Accuracy of a finished fine-tuning run on one split, broken down as for from-scratch
    runs (`rewritelab.evaluate.breakdown`); written to `<run_dir>/eval-<split>-<path>.json`."""
    model, codec, template = load_finetuned(run_dir, device)
    manifest = check_dataset(data_dir)
    check_codec(codec, template, dataset_alphabet(manifest), str(run_dir))
    examples = encode_dataset_split(codec, template, data_dir, split)
    path = choose_path(path, codec, template, examples)
    batch_size = batch_size or eval_batch_size(model.device)
    verdicts, answers = verdicts_of(model, examples, codec, path, batch_size)
    metrics = {
        "model": str(run_dir),
        "data": str(data_dir),
        "split": split,
        "path": path,
        "template": template,
        **breakdown(verdicts, examples.records),
    }
    out = Path(run_dir) / f"eval-{split}-{path}.json"
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if predictions_out is not None:
        write_predictions(predictions_out, examples, verdicts, answers, _AnswerDecoder(codec))
    return metrics


class _AnswerDecoder:
    """What `write_predictions` needs to write an answer: its text, as the verdict saw it."""

    def __init__(self, codec: Codec):
        self.codec = codec

    def decode(self, ids: list[int]) -> str:
        return answer_text(self.codec, ids)


def eval_batch_size(device: torch.device) -> int:
    return 64 if device.type == "cuda" else 16
