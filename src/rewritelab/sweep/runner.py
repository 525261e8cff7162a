"""Running a sweep: each grid point generates (or reuses) its dataset, trains, evaluates.

`run_point` is self-contained and picklable, so any executor (in-process, a process pool
sharing one GPU, or Ray workers across a cluster) can run it; it never raises, returning the
error instead so one failed point does not stop the others. Only drivers (`run_sweep`) write
to the results database, claiming each point before it runs, so sweeps sharing a database or
a workdir never compute a point twice. Datasets are cached under
`workdir/datasets/<content hash>` and runs under `workdir/runs/<point id>`; a run directory
left by a killed sweep is resumed. Ctrl-C or SIGTERM stops the driver and its workers and
hands their points back (`pending`); after a kill -9 the next sweep takes them over.
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rewritelab.core.errors import RewritelabError
from rewritelab.core.progress import progress_bar
from rewritelab.core.run_log import training_history
from rewritelab.core.version import __version__
from rewritelab.sweep.database import STALE_AFTER_S, Heartbeat, ResultsDatabase, new_owner
from rewritelab.sweep.executors import ProcessPool, make_executor
from rewritelab.sweep.experiment import Experiment, Point, point_config


def ensure_dataset(point: Point, workdir: Path) -> Path:
    """The point's dataset directory, generated once and shared by every point that needs it;
    a cached copy whose files no longer match its manifest is generated again."""
    from rewritelab.tasks.generate import generate_dataset
    from rewritelab.tasks.spec_files import spec_from_dict
    from rewritelab.tasks.storage import damaged_files

    data_dir = workdir / "datasets" / point.dataset_id
    exists = (data_dir / "manifest.json").is_file()
    if exists and not (damaged := damaged_files(data_dir)):
        return data_dir
    if exists:
        print(f"rewritelab: cached dataset {data_dir} is damaged ({', '.join(damaged)} "
              "differs from its manifest): generating it again", file=sys.stderr)  # fmt: skip
    try:
        generate_dataset(spec_from_dict(copy.deepcopy(point.dataset)), data_dir, force=exists)
    except RewritelabError:
        if damaged_files(data_dir):  # not just a parallel twin's win
            raise
    return data_dir


def headline_metrics(unseen: dict, seen: dict, final: dict) -> dict[str, Any]:
    """What the database and reports need from a run: accuracies and their breakdowns (for an
    algorithm dataset also its target, its breakdowns by steps, rules and halting kind, and a
    trace model's step metrics)."""
    by_noop = unseen.get("by_noop", {})
    metrics = {
        "unseen_accuracy": unseen["overall"]["accuracy"],
        "unseen_stderr": unseen["overall"]["stderr"],
        "unseen_examples": unseen["overall"]["examples"],
        "seen_accuracy": seen["overall"]["accuracy"],
        "seen_examples": seen["overall"]["examples"],
        "unseen_noop_accuracy": by_noop.get("noop", {}).get("accuracy"),
        "unseen_has_op_accuracy": by_noop.get("has_op", {}).get("accuracy"),
    }
    breakdowns = ("occurrences", "pattern_length", "instruction", "has_op_instruction")
    for name in (*breakdowns, "steps", "rule_count", "halt"):
        if f"by_{name}" in unseen or name in ("occurrences", "pattern_length", "instruction"):
            metrics[f"unseen_by_{name}"] = _accuracies(unseen.get(f"by_{name}", {}))
    if "target" in unseen:
        metrics["target"] = unseen["target"]
    for split, measured in (("unseen", unseen), ("seen", seen)):
        if "trace" in measured:
            metrics[f"{split}_trace"] = measured["trace"]
    metrics["final_train"] = {k: v for k, v in final.items() if not isinstance(v, dict | list)}
    return metrics


def _accuracies(by_class: dict) -> dict:
    return {key: value["accuracy"] for key, value in by_class.items()}


def train_and_evaluate(point: Point, data_dir: Path, run_dir: Path, outcome: dict) -> dict:
    """Train (or fine-tune) the point's model into `run_dir`; its unseen/seen headline metrics."""
    from rewritelab.core.hardware import pick_device
    from rewritelab.evaluation.evaluate import evaluate_run as evaluate
    from rewritelab.model.gpt import RUN_CONFIG

    resume = (run_dir / RUN_CONFIG).is_file()
    if run_dir.exists() and not resume:  # killed before its run recorded anything
        shutil.rmtree(run_dir)
    if point.method == "finetune":
        from rewritelab.training.finetune import finetune

        base, config = point_config(point)
        outcome["device"] = str(pick_device(config.device))
        final = finetune(base, data_dir, run_dir, config, resume=resume, progress=False)
    else:
        from rewritelab.training.scratch import train

        config = point_config(point)
        outcome["device"] = str(pick_device(config.device))
        final = train(config, data_dir, run_dir, resume=resume, progress=False)
    unseen = evaluate(run_dir, data_dir, split="test", device=config.device)
    seen = evaluate(run_dir, data_dir, split="seen_test", device=config.device)
    return headline_metrics(unseen, seen, final)


def on_plateau(metrics: dict) -> bool:
    """Whether a run ended without mastering its training rules (seen accuracy below
    `MASTERED`) because the optimiser never fit its training examples (final training loss at
    least `PLATEAU_LOSS`): an accident of the draw, unlike a model that fits its examples but
    not the rules (memorising, or the rare rules of a skewed spread), which is a result."""
    from rewritelab.core.paper import MASTERED, PLATEAU_LOSS

    loss = metrics["final_train"].get("train_loss")
    return metrics["seen_accuracy"] < MASTERED and loss is not None and loss >= PLATEAU_LOSS


def train_with_redraws(point: Point, data_dir: Path, runs_dir: Path, outcome: dict) -> dict:
    """Train and evaluate the point's model in `runs_dir/<point id>`; while it ends on the
    optimisation plateau (`on_plateau`) and the point allows a redraw, train it again from a
    fresh draw (the same data, the training seed `seed_of(seed, "redraw", k)`) in
    `runs_dir/<point id>-redraw<k>`. The metrics are those of the draw kept; the draws before
    it are listed under `redrawn`."""
    from rewritelab.core.seeds import seed_of

    redrawn = []
    for draw in range(point.redraws + 1):
        seed = seed_of(point.seed, "redraw", draw) if draw else point.train["seed"]
        run_dir = runs_dir / (f"{point.point_id}-redraw{draw}" if draw else point.point_id)
        outcome["run_dir"] = str(run_dir)
        drawn = dataclasses.replace(point, train={**point.train, "seed": seed})
        metrics = train_and_evaluate(drawn, data_dir, run_dir, outcome)
        metrics["history"] = training_history(run_dir)
        if not on_plateau(metrics) or draw == point.redraws:
            break
        redrawn.append({"train_seed": seed, "run_dir": str(run_dir)} | _draw_summary(metrics))
    if redrawn:
        metrics.update(redrawn=redrawn, train_seed=seed)
    return metrics


def _draw_summary(metrics: dict) -> dict:
    """What a report needs of a draw that was not kept: its accuracies and final loss."""
    kept = ("seen_accuracy", "unseen_accuracy", "unseen_has_op_accuracy")
    return {k: metrics[k] for k in kept} | {"train_loss": metrics["final_train"].get("train_loss")}


def run_point(point: Point, workdir: str | Path) -> dict[str, Any]:
    """Generate, train and evaluate one grid point; return its outcome (never raises)."""
    workdir = Path(workdir)
    started = time.perf_counter()
    outcome: dict[str, Any] = {"versions": versions()}
    try:
        data_dir = ensure_dataset(point, workdir)
        outcome["data_dir"] = str(data_dir)
        outcome["metrics"] = train_with_redraws(point, data_dir, workdir / "runs", outcome)
    except Exception as error:  # a failed point is recorded, and the sweep goes on
        outcome["error"] = f"{type(error).__name__}: {error}"
        if not isinstance(error, RewritelabError):
            outcome["traceback"] = traceback.format_exc()
    outcome["elapsed_s"] = round(time.perf_counter() - started, 3)
    return outcome


def versions() -> dict[str, str]:
    """Package versions that decide a result (recorded with every point)."""
    found = {"rewritelab": __version__, "python": platform.python_version()}
    try:
        import torch

        found["torch"] = torch.__version__
    except ImportError:
        pass
    return found


def needs_base_weights(point: Point) -> bool:
    """Whether the point starts from its base model's weights: a fine-tuning point that does
    not draw fresh ones (`reinitialize` takes only the base's architecture and tokenizer)."""
    return point.method == "finetune" and not point.train.get("reinitialize", False)


@contextmanager
def base_of(experiment: Experiment, progress: bool = True) -> Iterator[Future | None]:
    """Make the base model of the experiment's `pretrain` table, or resume or check it. When
    it is still to train and some points need only its architecture (`needs_base_weights`),
    it trains in a worker process of its own beside the sweep: yields that job's future, which
    the sweep awaits before the first point that needs the weights. Only a base whose config
    pins its thread count does (its weights depend on the count, and a worker's share of the
    cores is not the machine's), so its weights are the same either way. Otherwise yields None
    once the base is ready. Leaving the block waits for the base; an error in the block stops
    its worker."""
    table = experiment.pretrain
    if table:
        from rewritelab.training.pretrain import base_finished, check_pretrain_table, prepare_base
    unfinished = bool(table) and not base_finished(table)
    pinned = unfinished and check_pretrain_table(table, "pretrain").threads > 0
    beside = sum(not needs_base_weights(p) for p in experiment.points()) if pinned else 0
    if unfinished:
        where = f" beside the {beside} points that need only its architecture" if beside else ""
        print(f"pretraining the base model into {table['out']}{where}")
    if not beside:
        if table:
            prepare_base(table, progress)
        yield None
        return
    with ProcessPool(1) as pool:
        base = pool.submit(prepare_base, table, False)
        _await_architecture(Path(table["out"]), base)
        yield base
        base.result()


def _await_architecture(out: Path, base: Future) -> None:
    """Wait until the pretraining run `out` has written its architecture (within seconds of
    its start), or has failed (raising its error)."""
    from rewritelab.model.files import model_part
    from rewritelab.model.gpt import RUN_ARCHITECTURE_DIR

    while not model_part(out, RUN_ARCHITECTURE_DIR):
        if base.done():
            base.result()
            return
        time.sleep(0.1)


def run_sweep(
    experiment: Experiment,
    database: ResultsDatabase,
    workdir: str | Path,
    executor: str = "local",
    jobs: int = 1,
    retry_failed: bool = False,
    address: str | None = None,
    progress: bool = True,
    base: Future | None = None,
    points: list[Point] | None = None,
) -> dict[str, int]:
    """Run every point of `experiment` (or only `points`) not yet done; return counts: `done`
    and `failed` (this run), `skipped` (done before), `failed_earlier` (failed before, not
    retried) and `busy` (being run by another sweep). `base`, the future of a base model still
    training (`base_of`): the points that need no weights run first, and the others once it is
    done."""
    points = experiment.points() if points is None else points
    database.plan(points)
    before = {p.point_id: database.status(p.point_id) for p in points}
    skip = {"done"} if retry_failed else {"done", "failed"}
    todo = [p for p in points if before[p.point_id] not in skip]
    if base is not None:
        todo.sort(key=needs_base_weights)  # stable: the grid's order within each group
    counts = {
        "skipped": sum(1 for s in before.values() if s == "done"), "done": 0, "failed": 0,
        "failed_earlier": 0 if retry_failed else sum(1 for s in before.values() if s == "failed"),
        "busy": 0,
    }  # fmt: skip
    if not todo:
        return counts
    owner = new_owner()

    def claimed() -> Iterator[Point]:
        for point in todo:
            if base is not None and needs_base_weights(point):
                base.result()  # the base's error, if it failed, stops the sweep
            if database.claim(point.point_id, owner, retry_failed):
                yield point
            elif database.status(point.point_id) == "done":  # another sweep finished it
                counts["skipped"] += 1
            else:
                counts["busy"] += 1

    with _stop_on_sigterm(), Heartbeat(database.path, owner, STALE_AFTER_S / 10), make_executor(
        executor, jobs, address, experiment
    ) as pool, progress_bar(
        progress, total=len(todo), desc=f"{experiment.name}/{experiment.preset}", unit="point"
    ) as bar:  # fmt: skip
        try:
            for point, outcome in pool.run(run_point, claimed(), str(workdir)):
                database.record(point.point_id, outcome)
                status = "failed" if outcome.get("error") else "done"
                counts[status] += 1
                if status == "failed":
                    bar.write(f"point {point.factors} seed {point.seed} failed: {outcome['error']}")
                bar.update()
                bar.set_postfix(done=counts["done"], failed=counts["failed"])
        except BaseException:
            database.release(owner)  # interrupted: the claimed points are pending again
            raise
    return counts


@contextmanager
def _stop_on_sigterm():
    """Within the block, SIGTERM interrupts like Ctrl-C (so workers are stopped, claims freed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
