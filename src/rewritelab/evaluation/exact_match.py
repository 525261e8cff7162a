"""Exact match of a model's answers: the fast path (one teacher-forced pass: every answer token
the argmax) and the generate path (greedy decoding, then string comparison)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from rewritelab.core.errors import RewritelabError
from rewritelab.model.batches import (
    EncodedSplit,
    pad_batch,
    sorted_batches,
    to_device,
)
from rewritelab.model.gpt import GPT
from rewritelab.model.prompts import (
    CharCodec,
    Codec,
    answer_text,
    concatenation_is_canonical,
)
from rewritelab.model.tokenizer import loss_mask

PATHS = ("auto", "fast", "generate")


GENERATE_SLACK = 8  # tokens past the gold answer a Hugging Face model may generate


def default_batch_size(model: torch.nn.Module) -> int:
    """Examples per evaluation batch. Our small GPT: large on a GPU; small on a CPU, where big
    batches overflow the caches and run several times slower per token. Pretrained models are
    larger: smaller batches."""
    cuda = next(model.parameters()).device.type == "cuda"
    if isinstance(model, GPT):
        return 1024 if cuda else 64
    return 64 if cuda else 16


def logits_of(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Next-token logits (B, T, V) of our GPT or of a Hugging Face causal LM."""
    return model(ids) if isinstance(model, GPT) else model(input_ids=ids).logits


@torch.no_grad()
def fast_verdicts(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 0) -> np.ndarray:
    """Per example: is the greedy answer exactly right? One teacher-forced pass per batch."""
    device = next(model.parameters()).device
    verdicts = np.zeros(len(split), dtype=bool)
    pending = []  # (indices, verdict tensor) pairs, copied to the host once at the end
    for indices in sorted_batches(split.lengths, batch_size or default_batch_size(model)):
        ids = pad_batch(split, indices, pad_id=0)  # (B, T); right padding is never attended to
        mask = loss_mask(split.prompt_lengths[indices], split.lengths[indices], ids.shape[1])
        ids, mask = to_device(ids, device), to_device(mask, device)
        predicted = logits_of(model, ids)[:, :-1].argmax(-1)  # (B, T - 1)
        pending.append((indices, ((predicted == ids[:, 1:]) | ~mask).all(dim=1)))
    for indices, correct in pending:
        verdicts[indices] = correct.cpu().numpy()
    return verdicts


@torch.no_grad()
def greedy_generate(
    model: GPT, prompts: torch.Tensor, max_new_tokens: int, eos_id: int
) -> torch.Tensor:
    """Greedy continuation of equal-length prompts (B, P) with a KV cache -> (B, <= max_new).

    Stops once every row has produced `eos_id`; rows that finished earlier keep generating
    (their tokens after the end token are ignored by the caller).
    """
    logits, cache = model.step_logits(prompts, None)
    generated = [logits.argmax(-1)]  # each (B,)
    finished = generated[-1] == eos_id
    for _ in range(max_new_tokens - 1):
        if bool(finished.all()):
            break
        logits, cache = model.step_logits(generated[-1][:, None], cache)
        generated.append(logits.argmax(-1))
        finished |= generated[-1] == eos_id
    return torch.stack(generated, dim=1)


def _cut_at(row: list[int], eos_id: int) -> list[int]:
    return row[: row.index(eos_id) + 1] if eos_id in row else row


def generate_answers(
    model: torch.nn.Module, split: EncodedSplit, codec: Codec, batch_size: int = 0
) -> list[list[int]]:
    """Per example, the greedy answer tokens up to the end token (included, if produced)."""
    batch_size = batch_size or default_batch_size(model)
    if not isinstance(model, GPT):
        return _hf_generate_answers(model, split, codec, batch_size)
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
                model, to_device(prompts, model.device), budget, codec.eos_id
            ).tolist()
            for i, row in zip(indices.tolist(), tokens, strict=True):
                answers[i] = _cut_at(row, codec.eos_id)
    return answers


@torch.no_grad()
def _hf_generate_answers(model, split: EncodedSplit, codec: Codec, batch_size: int):
    """Hugging Face `generate` on left-padded batches of similar prompt length."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
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
            answers[i] = _cut_at(row, codec.eos_id)
    return answers


def generate_verdicts(answers: list[list[int]], split: EncodedSplit, codec: Codec) -> np.ndarray:
    """Per example: is the generated answer the gold one? Our tokenizer: the same tokens, end
    token included. A Hugging Face tokenizer: an ended answer whose text is the output."""
    if isinstance(codec, CharCodec):
        gold = (split.answer(i).tolist() for i in range(len(split)))
        return np.array([answer == g for answer, g in zip(answers, gold, strict=True)], dtype=bool)
    return np.array(
        [
            bool(answer)
            and answer[-1] == codec.eos_id
            and answer_text(codec, answer) == record["output"]
            for answer, record in zip(answers, split.records, strict=True)
        ],
        dtype=bool,
    )


def choose_path(path: str, codec: Codec, template: str, split: EncodedSplit) -> str:
    """`fast` when asked or allowed (canonical tokenisation of every answer), else generate."""
    if path not in PATHS:
        raise RewritelabError(f"evaluation path must be one of {PATHS}, got {path!r}")
    canonical = concatenation_is_canonical(codec, template, split.records)
    if path == "auto":
        return "fast" if canonical else "generate"
    if path == "fast" and not canonical:
        raise RewritelabError(
            "the fast path needs a tokenizer that writes prompt + answer as prompt ids + answer "
            "ids; this one does not: use the generate path"
        )
    return path


def verdicts_of(
    model: torch.nn.Module, split: EncodedSplit, codec: Codec, path: str, batch_size: int = 0
) -> tuple[np.ndarray, list[list[int]] | None]:
    """Exact-match verdicts on `split` by the (resolved) evaluation path, and the answers."""
    if path == "fast":
        return fast_verdicts(model, split, batch_size), None
    answers = generate_answers(model, split, codec, batch_size)
    return generate_verdicts(answers, split, codec), answers


def model_context(model: torch.nn.Module) -> int | None:
    """The longest sequence a model can hold (None when its config does not say)."""
    if isinstance(model, GPT):
        return model.config.context
    config = model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


def check_context(examples: EncodedSplit, context: int | None, where: str) -> None:
    """Refuse examples longer than the model's context (they cannot be answered)."""
    longest = int(examples.lengths.max())
    if context is not None and longest > context:
        raise RewritelabError(
            f"{where} has examples of {longest} tokens, longer than the model's context ({context})"
        )
