"""The configuration of training from scratch (`train`), validated.

Config file layout (TOML; YAML with the same keys also works), every key optional:

    seed = 0
    epochs = 50                # or max_steps = 100000 (takes precedence)
    batch_size = 512
    learning_rate = 1e-3       # AdamW, linear warm-up then linear decay to 0 (paper)
    warmup_steps = 100
    weight_decay = 0.01
    grad_clip = 1.0
    loss_on = "answer"         # or "sequence": loss on every token after <bos>
    target = "final"           # algorithm datasets only: "step", "final" (default) or "trace"
    bucket_batches = 50        # length buckets span this many batches; 1 = plain random batches
    eval_every = 0             # steps between evaluations; 0 = once per epoch
    eval_at = [25, 50, 100]    # more steps to evaluate at (e.g. early: when accuracy rises)
    eval_examples = 2000       # random subset of each evaluation split; 0 = all
    stop_at_train_accuracy = 0 # stop once exact match on eval_examples training examples
                               # reaches this (E3's cpu: 0.98); 0 = to the end
    eval_batch_size = 0        # 0 = 1024 on CUDA, 64 on CPU
    log_every = 50             # steps between progress-bar updates
    device = "auto"            # or "cpu", "cuda", "cuda:1"
    threads = 0                # torch threads; 0 = usable cores / processes at once
    bf16 = true                # bf16 autocast where the hardware computes it natively
    compile = true             # torch.compile, CUDA only

    [model]
    layers = 6
    heads = 4
    width = 256
    context = 256
    dropout = 0.0
    vocab_size = 0             # embedding/head rows; 0 = the tokenizer's, more = unused padding
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewritelab.core.config import from_dict, load_config
from rewritelab.core.errors import RewritelabError
from rewritelab.model.gpt import ModelConfig
from rewritelab.model.tokenizer import LOSS_MODES
from rewritelab.tasks.registry import TASKS
from rewritelab.training.loop_config import LoopConfig, check_ints
from rewritelab.training.runs import RunDirectory


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """How to train from scratch: the loop's settings plus batching, evaluation and the model."""

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 50
    max_steps: int | None = None
    batch_size: int = 512
    loss_on: str = "answer"
    bucket_batches: int = 50
    eval_examples: int = 2000
    eval_batch_size: int = 0
    target: str | None = None  # algorithm datasets: what the model writes (None: "final")

    def validate(self) -> TrainConfig:
        super().validate()
        self.model.validate()
        check_ints(self, {"epochs": 1, "batch_size": 1, "bucket_batches": 1, "max_steps": 1})
        check_ints(self, {"eval_examples": 0, "eval_batch_size": 0})
        if self.loss_on not in LOSS_MODES:
            raise RewritelabError(f"loss_on must be one of {LOSS_MODES}, got {self.loss_on!r}")
        targets = tuple(dict.fromkeys(t for task in TASKS.values() for t in task.targets))
        if self.target is not None and self.target not in targets:
            raise RewritelabError(f"target must be one of {targets}, got {self.target!r}")
        return self


def train_config_from_dict(values: dict) -> TrainConfig:
    """A validated TrainConfig from plain data; unknown keys are refused by name."""
    return from_dict(TrainConfig, values)


def load_train_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """A validated TrainConfig from an optional config file plus `key=value` overrides
    (`model.layers=2`, `epochs=3`)."""
    return load_config(TrainConfig, path, overrides)


def saved_train_config(run_dir: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """The config a run was started with (plus `key=value` overrides), to resume it."""
    return load_config(
        TrainConfig, None, overrides, base=RunDirectory(run_dir).recorded()["config"]
    )
