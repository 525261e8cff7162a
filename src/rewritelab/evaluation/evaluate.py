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

Datasets of a task with several targets (the algorithm task) are judged in the target the model was
trained for (`step`, `final`, `trace`): exact match of the whole answer. A `trace` model is also
judged step by step: step i is right when every token of its word and the token after it (`<then>`,
or the end token) is the argmax given the gold answer up to there, i.e. "step i right given the gold
previous steps" (one teacher-forced pass); from this, the share of steps right and the first
wrong step. Its final word (the last word it writes, when it ends its answer) is judged on the
generate path, which `auto` picks for `trace`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from rewritelab.core.atomic_files import write_text_atomic, writing
from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import pick_device
from rewritelab.evaluation.accuracy import breakdown
from rewritelab.evaluation.exact_match import (
    PATHS,
    check_context,
    choose_path,
    greedy_generate,
    model_context,
    verdicts_of,
)
from rewritelab.evaluation.traces import trace_metrics
from rewritelab.model.batches import EncodedSplit
from rewritelab.model.encoding import check_dataset, dataset_alphabet, encode_split, resolve_target
from rewritelab.model.files import load_model, resolve_model_dir
from rewritelab.model.gpt import RUN_CONFIG
from rewritelab.model.prompts import (
    CharCodec,
    Codec,
    answer_text,
    check_codec,
    encode_dataset_split,
)
from rewritelab.tasks.registry import task_of
from rewritelab.tasks.rules import Rule


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
        with writing(out):
            with open(partial, "w", encoding="utf-8") as handle:
                for i, record in enumerate(examples.records):
                    line = {**record, "correct": bool(verdicts[i])}
                    if answers is not None:
                        line["prediction"] = answer_text(codec, answers[i])
                    handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


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
