"""Sweep points as submitit jobs: one SLURM job per point on a cluster, or local processes.

`--executor slurm` submits each point as its own SLURM job through submitit; `--executor
submitit-local` runs the same jobs as local processes (what the tests use, and a way to try a
cluster setup on one machine). Resume stays the database's: a point is claimed before its job
is submitted and recorded when the job returns, so a sweep killed with jobs in flight, run
again, computes each unfinished point once. Job files (submitit's own, written and read by
rewritelab only) go to `<workdir>/submitit/`.

SLURM settings come from REWRITELAB_SLURM, comma-separated submitit parameters, e.g.
`REWRITELAB_SLURM="slurm_partition=gpu,timeout_min=240,gpus_per_node=1,mem_gb=16"`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rewritelab.core.errors import RewritelabError

SLURM_ENV = "REWRITELAB_SLURM"
POLL_S = 0.5
DEFAULTS = {"timeout_min": 240, "cpus_per_task": 1}


def slurm_parameters(text: str | None) -> dict[str, Any]:
    """`key=value,key=value` as submitit parameters (integers where they read as one)."""
    parameters: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RewritelabError(f"{SLURM_ENV} must be key=value,...: got {item!r}")
        parameters[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return parameters


class SubmititJobs:
    """Runs up to `jobs` points at once, each as one submitit job on `cluster` (`slurm` or
    `local`)."""

    def __init__(self, cluster: str, jobs: int):
        try:
            import submitit
        except ImportError:
            raise RewritelabError(
                "--executor slurm and submitit-local need submitit: pip install 'rewritelab[slurm]'"
            ) from None
        self.submitit, self.cluster, self.jobs = submitit, cluster, jobs
        self.parameters = {**DEFAULTS, **slurm_parameters(os.environ.get(SLURM_ENV))}
        self.pending: dict[Any, Any] = {}

    def __enter__(self) -> SubmititJobs:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:  # interrupted: the claimed points go back to pending, so stop them
            for job in self.pending:
                job.cancel(check=False)

    def run(self, fn: Callable, points: Iterable, *args: Any) -> Iterator[tuple[Any, dict]]:
        """(point, outcome) as each point's job ends; `args[0]` is the sweep's work directory."""
        executor = self.submitit.AutoExecutor(
            folder=Path(args[0]) / "submitit" / "%j", cluster=self.cluster
        )
        executor.update_parameters(**self.parameters)
        if self.cluster == "local":  # the jobs share this machine's cores, as a local pool's do
            os.environ["REWRITELAB_JOBS"] = str(self.jobs)
        waiting = iter(points)
        while True:
            while len(self.pending) < self.jobs:
                point = next(waiting, None)
                if point is None:
                    break
                self.pending[executor.submit(fn, point, *args)] = point
            if not self.pending:
                return
            finished = [job for job in self.pending if job.done()]
            if not finished:
                time.sleep(POLL_S)
            for job in finished:
                yield self.pending.pop(job), _outcome(job)


def _outcome(job) -> dict:
    """The job's result, or a failed outcome naming why the job itself failed."""
    try:
        return job.result()
    except Exception as error:  # the job died (cancelled, out of time, killed): the point failed
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return {"error": f"job {job.job_id} failed: {type(error).__name__} {first[:200]}"}
