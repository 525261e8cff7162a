"""Exact-match accuracy under greedy decoding for every kind of run, broken down by class.

One evaluator for from-scratch, fine-tuned and pretrained-then-fine-tuned models. Two paths
give the same verdicts:
- fast: greedy decoding reproduces the answer exactly iff every answer token, end token
  included, is the argmax given the gold prefix, so one teacher-forced forward pass per batch
  decides every example of the batch (for a Hugging Face tokenizer, only when it writes every
  prompt + answer as prompt ids + answer ids: `choose_path`);
- generate: real greedy decoding with a KV cache, which also yields the model's answer text.
  Our GPT decodes prompts batched by exact prompt length (no padding, each example at the
  positions it was trained at) and stops one token past the gold answer's length, when the
  verdict can no longer change; other models use Hugging Face `generate` on left-padded
  batches and are judged on the answer text.

Accuracy is reported overall and per class (no-op / has-op, occurrences of x, |x|,
instruction; for algorithm datasets: number of steps, number of rules, halting kind, no-op,
algorithm), because averages hide where a model fails.

Datasets of a task with several targets (the algorithm task) are judged in the target the model was trained for
(`step`, `final`, `trace`): exact match of the whole answer. A `trace` model is also judged step
by step: step i is right when every token of its word and the token after it (`<then>`, or the
end token) is the argmax given the gold answer up to there, i.e. "step i right given the gold
previous steps" (one teacher-forced pass); from this, the share of steps right and the first
wrong step. Its final word (the last word it writes, when it ends its answer) is judged on the
generate path, which `auto` picks for `trace`.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rewritelab.core.atomic_files import write_text_atomic
from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import pick_device
from rewritelab.model.batches import (
    EncodedSplit,
    check_dataset,
    dataset_alphabet,
    encode_split,
    eval_subset,
    pad_batch,
    resolve_target,
    sorted_batches,
    to_device,
)
from rewritelab.model.gpt import GPT, RUN_CONFIG, load_model, resolve_model_dir
from rewritelab.model.prompts import (
    CharCodec,
    Codec,
    answer_text,
    check_codec,
    concatenation_is_canonical,
    encode_dataset_split,
)
from rewritelab.model.tokenizer import Tokenizer, loss_mask
from rewritelab.tasks.base import Task
from rewritelab.tasks.registry import task_of
from rewritelab.tasks.rules import Rule

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


def load_for_evaluation(run_dir: str | Path, device: str = "auto", allow_unverified: bool = False):
    """(model, codec, template) of any finished run or model directory: a fine-tuning run
    (its base plus adapter, or its fully tuned model) or a from-scratch model (whose weights
    must carry their digest unless `allow_unverified`)."""
    run_dir = Path(run_dir)
    if (run_dir / RUN_CONFIG).is_file() and "base" in _recorded(run_dir):
        from rewritelab.model.pretrained import load_finetuned

        return load_finetuned(run_dir, device)
    model, tokenizer = load_model(resolve_model_dir(run_dir), pick_device(device), allow_unverified)
    return model, CharCodec(tokenizer), "native"


def _recorded(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / RUN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RewritelabError(f"{run_dir / RUN_CONFIG} is unreadable: {error}") from None


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    split: str = "test",
    path: str = "auto",
    predictions_out: str | Path | None = None,
    batch_size: int = 0,
    device: str = "auto",
    target: str | None = None,
    allow_unverified: bool = False,
) -> dict:
    """Evaluate a finished run (or a model directory) on one split of a dataset.

    Writes the metrics to `<run_dir>/eval-<split>-<path>.json` (`...-<target>.json` when a
    target is asked for) and returns them; with `predictions_out`, also one JSON line per
    example (with the answer text on the generate path; the fast path decides verdicts without
    producing text). On an algorithm dataset the
    answer is the one of `target` (None: the target the run was trained for; `final` for a
    bare model directory), and a `trace` model also gets `trace_metrics`.
    """
    if predictions_out is not None and not Path(predictions_out).parent.is_dir():
        raise RewritelabError(
            f"cannot write predictions: {Path(predictions_out).parent} is missing"
        )
    if path not in PATHS:
        raise RewritelabError(f"evaluation path must be one of {PATHS}, got {path!r}")
    model, codec, template = load_for_evaluation(run_dir, device, allow_unverified)
    manifest = check_dataset(data_dir, codec.tokenizer if isinstance(codec, CharCodec) else None)
    asked_target, target = target, run_target(run_dir, manifest, codec, target)
    if task_of(manifest).text_prompts:
        check_codec(codec, template, dataset_alphabet(manifest), str(run_dir))
        examples = encode_dataset_split(codec, template, data_dir, split)
    else:
        examples = encode_split(data_dir, split, codec.tokenizer, target)
    check_context(examples, model_context(model), f"{data_dir} ({split})")
    path = choose_path("generate" if path == "auto" and target == "trace" else path,
                       codec, template, examples)  # fmt: skip
    verdicts, answers = verdicts_of(model, examples, codec, path, batch_size)
    metrics = {
        "model": str(run_dir),
        "data": str(data_dir),
        "split": split,
        "path": path,
        "template": template,
        **({"target": target} if target else {}),
        **breakdown(verdicts, examples.records, task_of(manifest)),
    }
    if target == "trace":
        metrics["trace"] = trace_metrics(model, examples, codec.tokenizer, answers, batch_size)
    chosen = f"-{target}" if asked_target else ""  # another target than the run's: own file
    out = metrics_path(Path(run_dir), manifest, split, f"eval-{split}-{path}{chosen}")
    write_text_atomic(out, json.dumps(metrics, indent=2) + "\n")
    if predictions_out is not None:
        write_predictions(predictions_out, examples, verdicts, answers, codec)
    return metrics


def metrics_path(run_dir: Path, manifest: dict, split: str, stem: str) -> Path:
    """Where an evaluation's metrics go: `<stem>.json` for the run's own dataset (or a bare
    model directory); a split of another dataset adds its file's digest to the name, so an
    evaluation elsewhere never replaces the record of the run's own test."""
    file = task_of(manifest).split_files[split]
    digest = manifest["files"][file]["sha256"]
    if (run_dir / RUN_CONFIG).is_file():
        own = _recorded(run_dir).get("dataset", {}).get("files", {})
        if own and own.get(file, {}).get("sha256") != digest:
            stem = f"{stem}-{digest[:12]}"
    return run_dir / f"{stem}.json"


def run_target(run_dir: str | Path, manifest: dict, codec: Codec, target: str | None):
    """The target to judge a dataset in (None where its task has one answer): the one asked
    for, else the one the run recorded, else the task's default."""
    task = task_of(manifest)
    if not task.text_prompts and not isinstance(codec, CharCodec):
        raise RewritelabError(
            f"datasets of task {task.name!r} are evaluated with models from rewritelab train "
            f"only (their tokenizer has the {task.layout} layout)"
        )
    run_dir = Path(run_dir)
    if target is None and task.targets and (run_dir / RUN_CONFIG).is_file():
        target = _recorded(run_dir).get("target")
    return resolve_target(manifest, target)


def write_predictions(
    out: str | Path,
    examples: EncodedSplit,
    verdicts: np.ndarray,
    answers: list[list[int]] | None,
    codec: Codec,
) -> None:
    """One JSON line per example: its record, the verdict and, if generated, the answer. The
    file appears whole (written under a temporary name, then renamed) or not at all."""
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            for i, record in enumerate(examples.records):
                line = {**record, "correct": bool(verdicts[i])}
                if answers is not None:
                    line["prediction"] = answer_text(codec, answers[i])
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


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


def predict(
    run_dir: str | Path,
    rule_text: str,
    word: str,
    device: str = "auto",
    allow_unverified: bool = False,
) -> tuple[str, str]:
    """A from-scratch model's greedy answer for one rule and input word, next to the exact
    answer."""
    rule = Rule.parse(rule_text)
    model, tokenizer = load_model(resolve_model_dir(run_dir), pick_device(device), allow_unverified)
    if tokenizer.layout != "rule":
        raise RewritelabError(
            f"predict takes one rule, but {run_dir} was trained on algorithms "
            f"({tokenizer.layout} layout): use rewritelab evaluate"
        )
    prompt = tokenizer.encode_prompt(rule.x, rule.y, word)
    budget = model.config.context - len(prompt)
    if budget < 1:
        raise RewritelabError(
            f"the prompt is {len(prompt)} tokens, too long for the model's context "
            f"({model.config.context})"
        )
    prompts = torch.tensor([prompt], device=model.device)
    answer = greedy_generate(model, prompts, budget, tokenizer.eos_id)[0].tolist()
    return tokenizer.decode(answer), rule.apply(word)
