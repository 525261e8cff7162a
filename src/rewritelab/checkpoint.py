"""A training run's directory: provenance, metric logs and atomic checkpoints.

Nothing in a run directory is ever half-written: checkpoints and the final model are written
under a temporary name and renamed into place, and `checkpoints/latest` (the name of the
newest complete checkpoint) is replaced atomically. A run directory that exists is never
reused except to resume it; resuming refuses a different config or a different dataset.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
import transformers

from rewritelab import __version__
from rewritelab.errors import RewritelabError
from rewritelab.model import RUN_MODEL_DIR, load_model, save_model
from rewritelab.provenance import git_hash
from rewritelab.tokenizer import Tokenizer
from rewritelab.train_config import SEED_STREAMS, TrainConfig, seed_of

RUN_CONFIG = "run_config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
OPTIMIZER = "optimizer.pt"
STATE = "trainer_state.json"
# Settings a resumed run may change: they do not affect what is computed.
RESUME_FREE = {"device", "log_every", "eval_batch_size", "compile"}


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary file, then rename it over `path`."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


class RunDirectory:
    """One run's files (see `train` for the layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.started = time.perf_counter()
        self.writer = None

    def refuse_existing(self) -> None:
        if self.path.exists():
            raise RewritelabError(
                f"run directory {self.path} already exists (resume it, or choose another)"
            )

    def create(
        self, config: TrainConfig, manifest: dict, device: torch.device, facts: dict
    ) -> None:
        """Create the directory and record the run's provenance in run_config.json."""
        self.refuse_existing()
        self.path.mkdir(parents=True)
        write_json_atomic(
            self.path / RUN_CONFIG,
            {
                "config": config.to_dict(),
                "seeds": {name: seed_of(config.seed, name) for name in SEED_STREAMS},
                "dataset": {"files": manifest.get("files"), "version": manifest.get("version")},
                **facts,
                "rewritelab_version": __version__,
                "git_hash": git_hash(),
                "torch_version": torch.__version__,
                "transformers_version": transformers.__version__,
                "python_version": platform.python_version(),
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else platform.processor() or platform.machine(),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    def check_resumable(self, config: TrainConfig, manifest: dict) -> None:
        """Refuse to resume a missing run, or one with another config or dataset."""
        path = self.path / RUN_CONFIG
        if not path.is_file():
            raise RewritelabError(f"cannot resume: {self.path} has no {RUN_CONFIG}")
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise RewritelabError(f"cannot resume: {path} is unreadable: {error}") from None
        saved, given = _flatten(recorded["config"]), _flatten(config.to_dict())
        changed = sorted(
            key
            for key in saved.keys() | given.keys()
            if saved.get(key) != given.get(key) and key not in RESUME_FREE
        )
        if changed:
            raise RewritelabError(
                f"cannot resume {self.path}: config differs in {', '.join(changed)}"
            )
        if recorded["dataset"]["files"] != manifest.get("files"):
            raise RewritelabError(f"cannot resume {self.path}: the dataset has changed")

    def saved_config(self) -> dict:
        """The config dict recorded in run_config.json (to resume with the same settings)."""
        path = self.path / RUN_CONFIG
        try:
            return json.loads(path.read_text(encoding="utf-8"))["config"]
        except (OSError, json.JSONDecodeError, KeyError) as error:
            raise RewritelabError(f"cannot read the config of run {self.path}: {error}") from None

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(
        self, step: int, model: torch.nn.Module, tokenizer: Tokenizer, optimizer
    ) -> None:
        """Write checkpoints/step-N atomically, point `latest` at it, drop older ones."""
        name = f"step-{step:08d}"
        partial = self.staging(f"{CHECKPOINTS}/{name}")
        save_model(model, tokenizer, partial)
        torch.save(optimizer.state_dict(), partial / OPTIMIZER)
        (partial / STATE).write_text(json.dumps({"step": step}) + "\n", encoding="utf-8")
        self.publish(f"{CHECKPOINTS}/{name}")
        latest = self.path / CHECKPOINTS / LATEST
        partial_latest = latest.with_name(f".{LATEST}.partial")
        partial_latest.write_text(name + "\n", encoding="utf-8")
        os.replace(partial_latest, latest)
        for old in (self.path / CHECKPOINTS).glob("step-*"):
            if old.name != name:
                shutil.rmtree(old)

    def load_latest(self, device: torch.device) -> tuple[torch.nn.Module | None, dict | None, int]:
        """Model, optimizer state and step of the newest checkpoint; (None, None, 0) if none."""
        latest = self.path / CHECKPOINTS / LATEST
        if not latest.is_file():
            return None, None, 0
        directory = self.path / CHECKPOINTS / latest.read_text(encoding="utf-8").strip()
        model, _ = load_model(directory, device)
        try:
            optimizer_state = torch.load(
                directory / OPTIMIZER, map_location=device, weights_only=True
            )
            step = json.loads((directory / STATE).read_text(encoding="utf-8"))["step"]
        except (
            OSError,
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
            ValueError,
            KeyError,
        ) as error:
            raise RewritelabError(f"corrupt checkpoint {directory}: {error}") from None
        return model.train(), optimizer_state, step

    def staging(self, relative: str) -> Path:
        """An empty temporary directory to write `relative` into before `publish`."""
        target = self.path / relative
        partial = target.with_name(f".{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        return partial

    def publish(self, relative: str) -> None:
        """Move the finished staging directory of `relative` into place."""
        target = self.path / relative
        if target.exists():
            shutil.rmtree(target)
        os.replace(target.with_name(f".{target.name}.partial"), target)

    # ------------------------------------------------------------ logs

    def open_logs(self, start_step: int) -> None:
        """Drop log lines from beyond the resumed step, open TensorBoard if installed."""
        path = self.path / METRICS
        kept = [line for line in _read_lines(path) if json.loads(line)["step"] <= start_step]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(self.path / "tensorboard"), purge_step=start_step or None)

    def log(self, metrics: dict) -> None:
        with open(self.path / METRICS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if key != "step":
                    self.writer.add_scalar(key, value, metrics["step"])
            self.writer.flush()

    def close_logs(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def last_metrics(self) -> dict | None:
        """The last logged metrics, or None before the first evaluation."""
        lines = _read_lines(self.path / METRICS)
        return json.loads(lines[-1]) if lines else None

    def finished(self) -> bool:
        """Whether the run has written its final model."""
        return (self.path / RUN_MODEL_DIR).is_dir()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
