"""Training from scratch: a GPT learns a generated dataset; seen and unseen accuracy are tracked.

The story of `train`: read the dataset (its files checked against their manifest) and build the
tokenizer from its alphabet, in the prompt layout of its task (a single rule, or a whole
algorithm written with the answer the `target` asks for); create the run directory (never over
an existing one) or reopen it to resume; hand the GPT, its batches and its evaluator to the
shared loop (`rewritelab.training.loop`), which takes AdamW steps and, at every evaluation
point, measures exact-match accuracy on held-out inputs of seen instructions (`seen_test`) and on
unseen instructions (`test`), logs it and writes a checkpoint atomically.
Its configuration is `scratch_config.TrainConfig`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rewritelab.core.seeds import seed_of
from rewritelab.evaluation.accuracy import eval_splits, evaluation_point
from rewritelab.evaluation.exact_match import check_context, fast_verdicts
from rewritelab.model.batches import Batches, EncodedSplit
from rewritelab.model.encoding import (
    check_dataset,
    dataset_digest,
    dataset_tokenizer,
    encode_split,
    resolve_target,
)
from rewritelab.model.files import GPTTrainee
from rewritelab.model.gpt import GPT, build_model, count_parameters
from rewritelab.training.loop import train_run
from rewritelab.training.scratch_config import TrainConfig


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
