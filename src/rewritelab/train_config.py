"""Training configuration: every choice the paper leaves open, named, defaulted and validated.

Config file layout (TOML; YAML with the same keys also works), every key optional:

    seed = 0
    epochs = 50                # or max_steps = 100000 (takes precedence)
    batch_size = 512
    learning_rate = 1e-3       # AdamW, linear warm-up then linear decay to 0 (paper)
    warmup_steps = 100
    weight_decay = 0.01
    grad_clip = 1.0
    loss_on = "answer"         # or "sequence": loss on every token after <bos>
    bucket_batches = 50        # length buckets span this many batches; 1 = plain random batches
    eval_every = 0             # steps between evaluations; 0 = once per epoch
    eval_examples = 2000       # random subset of each evaluation split; 0 = all
    eval_batch_size = 1024     # default: 1024 on CUDA, 64 on CPU
    log_every = 50             # steps between progress-bar updates
    device = "auto"            # or "cpu", "cuda", "cuda:1"
    bf16 = true                # bf16 autocast, CUDA only
    compile = true             # torch.compile, CUDA only

    [model]
    layers = 6
    heads = 4
    width = 256
    context = 256
    dropout = 0.0

Seeds: one named stream per source of randomness (model init, data order, dropout, evaluation
subset), derived from `seed` with `numpy.random.SeedSequence`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewritelab.errors import RewritelabError
from rewritelab.model import ModelConfig, pick_device
from rewritelab.spec import apply_override, read_config_file
from rewritelab.tokenizer import LOSS_MODES

SEED_STREAMS = ("model_init", "data_order", "dropout", "eval_subset")


def _spawn_key(name: str, extra: tuple) -> tuple[int, ...]:
    return (SEED_STREAMS.index(name), *(_as_int(part) for part in extra))


def _as_int(part: int | str) -> int:
    return part if isinstance(part, int) else int.from_bytes(part.encode("utf-8"), "little")


def stream(seed: int, name: str, *extra: int | str) -> np.random.Generator:
    """The generator of one named source of randomness (plus e.g. the epoch or split name)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_spawn_key(name, extra)))


def seed_of(seed: int, name: str, *extra: int | str) -> int:
    """A 63-bit integer seed (for torch) of one named source of randomness."""
    state = np.random.SeedSequence(seed, spawn_key=_spawn_key(name, extra)).generate_state(2)
    return int(state[0]) << 31 ^ int(state[1])


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimisation, batching, evaluation and device settings, plus the model."""

    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    epochs: int = 50
    max_steps: int | None = None
    batch_size: int = 512
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    loss_on: str = "answer"
    bucket_batches: int = 50
    eval_every: int = 0
    eval_examples: int = 2000
    eval_batch_size: int | None = None
    log_every: int = 50
    device: str = "auto"
    bf16: bool = True
    compile: bool = True

    def validate(self) -> TrainConfig:
        self.model.validate()
        for name in ("epochs", "batch_size", "bucket_batches", "log_every"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("seed", "warmup_steps", "eval_every", "eval_examples"):
            _check_int(name, getattr(self, name), minimum=0)
        for name in ("max_steps", "eval_batch_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        if not self.learning_rate > 0:
            raise RewritelabError(f"learning_rate must be positive, got {self.learning_rate!r}")
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise RewritelabError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.loss_on not in LOSS_MODES:
            raise RewritelabError(f"loss_on must be one of {LOSS_MODES}, got {self.loss_on!r}")
        pick_device(self.device)
        return self

    def resolved_device(self) -> torch.device:
        return pick_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RewritelabError(f"{name} must be an integer >= {minimum}, got {value!r}")


_TYPES = {
    "int": int,
    "int | None": int,
    "float": float,
    "str": str,
    "bool": bool,
}


def _coerce(section: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """Check the keys and value types of one config section against its dataclass."""
    known = {f.name: f for f in fields(section)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RewritelabError(f"unknown {where} setting(s): {', '.join(unknown)}")
    coerced = {}
    for key, value in values.items():
        expected = _TYPES.get(str(known[key].type))
        if value is None and "None" in str(known[key].type):
            coerced[key] = None
        elif expected is float and isinstance(value, int | float) and not isinstance(value, bool):
            coerced[key] = float(value)
        elif expected is not None and type(value) is expected:
            coerced[key] = value
        else:
            raise RewritelabError(f"{where}{key} has the wrong type: {value!r}")
    return coerced


def train_config_from_dict(config: dict[str, Any]) -> TrainConfig:
    """Build and validate a TrainConfig from plain data; unknown keys are refused by name."""
    config = dict(config)
    model_values = config.pop("model", {})
    if not isinstance(model_values, dict):
        raise RewritelabError("the [model] section must be a table of settings")
    model = ModelConfig(**_coerce(ModelConfig, model_values, "model."))
    values = _coerce(TrainConfig, config, "")
    return TrainConfig(model=model, **values).validate()


def load_train_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """A validated TrainConfig from an optional config file plus `key=value` overrides
    (`model.layers=2`, `epochs=3`)."""
    config = read_config_file(path) if path is not None else {}
    for assignment in overrides:
        apply_override(config, assignment)
    return train_config_from_dict(config)
