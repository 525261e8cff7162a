"""Fine-tuning configuration: LoRA (or full) fine-tuning of a pretrained causal LM, validated.

Config file layout (TOML; YAML works too), every key optional:

    preset = "paper"            # start from a named preset (below), then apply the keys here
    method = "lora"             # or "full": every weight trains (no adapter)
    template = "auto"           # auto | native | symbolic | natural (see rewritelab.prompts)
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
    eval_batch_size = 0         # 0 = 64 on CUDA, 16 on CPU
    checkpoint_every = 100      # steps between checkpoints (and at every evaluation)
    device = "auto"
    bf16 = true                 # CUDA only: load LoRA bases in bf16, bf16 autocast
    load_in_8bit = false        # CUDA + bitsandbytes only: quantise the frozen base to 8 bits
    allow_download = false      # let transformers fetch a Hugging Face id not in the local cache

Presets: `paper` is the setting of the paper's E6 (LoRA rank 512, alpha 1024, lr 1e-5, batch 64,
2,000 steps, 8-bit base); `small` (the defaults) suits small models on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rewritelab.errors import RewritelabError
from rewritelab.model import pick_device
from rewritelab.prompts import TEMPLATES
from rewritelab.spec import apply_override, read_config_file
from rewritelab.tokenizer import LOSS_MODES

METHODS = ("lora", "full")
EVAL_PATHS = ("auto", "fast", "generate")


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune a pretrained model on a rewrite dataset."""

    method: str = "lora"
    template: str = "auto"
    reinitialize: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)
    seed: int = 0
    max_steps: int = 300
    batch_size: int = 32
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss_on: str = "answer"
    bucket_batches: int = 50
    eval_every: int = 0
    eval_examples: int = 500
    eval_path: str = "auto"
    eval_batch_size: int = 0
    checkpoint_every: int = 100
    device: str = "auto"
    bf16: bool = True
    load_in_8bit: bool = False
    allow_download: bool = False

    def validate(self) -> FinetuneConfig:
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
        for name in ("lora_rank", "max_steps", "batch_size", "gradient_accumulation"):
            _check_int(name, getattr(self, name), 1)
        for name in ("bucket_batches", "checkpoint_every"):
            _check_int(name, getattr(self, name), 1)
        for name in ("seed", "warmup_steps", "eval_every", "eval_examples", "eval_batch_size"):
            _check_int(name, getattr(self, name), 0)
        if self.batch_size % self.gradient_accumulation:
            raise RewritelabError(
                f"batch_size ({self.batch_size}) must be divisible by gradient_accumulation "
                f"({self.gradient_accumulation})"
            )
        if not self.learning_rate > 0 or not self.lora_alpha > 0:
            raise RewritelabError("learning_rate and lora_alpha must be positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise RewritelabError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise RewritelabError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not all(isinstance(m, str) and m for m in self.target_modules):
            raise RewritelabError(f"target_modules must be module names, got {self.target_modules}")
        if self.reinitialize and self.method == "lora":
            raise RewritelabError("reinitialize needs method = 'full': LoRA on random weights")
        pick_device(self.device)
        return self

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.gradient_accumulation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RewritelabError(f"{name} must be an integer >= {minimum}, got {value!r}")


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
    values = dict(values)
    preset = values.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise RewritelabError(f"unknown fine-tuning preset {preset!r} (known: {list(PRESETS)})")
    merged = {**PRESETS.get(preset, {}), **values}
    known = {name: kind for name, kind in FinetuneConfig.__annotations__.items()}
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise RewritelabError(f"unknown fine-tuning setting(s): {', '.join(unknown)}")
    config = FinetuneConfig()
    for key, value in merged.items():
        default = getattr(config, key)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(default):
            raise RewritelabError(f"fine-tuning setting {key} has the wrong type: {value!r}")
        config = replace(config, **{key: value})
    return config.validate()


def load_finetune_config(
    path: str | Path | None = None, overrides: list[str] = (), preset: str | None = None
) -> FinetuneConfig:
    """A validated FinetuneConfig from an optional file, a preset and `key=value` overrides."""
    values = read_config_file(path) if path is not None else {}
    if preset is not None:
        values["preset"] = preset
    for assignment in overrides:
        apply_override(values, assignment)
    return finetune_config_from_dict(values)
