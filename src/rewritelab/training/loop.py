"""THE training loop, shared by from-scratch training, fine-tuning and pretraining.

A training path (`train`, `finetune`, `pretrain`) supplies a `Trainee`: the module to train,
its batches as a pure function of the step, its loss, its evaluation and how its weights are
saved and reloaded. The loop owns the rest, once: threads and precision, AdamW, the schedule
(linear warm-up, then linear decay to zero: the paper's protocol), per-step dropout seeds,
accumulation and clipping, evaluation points (and an early stop once the model masters its
training examples), atomic checkpoints, the metrics log and its tracker, resume, and a clear
stop when the loss stops being finite.

Because a batch, the learning rate and the dropout noise depend only on (seed, step), a resumed
run ends with exactly the weights and metrics of an uninterrupted one (on CPU, at the same
thread count; CUDA kernels need not be bitwise deterministic).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import (
    apply_threads,
    autocast_dtype,
    keep_freed_memory,
    pick_device,
    precision,
)
from rewritelab.core.progress import progress_bar
from rewritelab.core.seeds import seed_of
from rewritelab.model.batches import to_device
from rewritelab.model.tokenizer import IGNORE
from rewritelab.training.loop_config import LoopConfig
from rewritelab.training.runs import RunDirectory, provenance

MicroBatch = tuple[np.ndarray, np.ndarray]  # input ids (B, T), targets (B, T - 1), IGNORE = no loss


def learning_rate(step: int, config: LoopConfig, total_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then linear decay to zero at `total_steps`."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    remaining = total_steps - step
    return config.learning_rate * remaining / max(1, total_steps - config.warmup_steps)


def make_optimizer(model: torch.nn.Module, config: LoopConfig) -> torch.optim.AdamW:
    """AdamW on the trainable parameters, weight decay on matrices only (nanoGPT's choice)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return adamw(
        [p for p in trainable if p.dim() >= 2], [p for p in trainable if p.dim() < 2], config
    )


def adamw(matrices: list, vectors: list, config: LoopConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on `matrices` and none on `vectors`; fused kernels on CUDA,
    foreach on CPU."""
    groups = [
        {"params": matrices, "weight_decay": config.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    cuda = (matrices or vectors)[0].device.type == "cuda"
    return torch.optim.AdamW(
        groups,
        lr=config.learning_rate,
        betas=(0.9, config.adam_beta2),
        fused=cuda,
        foreach=not cuda,
    )


def seed_dropout(device: torch.device, seed: int) -> None:
    """Seed the generator that dropout on `device` draws from. On a CPU that is the CPU
    generator alone, in the state `torch.manual_seed` gives it: `torch.manual_seed` also seeds
    every accelerator API the build has, lazily, formatting a stack trace for each (1.2 ms a
    call on a CPU-only torch 2.13: 3% of a cpu-preset step)."""
    if device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def lm_loss(model: torch.nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy of a Hugging Face causal LM (targets IGNORE = no loss)."""
    logits = model(input_ids=ids).logits[:, :-1]  # (B, T - 1, V)
    return F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum"
    )


class Trainee(Protocol):
    """What a training path gives the loop."""

    model: torch.nn.Module
    total_steps: int
    steps_per_epoch: int
    eval_every_default: int  # steps between evaluations when the config says 0
    final_dir: str  # where the final weights go in the run directory ("model", "adapter")

    def data_identity(self) -> dict:
        """What identifies the training data (a resume must find the same)."""

    def facts(self) -> dict:
        """Facts recorded in run_config.json when the run starts (sizes, counts)."""

    def batch(self, step: int) -> tuple[list[MicroBatch], int]:
        """The micro-batches of optimiser step `step`, and its real (non-padding) tokens."""

    def loss(self, model: torch.nn.Module, ids: torch.Tensor, targets: torch.Tensor):
        """Summed loss over the targets that are not IGNORE."""

    def evaluate(self) -> dict[str, float | None]:
        """Metrics of the model now (the loop switches it to eval mode around the call)."""

    def save(self, directory: Path) -> None:
        """Write the weights (and tokenizer) into `directory`."""

    def load(self, directory: Path) -> None:
        """Restore the weights saved by `save` (to resume)."""


class Loop:
    """One training session of a trainee, from its start (or latest checkpoint) to the end."""

    def __init__(self, trainee: Trainee, config: LoopConfig, run: RunDirectory, total_steps: int):
        self.trainee, self.config, self.run_dir = trainee, config, run
        self.total_steps = total_steps
        self.device = next(trainee.model.parameters()).device
        self.dtype = autocast_dtype(self.device, config.bf16)  # bf16 only where native, or None
        self.precision = partial(precision, self.device, self.dtype)
        self.optimizer = make_optimizer(trainee.model, config)
        self.loss = trainee.loss
        if self.device.type == "cuda" and config.compile:
            self.loss = torch.compile(trainee.loss, dynamic=True)
        self.every = config.eval_every or trainee.eval_every_default
        self.extra_evaluations = set(config.eval_at)

    def resume(self) -> int:
        """Restore the latest checkpoint's weights and optimizer state; return its step."""
        checkpoint, step = self.run_dir.latest_checkpoint()
        if step > self.total_steps:
            raise RewritelabError(
                f"{checkpoint} is at step {step}, beyond this run's {self.total_steps} steps: "
                "not a checkpoint of this config"
            )
        if checkpoint is not None:
            self.trainee.load(checkpoint)
            self.optimizer.load_state_dict(
                self.run_dir.load_optimizer_state(checkpoint, self.device)
            )
        return step

    def run(self, start_step: int = 0, progress: bool = True) -> dict:
        """Steps `start_step` to the end, evaluating and checkpointing; saves the final weights
        and returns the last logged metrics."""
        self.run_dir.open_logs(start_step, self.config.tracker)
        bar = progress_bar(progress, total=self.total_steps, initial=start_step, desc="train")
        window = Window(self.device)
        last = self.run_dir.last_metrics() or {}
        self.trainee.model.train()
        for step in range(start_step, self.total_steps):
            if self.mastered(last):
                break
            lr = learning_rate(step, self.config, self.total_steps)
            window.add(self.step(step, lr))
            bar.update()
            if self.evaluates_at(step + 1):
                last = self.evaluate(step + 1, window.close(), lr, last.get("train_tokens", 0))
                window = Window(self.device)  # throughput counts training, not evaluation
                bar.set_postfix(loss=f"{last['train_loss']:.4f}", **_accuracies(last))
            elif self.config.checkpoint_every and (step + 1) % self.config.checkpoint_every == 0:
                self.checkpoint(step + 1)
            elif (step + 1) % self.config.log_every == 0:
                loss = window.mean_loss()
                self.check_finite(loss, step + 1)
                bar.set_postfix(loss=f"{loss:.4f}", **_accuracies(last))
        bar.close()
        return self.finish(last)

    def finish(self, last: dict) -> dict:
        """Save the final weights with the model card of the `last` metrics; return them."""
        self.trainee.model.eval()
        with self.run_dir.staged(self.trainee.final_dir, metrics=last) as partial:
            self.trainee.save(partial)
        self.run_dir.close_logs()
        return last

    def starting_step(self, resume: bool, threads: int) -> int | None:
        """The step to train from: 0, or a resumed run's latest checkpoint (its weights and
        optimizer state restored); None when the resumed run has already ended."""
        if not resume:
            return 0
        start = self.resume()
        _report_thread_change(self.run_dir, threads)
        ended = start >= self.total_steps or self.mastered(self.run_dir.last_metrics() or {})
        return None if ended and self.run_dir.finished(self.trainee.final_dir) else start

    def evaluates_at(self, step: int) -> bool:
        """Whether the run evaluates (and checkpoints) once `step` steps are done."""
        return step % self.every == 0 or step == self.total_steps or step in self.extra_evaluations

    def mastered(self, metrics: dict) -> bool:
        """Whether an evaluation point's metrics end the run early (`stop_at_train_accuracy`)."""
        threshold = self.config.stop_at_train_accuracy
        return threshold > 0 and metrics.get("train_accuracy", -1.0) >= threshold

    def step(self, step: int, lr: float) -> tuple[torch.Tensor, int]:
        """One optimiser step over the step's micro-batches; the loss is the mean over every
        target token of the whole batch. Returns the loss (a device tensor: no host sync) and
        the real tokens processed."""
        micro_batches, real_tokens = self.trainee.batch(step)
        seed_dropout(self.device, seed_of(self.config.seed, "dropout", step))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        scored = max(1, sum(int((targets != IGNORE).sum()) for _, targets in micro_batches))
        total = torch.zeros((), device=self.device)
        for ids, targets in micro_batches:
            ids, targets = to_device(ids, self.device), to_device(targets, self.device)
            with self.precision():
                loss = self.loss(self.trainee.model, ids, targets) / scored
            loss.backward()
            total += loss.detach()
        if self.config.grad_clip > 0:
            parameters = [p for p in self.trainee.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, real_tokens

    def evaluate(self, step: int, window: dict, lr: float, tokens_before: int) -> dict:
        """Measure, log and checkpoint at an evaluation point; return the logged metrics.
        `train_tokens` counts the real tokens trained on up to here (after a resume, from the
        last evaluation point before it)."""
        self.check_finite(window["train_loss"], step)
        self.trainee.model.eval()
        with torch.no_grad(), self.precision():
            measured = self.trainee.evaluate()
        self.trainee.model.train()
        metrics = {
            "step": step,
            "epoch": step / self.trainee.steps_per_epoch,
            "train_loss": window["train_loss"],
            "lr": lr,
            **measured,
            "tokens_per_s": window["tokens_per_s"],
            "steps_per_s": window["steps_per_s"],
            "train_tokens": tokens_before + window["tokens"],
            "elapsed_s": self.run_dir.elapsed_s(),
            "precision": "bf16" if self.dtype else "fp32",
        }
        self.run_dir.log(metrics)
        self.checkpoint(step)
        return metrics

    def check_finite(self, loss: float, step: int) -> None:
        """Stop a run whose loss is no longer a number, before it overwrites a checkpoint."""
        if not math.isfinite(loss):
            raise RewritelabError(
                f"the training loss became {loss} before step {step}: stopped; the last good "
                f"checkpoint is kept in {self.run_dir.path}"
            )

    def checkpoint(self, step: int) -> None:
        self.run_dir.save_checkpoint(step, self.trainee.save, self.optimizer)


class Window:
    """Loss and throughput since the last evaluation point (one host sync per window)."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.steps, self.tokens, self.started = 0, 0, time.perf_counter()

    def add(self, outcome: tuple[torch.Tensor, int]) -> None:
        loss, tokens = outcome
        self.loss_sum += loss
        self.steps, self.tokens = self.steps + 1, self.tokens + tokens

    def mean_loss(self) -> float:
        return self.loss_sum.item() / max(1, self.steps)  # .item() waits for the device

    def close(self) -> dict:
        elapsed = time.perf_counter() - self.started
        return {"train_loss": self.mean_loss(), "tokens": self.tokens,
                "tokens_per_s": self.tokens / elapsed,
                "steps_per_s": self.steps / elapsed}  # fmt: skip


def _accuracies(metrics: dict) -> dict:
    """Progress-bar fields for the accuracies among `metrics`."""
    return {
        k.removesuffix("_accuracy"): f"{v:.3f}"
        for k, v in metrics.items()
        if k.endswith("_accuracy")
    }


def train_run(
    make_trainee: Callable[[torch.device], Trainee],
    config: LoopConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_start: Callable[[Trainee, Path], None] | None = None,
) -> dict:
    """Start (or resume) a run of the trainee `make_trainee(device)` builds in `out_dir` and
    train it to the end (or until it masters its training examples, `stop_at_train_accuracy`);
    return its last metrics. A new run never overwrites a directory; a resumed one must have
    the same config and data. A finished run returns its metrics. `on_start(trainee, run
    directory)`, when given, runs once the directory is created or checked, before the first
    step."""
    device, threads = set_up(config)
    if not resume:
        RunDirectory(out_dir).refuse_existing()  # before the trainee's data is read
    trainee = make_trainee(device)
    run = open_run(trainee, config, out_dir, resume, device, threads)
    with run.locked():
        if on_start is not None:
            on_start(trainee, run.path)
        loop = Loop(trainee, config, run, trainee.total_steps)
        start = loop.starting_step(resume, threads)
        if start is None:
            return run.last_metrics() or {}
        return loop.run(start, progress)


def set_up(config: LoopConfig) -> tuple[torch.device, int]:
    """Validate the config, set this process's threads and allocator; the device and threads."""
    config.validate()
    threads = apply_threads(config.threads)
    keep_freed_memory()
    return pick_device(config.device), threads


def open_run(
    trainee: Trainee,
    config: LoopConfig,
    out_dir: str | Path,
    resume: bool,
    device: torch.device,
    threads: int,
) -> RunDirectory:
    """The trainee's run directory: created (never over an existing one), or checked to hold
    a run of the same config and data when resuming."""
    run = RunDirectory(out_dir)
    if resume:
        run.check_resumable(config, trainee.data_identity())
    else:
        run.create(
            config, trainee.data_identity(), {**trainee.facts(), **provenance(device, threads)}
        )
    return run


def _report_thread_change(run: RunDirectory, threads: int) -> None:
    """On CPU, float rounding may differ under another thread count: say so."""
    recorded_threads = run.recorded().get("threads")
    if recorded_threads not in (None, threads):
        print(
            f"note: {run.path} was started with {recorded_threads} thread(s) and resumes "
            f"with {threads}; on CPU its metrics may differ in the last digits",
            file=sys.stderr,
        )
