"""Fine-tuning configuration: LoRA (or full) fine-tuning of a pretrained causal LM, validated.

Config file layout (TOML; YAML works too), every key optional:

    preset = "paper"            # start from a named preset (below), then apply the keys here
    method = "lora"             # or "full": every weight trains (no adapter)
    template = "auto"           # auto | native | symbolic | natural (see rewritelab.model.prompts)
    reinitialize = false        # keep the base's architecture and tokenizer, draw fresh weights
    lora_rank = 16
    lora_alpha = 32
    lora_dropout = 0.0
    target_modules = []         # [] = chosen per architecture (GPT-2 c_attn, Llama q_proj/v_proj)
    seed = 0
    max_steps = 300             # optimiser steps
    batch_size = 32             # examples per optimiser step
    gradient_accumulation = 1   # micro-batches per step (batch_size must divide evenly)
    learning_rate = 1e-4        # AdamW, linear warm-up then linear decay to 0
    warmup_steps = 20
    weight_decay = 0.0
    grad_clip = 1.0
    bucket_batches = 50         # length buckets span this many batches (as `train`)
    eval_every = 0              # steps between evaluations; 0 = at the end only
    eval_examples = 500         # random subset of each evaluation split; 0 = all
    eval_path = "auto"          # auto | fast | generate (auto: fast when the tokenizer allows)
    stop_at_train_accuracy = 0  # stop at the first evaluation whose exact match on eval_examples
                                # training examples reaches this (needs eval_every); 0 = never
    eval_batch_size = 0         # 0 = 64 on CUDA, 16 on CPU
    checkpoint_every = 100      # steps between checkpoints (and at every evaluation)
    device = "auto"
    threads = 0                 # torch threads; 0 = usable cores / processes at once
    bf16 = true                 # bf16 autocast where the hardware has bf16; bf16 LoRA bases on CUDA
    compile = false             # torch.compile the loss (CUDA only)
    load_in_8bit = false        # CUDA + bitsandbytes only: quantise the frozen base to 8 bits
    allow_download = false      # let transformers fetch a Hugging Face id not in the local cache

Presets: `paper` is the setting of the paper's E6 (LoRA rank 512, alpha 1024, lr 1e-5, batch 64,
2,000 steps, 8-bit base); `small` (the defaults) suits small models on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewritelab.core.config import load_config, read_values
from rewritelab.core.errors import RewritelabError
from rewritelab.model.prompts import TEMPLATES
from rewritelab.model.tokenizer import LOSS_MODES
from rewritelab.training.loop_config import LoopConfig, check_ints

METHODS = ("lora", "full")
EVAL_PATHS = ("auto", "fast", "generate")


@dataclass(frozen=True)
class FinetuneConfig(LoopConfig):
    """How to fine-tune a pretrained model on a rewrite dataset (plus the loop's settings)."""

    method: str = "lora"
    template: str = "auto"
    reinitialize: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)
    max_steps: int = 300
    batch_size: int = 32
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    loss_on: str = "answer"
    bucket_batches: int = 50
    eval_examples: int = 500
    eval_path: str = "auto"
    eval_batch_size: int = 0
    checkpoint_every: int = 100
    compile: bool = False
    load_in_8bit: bool = False
    allow_download: bool = False

    def validate(self) -> FinetuneConfig:
        super().validate()
        for name, choices in (
            ("method", METHODS),
            ("template", TEMPLATES),
            ("eval_path", EVAL_PATHS),
            ("loss_on", LOSS_MODES),
        ):
            if getattr(self, name) not in choices:
                raise RewritelabError(
                    f"{name} must be one of {choices}, got {getattr(self, name)!r}"
                )
        check_ints(self, {"lora_rank": 1, "max_steps": 1, "batch_size": 1, "bucket_batches": 1})
        check_ints(self, {"gradient_accumulation": 1, "eval_examples": 0, "eval_batch_size": 0})
        if self.batch_size % self.gradient_accumulation:
            raise RewritelabError(
                f"batch_size ({self.batch_size}) must be divisible by gradient_accumulation "
                f"({self.gradient_accumulation})"
            )
        if not self.lora_alpha > 0:
            raise RewritelabError("lora_alpha must be positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise RewritelabError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not all(isinstance(m, str) and m for m in self.target_modules):
            raise RewritelabError(f"target_modules must be module names, got {self.target_modules}")
        if self.reinitialize and self.method == "lora":
            raise RewritelabError("reinitialize needs method = 'full': LoRA on random weights")
        return self

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.gradient_accumulation


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's E6 (Llama-2-7B): LoRA rank 512, alpha 1024, lr 1e-5, batch 64, ~2000 steps,
    # 8-bit base. Micro-batches of 8 keep a 7B model within one 40-80 GB GPU.
    "paper": {
        "lora_rank": 512,
        "lora_alpha": 1024,
        "learning_rate": 1e-5,
        "batch_size": 64,
        "gradient_accumulation": 8,
        "max_steps": 2000,
        "warmup_steps": 50,
        "load_in_8bit": True,
        "eval_examples": 0,
        "eval_batch_size": 64,
        "checkpoint_every": 200,
    },
    "small": {},
}


def finetune_config_from_dict(values: dict[str, Any]) -> FinetuneConfig:
    """A validated FinetuneConfig from plain data: `preset` first, then the other keys."""
    return load_finetune_config(base=values)


def load_finetune_config(
    path: str | Path | None = None,
    overrides: list[str] = (),
    preset: str | None = None,
    base: dict[str, Any] | None = None,
) -> FinetuneConfig:
    """A validated FinetuneConfig from `base` values, an optional file, a preset and
    `key=value` overrides; the preset's values come first, every other key overrides them."""
    values = read_values(path, overrides, base)
    preset = preset or values.pop("preset", None)
    values.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise RewritelabError(f"unknown fine-tuning preset {preset!r} (known: {list(PRESETS)})")
    return load_config(FinetuneConfig, None, (), base={**PRESETS.get(preset, {}), **values})
