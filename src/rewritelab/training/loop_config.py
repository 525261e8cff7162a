"""The settings every training loop shares (`LoopConfig`), validated; each kind of run extends
them with its own (`scratch_config`, `finetune_config`, `pretrain`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import parse_device, usable_cores
from rewritelab.training.trackers import check_tracker


@dataclass(frozen=True)
class LoopConfig:
    """Settings of the loop itself, shared by every kind of run (each adds its own)."""

    seed: int = 0
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    adam_beta2: float = 0.95  # AdamW's second-moment decay (nanoGPT's 0.95; PyTorch's 0.999)
    grad_clip: float = 1.0
    eval_every: int = 0  # steps between evaluations; 0 = the run's default (see each path)
    # Steps evaluated besides those (e.g. early ones, to time when accuracy leaves its floor).
    eval_at: list[int] = field(default_factory=list)
    checkpoint_every: int = 0  # steps between extra checkpoints; 0 = at evaluations only
    log_every: int = 50  # steps between progress-bar updates
    device: str = "auto"  # or "cpu", "cuda", "cuda:1"
    threads: int = 0  # torch threads; 0 = usable cores / processes running at once
    bf16: bool = True  # bf16 autocast where the hardware computes it natively
    compile: bool = True  # torch.compile, CUDA only (on a CPU it does not pay for its warm-up)
    # Stop at the first evaluation point whose exact match on a sample of the training examples
    # reaches this (the model has mastered what it was trained on); 0 = train to the end.
    stop_at_train_accuracy: float = 0.0
    tracker: str = "tensorboard"  # also "none", "mlflow", "wandb", "trackio" (`trackers`)

    def validate(self) -> LoopConfig:
        for name in ("seed", "warmup_steps", "eval_every", "checkpoint_every", "threads"):
            _check_int(name, getattr(self, name), minimum=0)
        _check_int("log_every", self.log_every, minimum=1)
        for step in self.eval_at:
            _check_int("every step of eval_at", step, minimum=1)
        if self.threads > usable_cores():
            raise RewritelabError(
                f"threads must be at most this machine's {usable_cores()} usable cores "
                f"(0 = one share of them per process), got {self.threads}"
            )
        if not 0 <= self.stop_at_train_accuracy <= 1:
            raise RewritelabError(
                f"stop_at_train_accuracy must be in [0, 1], got {self.stop_at_train_accuracy!r}"
            )
        if not self.learning_rate > 0:
            raise RewritelabError(f"learning_rate must be positive, got {self.learning_rate!r}")
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise RewritelabError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.adam_beta2 < 1:
            raise RewritelabError(f"adam_beta2 must be in [0, 1), got {self.adam_beta2!r}")
        check_tracker(self.tracker)
        parse_device(self.device)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RewritelabError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_ints(config: Any, minimums: dict[str, int]) -> None:
    """Refuse any of the named integer settings below its minimum (None allowed if the field
    defaults to None)."""
    for name, minimum in minimums.items():
        value = getattr(config, name)
        if value is not None:
            _check_int(name, value, minimum)
