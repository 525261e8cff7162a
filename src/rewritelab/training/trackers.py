"""Experiment trackers: a run's logged metrics also go to TensorBoard, MLflow, Weights & Biases
or Trackio, each through its own library, offline by default.

`tracker = "tensorboard"` (the default; skipped when TensorBoard is not installed) writes
`RUN/tensorboard/`. `"mlflow"` logs to a local SQLite store, `RUN/mlflow.db`, unless
MLFLOW_TRACKING_URI names a server; `"wandb"` runs offline in `RUN/wandb/` unless WANDB_MODE
says otherwise (`wandb sync` uploads it later); `"trackio"` logs to its local store. The run
config is logged as parameters once; every evaluation point's numeric metrics at its step. A
resumed run continues the same tracker run: its id is kept in `RUN/tracker.json`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from pathlib import Path

from rewritelab.core.atomic_files import write_json_atomic
from rewritelab.core.config import flatten
from rewritelab.core.errors import RewritelabError

TRACKER_NAMES = ("none", "tensorboard", "mlflow", "wandb", "trackio")
PROJECT = "rewritelab"
ID_FILE = "tracker.json"
MLFLOW_DB = "mlflow.db"


def check_tracker(name: str) -> None:
    """Refuse an unknown tracker, or one whose library is not installed."""
    if name not in TRACKER_NAMES:
        raise RewritelabError(f"tracker must be one of {', '.join(TRACKER_NAMES)}, got {name!r}")
    if name not in ("none", "tensorboard") and not _installed(name):
        raise RewritelabError(f"tracker = {name!r} needs its library: pip install {name}")


def open_tracker(name: str, run_dir: Path, config: dict, start_step: int):
    """The tracker `name` for `run_dir`, started (or continued after `start_step`); None for
    "none", and for "tensorboard" where TensorBoard is not installed."""
    check_tracker(name)
    if name == "none" or (name == "tensorboard" and not _installed("tensorboard")):
        return None
    kinds = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": Wandb, "trackio": Trackio}
    return kinds[name](run_dir, config, start_step)


def scalars(metrics: dict) -> dict[str, float]:
    """The numeric metrics of a log line, the step left out."""
    return {k: float(v) for k, v in metrics.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)}  # fmt: skip


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _recorded_id(run_dir: Path) -> str | None:
    """The tracker's run id a started run recorded (None before its first start)."""
    path = run_dir / ID_FILE
    return json.loads(path.read_text(encoding="utf-8"))["id"] if path.is_file() else None


def _record_id(run_dir: Path, run_id: str) -> str:
    write_json_atomic(run_dir / ID_FILE, {"id": run_id})
    return run_id


class TensorBoard:
    def __init__(self, run_dir: Path, config: dict, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step or None)

    def log(self, metrics: dict) -> None:
        for key, value in scalars(metrics).items():
            self.writer.add_scalar(key, value, metrics["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflow:
    def __init__(self, run_dir: Path, config: dict, start_step: int):
        import mlflow

        self.mlflow = mlflow
        uri = (
            os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / MLFLOW_DB).resolve()}"
        )
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(PROJECT)
        run_id = _recorded_id(run_dir)
        run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_dir.name)
        if run_id is None:
            _record_id(run_dir, run.info.run_id)
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(config).items()})

    def log(self, metrics: dict) -> None:
        self.mlflow.log_metrics(scalars(metrics), step=metrics["step"])

    def close(self) -> None:
        self.mlflow.end_run()


class Wandb:
    def __init__(self, run_dir: Path, config: dict, start_step: int):
        import wandb

        self.wandb = wandb
        run_id = _recorded_id(run_dir) or _record_id(run_dir, uuid.uuid4().hex[:8])
        self.run = wandb.init(project=PROJECT, name=run_dir.name, id=run_id, resume="allow",
                              dir=str(run_dir), config=config,
                              mode=os.environ.get("WANDB_MODE", "offline"))  # fmt: skip

    def log(self, metrics: dict) -> None:
        self.run.log(scalars(metrics), step=metrics["step"])

    def close(self) -> None:
        self.run.finish()


class Trackio:
    def __init__(self, run_dir: Path, config: dict, start_step: int):
        import trackio

        self.trackio = trackio
        name = _recorded_id(run_dir) or _record_id(run_dir, f"{run_dir.name}-{os.getpid()}")
        trackio.init(project=PROJECT, name=name, config=config, resume="allow")

    def log(self, metrics: dict) -> None:
        self.trackio.log(scalars(metrics), step=metrics["step"])

    def close(self) -> None:
        self.trackio.finish()
