"""Fine-tuning pretrained causal LMs on rewrite instructions (paper E6): LoRA or full.

The story of `finetune`: load the base model and its tokenizer (a local directory, or a
Hugging Face id found in the local cache), check that the tokenizer can write the dataset's
words, tokenise the splits with a prompt template (`rewritelab.model.prompts`), wrap the model
with a LoRA adapter (`peft`) unless every weight is to train, and hand it to the shared loop
(`rewritelab.training.loop`): the same schedule, steps, evaluation points, checkpoints, logs
and resume as from-scratch training, with gradient accumulation over micro-batches. Accuracy uses
the one evaluator (`rewritelab.evaluation.evaluate`).

Run directory (see `rewritelab.training.runs`), with the final weights in
    adapter/           the final LoRA adapter (peft) + tokenizer       (method = "lora")
    model/             the final fine-tuned model + tokenizer          (method = "full")
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from rewritelab.core.errors import RewritelabError
from rewritelab.evaluation.accuracy import eval_splits, evaluation_point
from rewritelab.evaluation.exact_match import check_context, choose_path, model_context, verdicts_of
from rewritelab.model.batches import Batches, EncodedSplit
from rewritelab.model.encoding import check_dataset, dataset_alphabet, dataset_digest
from rewritelab.model.gpt import RUN_MODEL_DIR
from rewritelab.model.pretrained import (
    ADAPTER_DIR,
    BaseLoading,
    attach_lora,
    load_base,
    save_tuned,
)
from rewritelab.model.prompts import check_codec, encode_dataset_split, resolve_template
from rewritelab.tasks.registry import task_of
from rewritelab.training.finetune_config import FinetuneConfig
from rewritelab.training.loop import lm_loss, train_run
from rewritelab.training.runs import RunDirectory


class FinetuneTrainee:
    """A pretrained base (with a LoRA adapter, or whole), its batches and its evaluation."""

    loss = staticmethod(lm_loss)

    def __init__(self, base: str | Path, data_dir: Path, config: FinetuneConfig, device):
        self.base, self.config, self.device = base, config, device
        self.final_dir = ADAPTER_DIR if config.method == "lora" else RUN_MODEL_DIR
        self.manifest = check_dataset(data_dir)
        task = task_of(self.manifest)
        if not task.text_prompts:
            raise RewritelabError(
                f"fine-tuning needs a task that text prompts can write (task = 'rule'); "
                f"{task.name!r} has none"
            )
        model, self.codec = load_base(base, BaseLoading.of(config.to_dict()), device)
        self.template = resolve_template(config.template, self.codec)
        check_codec(self.codec, self.template, dataset_alphabet(self.manifest), str(base))
        train_split = encode_dataset_split(self.codec, self.template, data_dir, "train")
        self.evals = eval_splits(
            lambda split: encode_dataset_split(self.codec, self.template, data_dir, split),
            config.eval_examples,
            config.seed,
            train_split if config.stop_at_train_accuracy else None,
        )
        for name, split in [("train", train_split), *self.evals.items()]:
            check_context(split, model_context(model), f"{data_dir} ({name})")
        self.eval_paths = {
            name: choose_path(config.eval_path, self.codec, self.template, split)
            for name, split in self.evals.items()
        }
        self.batch = Batches(
            train_split,
            config.seed,
            config.batch_size,
            config.bucket_batches,
            self.codec.pad_id,
            config.loss_on,
            micro_batch_size=config.micro_batch_size,
            multiple=8 if device.type == "cuda" else 1,
        )
        self.steps_per_epoch = self.batch.per_epoch
        self.total_steps = self.eval_every_default = config.max_steps  # evaluated at the end
        self.train_examples = len(train_split)
        self.model = attach_lora(model, config) if config.method == "lora" else model

    def evaluate(self) -> dict:
        def verdicts(name: str, split: EncodedSplit) -> np.ndarray:
            path, batch_size = self.eval_paths[name], self.config.eval_batch_size
            return verdicts_of(self.model, split, self.codec, path, batch_size)[0]

        return evaluation_point(self.evals, verdicts)

    def save(self, directory: Path) -> None:
        save_tuned(self.model, self.codec, directory)

    def load(self, directory: Path) -> None:
        """Reload the weights of a checkpoint: the adapter, or the whole model."""
        if self.config.method == "lora":
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights

            set_peft_model_state_dict(self.model, load_peft_weights(str(directory)))
        else:
            loading = BaseLoading.of(self.config.to_dict())
            model, _ = load_base(directory, replace(loading, reinitialize=False), self.device)
            self.model.load_state_dict(model.state_dict())

    def data_identity(self) -> dict:
        return dataset_digest(self.manifest)

    def facts(self) -> dict:
        peft_config = getattr(self.model, "peft_config", None)
        return {
            "base": str(self.base),
            "template": self.template,
            "tokenizer": self.codec.kind,
            "target_modules": sorted(peft_config["default"].target_modules)
            if peft_config
            else None,
            "total_steps": self.config.max_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "trainable_parameters": sum(
                p.numel() for p in self.model.parameters() if p.requires_grad
            ),
            "train_examples": self.train_examples,
        }


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
    if resume and str(RunDirectory(out_dir).recorded().get("base")) != str(base):
        raise RewritelabError(f"cannot resume {out_dir}: it fine-tunes another base model")
    return train_run(
        lambda device: FinetuneTrainee(base, Path(data_dir), config, device),
        config,
        out_dir,
        resume,
        progress,
    )
