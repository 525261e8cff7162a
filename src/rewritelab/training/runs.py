"""A run's directory and environment: provenance, metric logs, atomic checkpoints, device,
threads and precision. Every kind of run (from scratch, fine-tuning, pretraining) uses it.

Nothing in a run directory is ever half-written. The directory itself appears in one rename,
with its `run_config.json` already inside; checkpoints and the final model are written under a
temporary name and renamed into place; `checkpoints/latest` (the name of the newest complete
checkpoint) is replaced atomically. A run directory that exists is never reused except to
resume it, and resuming refuses a different config or a different dataset.

Layout:
    run_config.json    resolved config, seeds, versions, git hash, device, threads, date, data
    metrics.jsonl      one line per evaluation point (one schema for every kind of run)
    tensorboard/       the same scalars, when TensorBoard is installed
    checkpoints/       step-N/ (weights + tokenizer + optimizer.pt + trainer_state.json), latest
    model/ or adapter/ the final weights
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import torch

from rewritelab.core.atomic_files import (
    append_line,
    staged_directory,
    write_json_atomic,
    write_text_atomic,
)
from rewritelab.core.config import flatten
from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import usable_cores
from rewritelab.core.killpoints import pause_at
from rewritelab.core.locks import directory_lock
from rewritelab.core.provenance import git_hash
from rewritelab.core.run_log import METRICS
from rewritelab.core.seeds import SEED_STREAMS, seed_of
from rewritelab.core.version import __version__
from rewritelab.model.gpt import RUN_CONFIG
from rewritelab.training.model_card import write_model_card
from rewritelab.training.trackers import open_tracker

CHECKPOINTS = "checkpoints"
LATEST = "latest"
CHECKPOINT_NAME = re.compile(r"step-\d{8}")
OPTIMIZER = "optimizer.pt"
STATE = "trainer_state.json"
# Settings a resumed run may change: they do not change what is computed (threads may change
# float rounding on CPU; a resume under another thread count is recorded and reported).
RESUME_FREE = {"device", "log_every", "eval_batch_size", "compile", "threads", "tracker"}


def provenance(device: torch.device, threads: int) -> dict:
    """Versions, code, device, threads and date: what a result needs to be traced back."""
    import transformers

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    return {
        "rewritelab_version": __version__,
        "git_hash": git_hash(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": name,
        "threads": threads,
        "usable_cores": usable_cores(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),  # a sweep's in a worker
    }


# ------------------------------------------------------------------ the run directory


class RunDirectory:
    """One run's files (see the module docstring for the layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.started = time.perf_counter()
        self.tracker = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the run directory, so that a second `train --resume` of
        the same run is refused instead of corrupting it. The lock is the kernel's (`flock` on
        the directory itself): it writes no file and dies with its holder, so a killed run
        never leaves a stale lock behind."""
        with directory_lock(self.path, "run"):
            yield

    def refuse_existing(self) -> None:
        if self.path.exists():
            raise RewritelabError(
                f"run directory {self.path} already exists (resume it, or choose another)"
            )

    def create(self, config, dataset: dict | None, facts: dict) -> None:
        """Create the directory with its run_config.json inside, in one rename."""
        self.refuse_existing()
        record = {
            "config": config.to_dict(),
            "seeds": {name: seed_of(config.seed, name) for name in SEED_STREAMS},
            "dataset": dataset,
            **facts,
        }
        with staged_directory(self.path, replace=False) as partial:
            write_json_atomic(partial / RUN_CONFIG, record)
            pause_at("run-creating")

    def recorded(self) -> dict:
        """run_config.json as written by `create`."""
        path = self.path / RUN_CONFIG
        if not path.is_file():
            raise RewritelabError(f"{self.path} is not a run directory (no {RUN_CONFIG})")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RewritelabError(f"{path} is unreadable: {error}") from None

    def check_resumable(self, config, dataset: dict | None) -> None:
        """Refuse to resume a missing run, or one with another config or dataset. A setting the
        run's record lacks (added to rewritelab since it started) counts at its default."""
        if not (self.path / RUN_CONFIG).is_file():
            raise RewritelabError(f"cannot resume: {self.path} has no {RUN_CONFIG}")
        recorded = self.recorded()
        saved, given = flatten(recorded.get("config", {})), flatten(config.to_dict())
        defaults = flatten(type(config)().to_dict())  # a setting added since: it ran at these
        changed = sorted(
            key
            for key in saved.keys() | given.keys()
            if saved.get(key, defaults.get(key)) != given.get(key) and key not in RESUME_FREE
        )
        if changed:
            raise RewritelabError(
                f"cannot resume {self.path}: config differs in {', '.join(changed)}"
            )
        if recorded.get("dataset") != dataset:
            raise RewritelabError(f"cannot resume {self.path}: the dataset has changed")

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, step: int, save_weights, optimizer) -> None:
        """Write checkpoints/step-N atomically (`save_weights(directory)` writes the weights),
        point `latest` at it, drop older ones."""
        name = f"step-{step:08d}"
        with self.staged(f"{CHECKPOINTS}/{name}") as partial:
            save_weights(partial)
            torch.save(optimizer.state_dict(), partial / OPTIMIZER)
            (partial / STATE).write_text(json.dumps({"step": step}) + "\n", encoding="utf-8")
            pause_at("checkpoint-written")
        pause_at("checkpoint-published")
        write_text_atomic(self.path / CHECKPOINTS / LATEST, name + "\n")
        pause_at("latest-updated")
        for old in (self.path / CHECKPOINTS).glob("step-*"):
            if old.name != name:
                shutil.rmtree(old)

    def latest_checkpoint(self) -> tuple[Path | None, int]:
        """The newest complete checkpoint directory and its step; (None, 0) if none. The
        `latest` pointer must name a checkpoint of this run (`step-NNNNNNNN`, nothing outside
        checkpoints/), and its trainer state must give the step its name says."""
        latest = self.path / CHECKPOINTS / LATEST
        if not latest.is_file():
            return None, 0
        try:
            name = latest.read_text(encoding="utf-8").strip()
        except (OSError, ValueError) as error:
            raise RewritelabError(f"unreadable checkpoint pointer {latest}: {error}") from None
        directory = self.path / CHECKPOINTS / name
        if not CHECKPOINT_NAME.fullmatch(name) or not directory.is_dir() or directory.is_symlink():
            raise RewritelabError(
                f"{latest} names {name[:80]!r}, not a checkpoint of this run "
                "(checkpoints/step-NNNNNNNN)"
            )
        try:
            step = json.loads((directory / STATE).read_text(encoding="utf-8"))["step"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RewritelabError(f"corrupt checkpoint {directory}: {error}") from None
        if not isinstance(step, int) or isinstance(step, bool) or step != int(name[5:]):
            raise RewritelabError(
                f"corrupt checkpoint {directory}: its trainer state gives step {step!r}, its "
                f"name step {int(name[5:])}"
            )
        return directory, step

    def load_optimizer_state(self, checkpoint: Path, device: torch.device) -> dict:
        """The optimizer state of a checkpoint (tensors only: `weights_only` never unpickles
        code)."""
        try:
            return torch.load(checkpoint / OPTIMIZER, map_location=device, weights_only=True)
        except Exception as error:  # torch raises several types for a corrupt file
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise RewritelabError(
                f"corrupt checkpoint {checkpoint}: {type(error).__name__} {first_line[:200]}"
            ) from None

    @contextmanager
    def staged(self, relative: str, metrics: dict | None = None) -> Iterator[Path]:
        """An empty temporary directory to write `relative` into; when the block ends, it is
        moved into place in one rename (and removed if the block fails). With the run's last
        `metrics`, the model card is written into it first (`model_card`)."""
        with staged_directory(self.path / relative) as partial:
            yield partial
            if metrics is not None:
                write_model_card(partial, self.recorded(), metrics)

    def finished(self, final_dir: str) -> bool:
        """Whether the run has written its final weights."""
        return (self.path / final_dir).is_dir()

    # ------------------------------------------------------------ logs

    def open_logs(self, start_step: int, tracker: str = "tensorboard") -> None:
        """Drop log lines from beyond the resumed step (the log is replaced in one rename, so a
        kill leaves the old log or the new one, never a cut one), open the tracker. A resumed
        run's clock goes on from the time logged at its checkpoint, so `elapsed_s` is the
        training time of the whole run (less the steps a kill threw away)."""
        path = self.path / METRICS
        lines = _read_lines(path)
        kept = [line for line in lines if json.loads(line)["step"] <= start_step]
        if path.exists() and (len(kept) < len(lines) or not _ends_with_newline(path)):
            text = "".join(line + "\n" for line in kept)
            write_text_atomic(path, text, moment="metrics-rewritten")
        if kept:
            self.started = time.perf_counter() - json.loads(kept[-1]).get("elapsed_s", 0.0)
        self.tracker = open_tracker(tracker, self.path, self.recorded()["config"], start_step)

    def log(self, metrics: dict) -> None:
        append_line(self.path / METRICS, json.dumps(metrics))
        if self.tracker is not None:
            self.tracker.log(metrics)

    def close_logs(self) -> None:
        if self.tracker is not None:
            self.tracker.close()

    def last_metrics(self) -> dict | None:
        """The last logged metrics, or None before the first evaluation."""
        lines = _read_lines(self.path / METRICS)
        return json.loads(lines[-1]) if lines else None

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def _read_lines(path: Path) -> list[str]:
    """The complete JSON lines of a metrics log. A last line cut mid-write (power loss: no
    newline, not JSON) is left out with a warning; damage anywhere else is an error."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not text.endswith("\n") and not _is_json(lines[-1]):
        print(f"warning: {path}: ignoring its last line, cut short", file=sys.stderr)
        lines = lines[:-1]
    for line in lines:
        if not _is_json(line):
            raise RewritelabError(f"{path} is damaged: a line is not JSON ({line[:60]!r})")
    return lines


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
