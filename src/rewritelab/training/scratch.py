"""Training from scratch: a GPT learns a generated dataset; seen and unseen accuracy are tracked.

The story of `train`: read the dataset (its files checked against their manifest) and build the
tokenizer from its alphabet, in the prompt layout of its task (a single rule, or a whole
algorithm written with the answer the `target` asks for); create the run directory (never over
an existing one) or reopen it to resume; hand the GPT, its batches and its evaluator to the
shared loop (`rewritelab.training.loop`), which takes AdamW steps and, at every evaluation
point, measures exact-match accuracy on held-out inputs of seen instructions (`seen_test`) and on
unseen instructions (`test`), logs it and writes a checkpoint atomically.

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

import torch

from rewritelab.core.config import from_dict, load_config
from rewritelab.core.errors import RewritelabError
from rewritelab.core.seeds import seed_of
from rewritelab.evaluation.evaluate import (
    check_context,
    eval_splits,
    evaluation_point,
    fast_verdicts,
)
from rewritelab.model.batches import (
    Batches,
    EncodedSplit,
    check_dataset,
    dataset_digest,
    dataset_tokenizer,
    encode_split,
    resolve_target,
)
from rewritelab.model.gpt import (
    GPT,
    GPTTrainee,
    ModelConfig,
    build_model,
    count_parameters,
)
from rewritelab.model.tokenizer import LOSS_MODES
from rewritelab.tasks.registry import TASKS
from rewritelab.training.loop import LoopConfig, check_ints, train_run
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


class ScratchTrainee(GPTTrainee):
    """A freshly initialised GPT, its training batches and its seen/unseen evaluation."""

    def __init__(self, config: TrainConfig, data_dir: Path, device: torch.device):
        self.config, self.data_dir = config, data_dir
        self.manifest = check_dataset(data_dir)
        self.tokenizer = dataset_tokenizer(self.manifest)
        self.target = resolve_target(self.manifest, config.target)
        self.train_split = encode_split(data_dir, "train", self.tokenizer, self.target)
        self.evals = eval_splits(
            lambda split: encode_split(data_dir, split, self.tokenizer, self.target),
            config.eval_examples,
            config.seed,
            self.train_split if config.stop_at_train_accuracy else None,
        )
        for name, split in [("train", self.train_split), *self.evals.items()]:
            check_context(split, config.model.context, f"{data_dir} ({name})")
        self.batch = Batches(
            self.train_split,
            config.seed,
            config.batch_size,
            config.bucket_batches,
            self.tokenizer.pad_id,
            config.loss_on,
            multiple=8 if device.type == "cuda" else 1,
        )
        self.steps_per_epoch = self.eval_every_default = self.batch.per_epoch
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        init_seed = seed_of(config.seed, "model_init")
        self.model: GPT = build_model(config.model, self.tokenizer, init_seed).to(device)

    def evaluate(self) -> dict:
        batch_size = self.config.eval_batch_size
        return evaluation_point(
            self.evals, lambda name, split: fast_verdicts(self.model, split, batch_size)
        )

    def data_identity(self) -> dict:
        return dataset_digest(self.manifest)

    def facts(self) -> dict:
        split: EncodedSplit = self.train_split
        return {
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "parameters": count_parameters(self.model),
            "train_examples": len(split),
            "train_tokens_per_epoch": int(split.lengths.sum()),
        } | ({"target": self.target} if self.target else {})


def train(
    config: TrainConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train a GPT on the dataset in `data_dir`, writing the run to `out_dir`; return the
    final metrics. `resume=True` continues the run in `out_dir` from its latest checkpoint."""
    return train_run(
        lambda device: ScratchTrainee(config, Path(data_dir), device),
        config,
        out_dir,
        resume,
        progress,
    )
