"""Fine-tuning pretrained causal LMs on rewrite instructions (paper E6): LoRA or full.

The story of `finetune`: load the base model and its tokenizer (a local directory, or a
Hugging Face id found in the local cache), check that the tokenizer can write the dataset's
words, tokenise the splits with a prompt template (`rewritelab.prompts`), wrap the model
with a LoRA adapter (`peft`) unless every weight is to train, then take AdamW steps on
batches that are a pure function of (seed, step), with loss on the answer tokens only and
gradient accumulation over micro-batches. Evaluation points and checkpoints are written as
in from-scratch training (`rewritelab.checkpoint.RunDirectory`), so a killed run resumes.

Accuracy uses the from-scratch evaluator's definitions and breakdowns: greedy decoding with
a KV cache (Hugging Face `generate`, left-padded batches) compared as text with the exact
answer; or, when the tokenizer writes every gold answer canonically, the teacher-forced fast
path of `rewritelab.evaluate`.

Run directory:
    run_config.json    resolved config, base, template, target modules, seeds, versions
    metrics.jsonl      one line per evaluation point
    checkpoints/       step-N/ (adapter or model + tokenizer + optimizer state) and `latest`
    adapter/           the final LoRA adapter (peft) + tokenizer       (method = "lora")
    model/             the final fine-tuned model + tokenizer          (method = "full")
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rewritelab.batches import EncodedSplit, check_dataset, dataset_alphabet, to_device
from rewritelab.checkpoint import CHECKPOINTS, LATEST, OPTIMIZER, STATE, RunDirectory
from rewritelab.errors import RewritelabError
from rewritelab.finetune_config import FinetuneConfig
from rewritelab.finetune_eval import choose_path, eval_batch_size, verdicts_of
from rewritelab.pretrained import (
    ADAPTER_DIR,
    MODEL_DIR,
    attach_lora,
    load_base,
    recorded_run,
    without_reinitialize,
)
from rewritelab.prompts import (
    check_codec,
    encode_dataset_split,
    resolve_template,
)
from rewritelab.train import IGNORE, Batches, eval_subset, learning_rate
from rewritelab.train_config import seed_of

# ------------------------------------------------------------------ training


def finetune(
    base: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    config: FinetuneConfig,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Fine-tune `base` on the dataset in `data_dir`, writing the run to `out_dir`; return the
    final metrics. `resume=True` continues the run in `out_dir` from its latest checkpoint."""
    config.validate()
    run = RunDirectory(out_dir)
    manifest = check_dataset(data_dir)
    if resume:
        run.check_resumable(config, manifest)
        if str(recorded_run(run.path).get("base")) != str(base):
            raise RewritelabError(f"cannot resume {run.path}: it fine-tunes another base model")
    else:
        run.refuse_existing()
    device = pick_device_for(config)
    model, codec = load_base(base, config, device)
    template = resolve_template(config.template, codec)
    check_codec(codec, template, dataset_alphabet(manifest), str(base))
    train_split = encode_dataset_split(codec, template, data_dir, "train")
    evals = {
        name: eval_subset(encode_dataset_split(codec, template, data_dir, split), config, name)
        for name, split in (("seen", "seen_test"), ("unseen", "test"))
    }
    _check_context(model, [train_split, *evals.values()], str(data_dir))
    checkpoint, start_step = _latest_checkpoint(run.path) if resume else (None, 0)
    if config.method == "lora":
        if checkpoint is None:
            model = attach_lora(model, config)
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, checkpoint, is_trainable=True)
    elif checkpoint is not None:
        model, _ = load_base(checkpoint, without_reinitialize(config), device)
    batches = Batches(train_split, config, codec.pad_id, 8 if device.type == "cuda" else 1)
    if not resume:
        facts = {
            "base": str(base),
            "template": template,
            "tokenizer": codec.kind,
            "target_modules": _target_modules(model),
            "total_steps": config.max_steps,
            "steps_per_epoch": batches.per_epoch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "train_examples": len(train_split),
        }
        run.create(config, manifest, device, facts)
    elif start_step >= config.max_steps and (run.path / _final_dir(config)).is_dir():
        return run.last_metrics()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    if checkpoint is not None:
        optimizer.load_state_dict(
            torch.load(checkpoint / OPTIMIZER, map_location=device, weights_only=True)
        )
    session = Session(config, model, codec, template, optimizer, batches, evals, run)
    return session.run(start_step, progress)


def pick_device_for(config: FinetuneConfig) -> torch.device:
    from rewritelab.model import pick_device

    return pick_device(config.device)


def _final_dir(config: FinetuneConfig) -> str:
    return ADAPTER_DIR if config.method == "lora" else MODEL_DIR


def _target_modules(model) -> list[str] | None:
    peft_config = getattr(model, "peft_config", None)
    return sorted(peft_config["default"].target_modules) if peft_config else None


def _check_context(model, splits: list[EncodedSplit], where: str) -> None:
    context = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    longest = max(int(split.lengths.max()) for split in splits)
    if context is not None and longest > context:
        raise RewritelabError(
            f"{where} has examples of {longest} tokens, longer than the base's context ({context})"
        )


def _latest_checkpoint(run_path: Path) -> tuple[Path | None, int]:
    latest = run_path / CHECKPOINTS / LATEST
    if not latest.is_file():
        return None, 0
    directory = run_path / CHECKPOINTS / latest.read_text(encoding="utf-8").strip()
    try:
        step = json.loads((directory / STATE).read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError) as error:
        raise RewritelabError(f"corrupt checkpoint {directory}: {error}") from None
    return directory, step


class Session:
    """The mutable state of one fine-tuning session: model, optimizer, logs, timers."""

    def __init__(self, config, model, codec, template, optimizer, batches, evals, run):
        self.config, self.model, self.codec, self.template = config, model, codec, template
        self.optimizer, self.batches, self.evals, self.run_dir = optimizer, batches, evals, run
        self.device = next(model.parameters()).device
        self.autocast = torch.autocast(
            self.device.type, torch.bfloat16, enabled=self.device.type == "cuda" and config.bf16
        )
        self.eval_paths = {
            name: choose_path(config.eval_path, codec, template, split)
            for name, split in evals.items()
        }

    def run(self, start_step: int, progress: bool) -> dict:
        config = self.config
        self.run_dir.open_logs(start_step)
        bar = tqdm(total=config.max_steps, initial=start_step, disable=not progress, unit="step")
        loss_sum, steps, window_start = 0.0, 0, time.perf_counter()
        last = self.run_dir.last_metrics() or {}
        self.model.train()
        for step in range(start_step, config.max_steps):
            torch.manual_seed(seed_of(config.seed, "dropout", step))
            lr = learning_rate(step, config, config.max_steps)
            loss_sum += self.step(step, lr)
            steps += 1
            bar.update()
            done = step + 1 == config.max_steps
            evaluate = done or (config.eval_every and (step + 1) % config.eval_every == 0)
            if evaluate:
                elapsed = time.perf_counter() - window_start
                last = self.evaluate(step + 1, loss_sum / steps, lr, steps / elapsed)
                loss_sum, steps, window_start = 0.0, 0, time.perf_counter()
                bar.set_postfix(loss=f"{last['train_loss']:.4f}")
            if evaluate or (step + 1) % config.checkpoint_every == 0:
                self.run_dir.save_checkpoint(step + 1, self.model, self.codec, self.optimizer)
        bar.close()
        final = _final_dir(config)
        partial = self.run_dir.staging(final)
        self.model.save_pretrained(partial, safe_serialization=True)
        self.codec.save(partial)
        self.run_dir.publish(final)
        self.run_dir.close_logs()
        return last

    def step(self, step: int, lr: float) -> float:
        """One optimiser step over `gradient_accumulation` micro-batches; the loss is the mean
        over every answer token of the whole batch."""
        ids, targets, _ = self.batches.arrays(step)
        answer_tokens = max(1, int((targets != IGNORE).sum()))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        micro = self.config.micro_batch_size
        for start in range(0, len(ids), micro):
            micro_targets = targets[start : start + micro]
            width = int(np.nonzero((micro_targets != IGNORE).any(axis=0))[0].max()) + 2
            micro_ids = to_device(ids[start : start + micro, :width], self.device)  # (b, T)
            micro_targets = to_device(micro_targets[:, : width - 1], self.device)  # (b, T - 1)
            with self.autocast:
                logits = self.model(input_ids=micro_ids).logits[:, :-1]  # (b, T - 1, V)
            loss = (
                F.cross_entropy(
                    logits.float().flatten(0, 1),
                    micro_targets.flatten(),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
                / answer_tokens
            )
            loss.backward()
            total += float(loss.detach())
        if self.config.grad_clip > 0:
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(trainable, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def evaluate(self, step: int, train_loss: float, lr: float, steps_per_s: float) -> dict:
        self.model.eval()
        batch_size = self.config.eval_batch_size or eval_batch_size(self.device)
        with self.autocast:
            accuracies = {
                f"{name}_accuracy": float(
                    verdicts_of(self.model, split, self.codec, self.eval_paths[name], batch_size)[
                        0
                    ].mean()
                )
                for name, split in self.evals.items()
            }
        self.model.train()
        metrics = {
            "step": step,
            "epoch": step / self.batches.per_epoch,
            "train_loss": train_loss,
            "lr": lr,
            **accuracies,
            "steps_per_s": steps_per_s,
            "elapsed_s": self.run_dir.elapsed_s(),
        }
        self.run_dir.log(metrics)
        return metrics
