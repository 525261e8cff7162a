"""Where grid points run: in this process, in a pool of local processes, or on a Ray cluster.

Every executor offers `run(fn, points, *args)`, yielding `(point, fn(point, *args))` as
points finish, in whatever order they finish. The local pool lets several small runs share
one GPU when that raises total throughput; Ray schedules each point as a task with its own
CPU/GPU request on any node of a cluster (the work directory must then be on a filesystem
every node shares). `points` may be a lazy iterator: the local executors draw the next point
only when a slot is free (a sweep claims a point in the database as it draws it).

Local pool workers die with their driver: each asks Linux to SIGKILL it when its parent dies
(PR_SET_PDEATHSIG) and, everywhere, a watcher thread exits it once its parent is gone. Workers
ignore Ctrl-C; the driver handles it by killing them (their points stay resumable).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from rewritelab.core.errors import RewritelabError


class InProcess:
    """Runs points one after another in this process (simplest; best for debugging)."""

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(self, fn: Callable, points: Iterable, *args: Any) -> Iterator[tuple[Any, dict]]:
        for point in points:
            yield point, fn(point, *args)


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the driver dies (kill -9 included); ignore Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        try:
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
    if os.getppid() != parent_pid:  # the driver died before the watch began
        os._exit(1)


KILLED_TWICE = "its worker process was killed twice from outside (the OS: out of memory?)"


class ProcessPool:
    """Runs up to `jobs` points at once in fresh (spawned) worker processes; each worker's
    runs take their share of the cores (`REWRITELAB_JOBS`, read by `runs.default_threads`)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(os.getpid(), self.jobs),
        )  # fmt: skip

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:  # interrupted: stop the workers now, not after their points
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)  # joins the pool's queues too

    def submit(self, fn: Callable, *args: Any) -> Future:
        """`fn(*args)` in a worker, as a future (for one job beside a sweep)."""
        return self.pool.submit(fn, *args)

    def run(self, fn: Callable, points: Iterable, *args: Any) -> Iterator[tuple[Any, dict]]:
        """(point, outcome) as each point ends. A worker killed from outside (the OS, out of
        memory) breaks the pool and every point it was running: the pool is started afresh
        and those points run again (resuming from their checkpoints), one at a time while
        more than one was lost, so that the one whose worker dies is known; a point whose
        worker is killed again while it runs alone is recorded as failed; the others go on."""
        waiting, pending, killed, alone_next = iter(points), {}, Counter(), deque()
        while True:
            if alone_next and not pending:
                point = alone_next.popleft()
                pending[self.pool.submit(fn, point, *args)] = point
            while not alone_next and len(pending) < self.jobs:
                point = next(waiting, None)
                if point is None:
                    break
                pending[self.pool.submit(fn, point, *args)] = point
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            lost = []
            for future in finished:
                point = pending.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    lost.append(point)
                else:
                    yield point, future.result()
            if lost:
                lost += pending.values()  # the broken pool fails every point it held
                pending.clear()
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = self._new_pool()
                for point in lost:
                    killed[point.point_id] += 1
                    if len(lost) == 1 and killed[point.point_id] > 1:
                        yield point, {"error": KILLED_TWICE}
                    else:
                        alone_next.append(point)


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
        pending = {task.remote(point, *args): point for point in list(points)}
        while pending:
            finished, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in finished:
                yield pending.pop(ref), self.ray.get(ref)


def _start_worker(parent_pid: int, jobs: int) -> None:
    """In each pool worker: die with the driver, and take a share of the cores. Progress bars
    lock with a thread lock: tqdm's default is a process semaphore, which a worker killed on
    Ctrl-C would leave for the resource tracker to warn about."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    os.environ["REWRITELAB_JOBS"] = str(jobs)
    _die_with_parent(parent_pid)


def default_jobs(experiment: Any) -> int:
    """Points at once when `--jobs` is not given: on a CPU, one per usable core, each run with
    one thread (two one-thread runs did ~60 k tokens/s together on 2 cores, against ~47 k for
    one two-thread run); on a GPU, one."""
    device = str(experiment.train.get("device", "auto"))
    if device.startswith("cuda") or (device == "auto" and _cuda_available()):
        return 1
    from rewritelab.core.hardware import usable_cores

    return usable_cores()


def check_executor(kind: str, jobs: int) -> None:
    """Refuse an unknown executor or a job count below 1 (before anything is created)."""
    if kind not in EXECUTORS:
        raise RewritelabError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if jobs < 1:
        raise RewritelabError(f"jobs must be >= 1, got {jobs}")


def local_executor(jobs: int, address: str | None, experiment: Any):
    """Points in this process (one job) or in a pool of `jobs` worker processes."""
    return InProcess() if jobs == 1 else ProcessPool(jobs)


def ray_executor(jobs: int, address: str | None, experiment: Any):
    """Points as Ray tasks of one CPU each (and a GPU share when the points train on CUDA)."""
    device = str(experiment.train.get("device", "auto"))
    gpus = 0.0 if device == "cpu" or not _cuda_available() else 1.0 / jobs
    return RayCluster(address, cpus_per_point=1.0, gpus_per_point=gpus)


def slurm_executor(jobs: int, address: str | None, experiment: Any):
    """Each point one SLURM job (submitit); `jobs` of them queued at once."""
    from rewritelab.sweep.submitit_jobs import SubmititJobs

    return SubmititJobs("slurm", jobs)


def submitit_local_executor(jobs: int, address: str | None, experiment: Any):
    """Each point one submitit job run as a local process; `jobs` at once."""
    from rewritelab.sweep.submitit_jobs import SubmititJobs

    return SubmititJobs("local", jobs)


# The executors a sweep can run on, by the name `--executor` takes: name -> factory of
# (jobs, cluster address, experiment). Another executor is one factory and one line here.
EXECUTORS = {
    "local": local_executor,
    "ray": ray_executor,
    "slurm": slurm_executor,
    "submitit-local": submitit_local_executor,
}


def make_executor(kind: str, jobs: int, address: str | None, experiment: Any):
    """The executor named `kind` (see `EXECUTORS`), its settings checked first."""
    check_executor(kind, jobs)
    return EXECUTORS[kind](jobs, address, experiment)


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
