"""Where grid points run: in this process, in a pool of local processes, or on a Ray cluster.

Every executor offers `run(fn, points, *args)`, yielding `(point, fn(point, *args))` as
points finish, in whatever order they finish. The local pool lets several small runs share
one GPU when that raises total throughput; Ray schedules each point as a task with its own
CPU/GPU request on any node of a cluster (the work directory must then be on a filesystem
every node shares).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from rewritelab.errors import RewritelabError

EXECUTORS = ("local", "ray")


class InProcess:
    """Runs points one after another in this process (simplest; best for debugging)."""

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(self, fn: Callable, points: list, *args: Any) -> Iterator[tuple[Any, dict]]:
        for point in points:
            yield point, fn(point, *args)


class ProcessPool:
    """Runs up to `jobs` points at once in fresh (spawned) worker processes; each worker's
    runs take their share of the cores (`REWRITELAB_JOBS`, read by `runs.default_threads`)."""

    def __init__(self, jobs: int):
        self.pool = ProcessPoolExecutor(
            jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_share_cores,
            initargs=(jobs,),
        )

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def run(self, fn: Callable, points: list, *args: Any) -> Iterator[tuple[Any, dict]]:
        pending = {self.pool.submit(fn, point, *args): point for point in points}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield pending.pop(future), future.result()


class RayCluster:
    """Runs each point as a Ray task; `address` (or RAY_ADDRESS) joins a running cluster,
    otherwise a local Ray instance is started."""

    def __init__(self, address: str | None, cpus_per_point: float, gpus_per_point: float):
        try:
            import ray
        except ImportError:
            raise RewritelabError(
                "--executor ray needs Ray: pip install 'rewritelab[ray]'"
            ) from None
        self.ray = ray
        self.request = {"num_cpus": cpus_per_point, "num_gpus": gpus_per_point}
        self.address = address or os.environ.get("RAY_ADDRESS")

    def __enter__(self) -> RayCluster:
        if not self.ray.is_initialized():
            self.ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        return self

    def __exit__(self, *exc) -> None:
        self.ray.shutdown()

    def run(self, fn: Callable, points: list, *args: Any) -> Iterator[tuple[Any, dict]]:
        task = self.ray.remote(**self.request)(fn)
        pending = {task.remote(point, *args): point for point in points}
        while pending:
            finished, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in finished:
                yield pending.pop(ref), self.ray.get(ref)


def _share_cores(jobs: int) -> None:
    os.environ["REWRITELAB_JOBS"] = str(jobs)


def default_jobs(experiment: Any) -> int:
    """Points at once when `--jobs` is not given: on a CPU, one per usable core, each run with
    one thread (two one-thread runs did ~60 k tokens/s together on 2 cores, against ~47 k for
    one two-thread run); on a GPU, one."""
    device = str(experiment.train.get("device", "auto"))
    if device.startswith("cuda") or (device == "auto" and _cuda_available()):
        return 1
    from rewritelab.runs import usable_cores

    return usable_cores()


def make_executor(kind: str, jobs: int | None, address: str | None, experiment: Any):
    """The executor named `kind`: `local` (jobs = processes at once; None = `default_jobs`)
    or `ray`."""
    jobs = default_jobs(experiment) if jobs is None else jobs
    if kind not in EXECUTORS:
        raise RewritelabError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if jobs < 1:
        raise RewritelabError(f"jobs must be >= 1, got {jobs}")
    if kind == "ray":
        device = str(experiment.train.get("device", "auto"))
        gpus = 0.0 if device == "cpu" or not _cuda_available() else 1.0 / jobs
        return RayCluster(address, cpus_per_point=1.0, gpus_per_point=gpus)
    return InProcess() if jobs == 1 else ProcessPool(jobs)


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
