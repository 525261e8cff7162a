"""The task registry: every task rewritelab knows, by the name a dataset config gives.

Adding a task is one module with a `Task` subclass and one line in `TASKS`.
"""

from __future__ import annotations

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.base import Task
from rewritelab.tasks.markov.task import MarkovTask
from rewritelab.tasks.rewrite.task import RewriteTask
from rewritelab.tasks.spec import DatasetSpec

TASKS: dict[str, Task] = {
    "rule": RewriteTask(),
    "markov": MarkovTask(),
}
DEFAULT_TASK = "rule"  # what a config or manifest that names no task is


def get_task(name: str) -> Task:
    """The registered task of this name, refused in one line if there is none."""
    if name not in TASKS:
        raise RewritelabError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name]


def task_of(manifest: dict) -> Task:
    """The task of a generated dataset, from its manifest."""
    return get_task(manifest.get("task", DEFAULT_TASK))


def validate_spec(spec: DatasetSpec) -> DatasetSpec:
    """Every check of a spec: what all tasks share, then its task's own; return the spec."""
    spec.validate()
    task = get_task(spec.task)
    if spec.disjoint not in task.disjoint_modes:
        raise RewritelabError(
            f"disjoint must be one of {', '.join(task.disjoint_modes)} for task = "
            f"{spec.task!r}, got {spec.disjoint!r}"
        )
    task.check_keys(spec)
    task.validate(spec)
    return spec


def record_spec(spec: DatasetSpec) -> dict:
    """The spec as its manifest records it, and the sweep hashes it."""
    return get_task(spec.task).record(spec)
