"""The training loop: a GPT learns a generated dataset; seen and unseen accuracy are tracked.

The story of `train`: read the dataset and build the tokenizer from its alphabet; create the
run directory (never over an existing one) or reopen it to resume; then for each step take
the step's batch (a pure function of seed and step), take one AdamW step at the learning rate
of the step (linear warm-up, then linear decay to zero: the paper's protocol), and at every
evaluation point measure exact-match accuracy on held-out inputs of seen instructions
(`seen_test`) and on unseen instructions (`test`), log it and write a checkpoint atomically.
Because batch, learning rate and dropout noise depend only on (seed, step), a resumed run
ends with exactly the metrics and weights of an uninterrupted one (on CPU; CUDA kernels may
not be bitwise deterministic).

Run directory:
    run_config.json    resolved config, seeds, versions, device, date, dataset digests
    metrics.jsonl      one line per evaluation point
    tensorboard/       the same scalars, when TensorBoard is installed
    checkpoints/       step-N/ (model + tokenizer + optimizer + state) and `latest`
    model/             the final model: config.json, model.safetensors, tokenizer files
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rewritelab.batches import (
    EncodedSplit,
    batches_per_epoch,
    check_dataset,
    dataset_alphabet,
    encode_split,
    epoch_batches,
    pad_batch,
    to_device,
)
from rewritelab.checkpoint import RunDirectory
from rewritelab.evaluate import check_context, fast_verdicts
from rewritelab.model import RUN_MODEL_DIR, build_model, count_parameters, save_model
from rewritelab.spec import apply_override
from rewritelab.tokenizer import Tokenizer, loss_mask
from rewritelab.train_config import TrainConfig, seed_of, stream, train_config_from_dict

IGNORE = -100  # target id that carries no loss


def learning_rate(step: int, config: TrainConfig, total_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then linear decay to zero at `total_steps`."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    remaining = total_steps - step
    return config.learning_rate * remaining / max(1, total_steps - config.warmup_steps)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms: nanoGPT's choice)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95), fused=fused)


class Batches:
    """Training batches as a pure function of step; caches only the current epoch's plan."""

    def __init__(self, split: EncodedSplit, config: TrainConfig, pad_id: int, multiple: int):
        self.split, self.config, self.pad_id, self.multiple = split, config, pad_id, multiple
        self.per_epoch = batches_per_epoch(len(split), config.batch_size, config.bucket_batches)
        self._epoch, self._plan = -1, []

    def indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = stream(self.config.seed, "data_order", epoch)
            lengths, config = self.split.lengths, self.config
            self._plan = epoch_batches(lengths, config.batch_size, rng, config.bucket_batches)
            self._epoch = epoch
        return self._plan[position]

    def arrays(self, step: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Input ids (B, T), targets (B, T - 1) with IGNORE where no loss, real token count."""
        indices = self.indices(step)
        ids = pad_batch(self.split, indices, self.pad_id, self.multiple)
        lengths = self.split.lengths[indices]
        mask = loss_mask(
            self.split.prompt_lengths[indices], lengths, ids.shape[1], self.config.loss_on
        )
        targets = np.where(mask, ids[:, 1:], IGNORE)
        return ids, targets, int(lengths.sum())


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ids: torch.Tensor,  # (B, T)
    targets: torch.Tensor,  # (B, T - 1)
    lr: float,
    config: TrainConfig,
    autocast: torch.autocast,
) -> torch.Tensor:
    """One optimisation step; returns the loss as a device tensor (no host sync)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast:
        logits = model(input_ids=ids).logits[:, :-1]  # (B, T - 1, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def eval_subset(split: EncodedSplit, config: TrainConfig, name: str) -> EncodedSplit:
    """A fixed random subset of an evaluation split (all of it when `eval_examples` is 0)."""
    if not config.eval_examples or config.eval_examples >= len(split):
        return split
    rng = stream(config.seed, "eval_subset", name)
    return split.subset(np.sort(rng.choice(len(split), config.eval_examples, replace=False)))


def saved_train_config(run_dir: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """The config a run was started with (plus `key=value` overrides), to resume it."""
    config = RunDirectory(run_dir).saved_config()
    for assignment in overrides:
        apply_override(config, assignment)
    return train_config_from_dict(config)


def train(
    config: TrainConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train a GPT on the dataset in `data_dir`, writing the run to `out_dir`; return the
    final metrics. `resume=True` continues the run in `out_dir` from its latest checkpoint."""
    config.validate()
    run = RunDirectory(out_dir)
    manifest = check_dataset(data_dir)
    if resume:
        run.check_resumable(config, manifest)
    else:
        run.refuse_existing()
    tokenizer = Tokenizer(dataset_alphabet(manifest))
    train_split = encode_split(data_dir, "train", tokenizer)
    evals = {
        "seen": eval_subset(encode_split(data_dir, "seen_test", tokenizer), config, "seen"),
        "unseen": eval_subset(encode_split(data_dir, "test", tokenizer), config, "unseen"),
    }
    for name, split in [("train", train_split), *evals.items()]:
        check_context(split, config.model.context, f"{data_dir} ({name})")
    device = config.resolved_device()
    batches = Batches(train_split, config, tokenizer.pad_id, 8 if device.type == "cuda" else 1)
    total_steps = config.max_steps or config.epochs * batches.per_epoch
    model, optimizer_state, start_step = run.load_latest(device) if resume else (None, None, 0)
    if model is None:
        model = build_model(config.model, tokenizer, seed_of(config.seed, "model_init")).to(device)
    if not resume:
        facts = {
            "total_steps": total_steps,
            "steps_per_epoch": batches.per_epoch,
            "parameters": count_parameters(model),
            "train_examples": len(train_split),
            "train_tokens_per_epoch": int(train_split.lengths.sum()),
        }
        run.create(config, manifest, device, facts)
    elif start_step >= total_steps and run.finished():
        return run.last_metrics()
    optimizer = make_optimizer(model, config)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    loop = Loop(config, model, optimizer, batches, evals, tokenizer, run, total_steps)
    return loop.run(start_step, progress)


class Loop:
    """The mutable state of one training session: model, optimizer, logs, timers."""

    def __init__(
        self,
        config: TrainConfig,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Batches,
        evals: dict[str, EncodedSplit],
        tokenizer: Tokenizer,
        run: RunDirectory,
        total_steps: int,
    ):
        self.config, self.model, self.optimizer = config, model, optimizer
        self.batches, self.evals, self.tokenizer = batches, evals, tokenizer
        self.directory, self.total_steps = run, total_steps
        self.device = next(model.parameters()).device
        cuda = self.device.type == "cuda"
        self.autocast = torch.autocast(
            self.device.type, torch.bfloat16, enabled=cuda and config.bf16
        )
        self.forward = torch.compile(model, dynamic=True) if cuda and config.compile else model
        self.every = config.eval_every or batches.per_epoch

    def run(self, start_step: int, progress: bool) -> dict:
        """Steps `start_step` to the end, evaluating and checkpointing on schedule."""
        self.directory.open_logs(start_step)
        bar = tqdm(total=self.total_steps, initial=start_step, disable=not progress, unit="step")
        loss_sum, steps, tokens = torch.zeros((), device=self.device), 0, 0
        window_start, last = time.perf_counter(), self.directory.last_metrics() or {}
        self.model.train()
        for step in range(start_step, self.total_steps):
            ids, targets, real_tokens = self.batches.arrays(step)
            if self.config.model.dropout > 0:
                torch.manual_seed(seed_of(self.config.seed, "dropout", step))
            lr = learning_rate(step, self.config, self.total_steps)
            ids, targets = to_device(ids, self.device), to_device(targets, self.device)
            loss_sum += train_step(
                self.forward, self.optimizer, ids, targets, lr, self.config, self.autocast
            )
            steps, tokens = steps + 1, tokens + real_tokens
            bar.update()
            done = step + 1 == self.total_steps
            if (step + 1) % self.every == 0 or done:
                train_loss = loss_sum.item() / steps  # .item() waits for the device
                tokens_per_s = tokens / (time.perf_counter() - window_start)
                last = self.evaluate(step + 1, train_loss, lr, tokens_per_s)
                loss_sum.zero_()
                steps, tokens, window_start = 0, 0, time.perf_counter()
                bar.set_postfix(loss=f"{train_loss:.4f}", **_accuracies(last))
            elif (step + 1) % self.config.log_every == 0:
                tokens_per_s = tokens / (time.perf_counter() - window_start)
                bar.set_postfix(
                    loss=f"{loss_sum.item() / steps:.4f}",
                    tok_s=f"{tokens_per_s:.0f}",
                    **_accuracies(last),
                )
        bar.close()
        save_model(self.model, self.tokenizer, self.directory.staging(RUN_MODEL_DIR))
        self.directory.publish(RUN_MODEL_DIR)
        self.directory.close_logs()
        return last

    def evaluate(self, step: int, train_loss: float, lr: float, tokens_per_s: float) -> dict:
        """Measure accuracies, log them, checkpoint; return the logged metrics."""
        self.model.eval()
        with self.autocast:
            accuracies = {
                f"{name}_accuracy": float(
                    fast_verdicts(
                        self.model, split, self.tokenizer, self.config.eval_batch_size
                    ).mean()
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
            "tokens_per_s": tokens_per_s,
            "elapsed_s": self.directory.elapsed_s(),
        }
        self.directory.log(metrics)
        self.directory.save_checkpoint(step, self.model, self.tokenizer, self.optimizer)
        return metrics


def _accuracies(metrics: dict) -> dict:
    """Progress-bar fields for the accuracies among `metrics`."""
    return {
        key.removesuffix("_accuracy"): f"{value:.3f}"
        for key, value in metrics.items()
        if key.endswith("_accuracy")
    }
