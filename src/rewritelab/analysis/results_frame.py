"""A results database as one tidy pandas frame: a row per run and evaluation point.

Each run of a point (its latest successful row, `current_rows`) gives a `final` row (the
metrics of the full evaluation the sweep stored) and one `training` row per evaluation point:
of its `metrics.jsonl` while its run directory is there, else of the accuracies the sweep
stored with it. Every factor of the grid is a column of its own (named as in the experiment
file), so the frame groups and pivots directly:
`frame[frame.evaluation == "final"].groupby("dataset.train.instructions").unseen_accuracy`.
Needs pandas (the `results` extra; pyarrow as well for parquet).
"""

from __future__ import annotations

from pathlib import Path

from rewritelab.core.atomic_files import write_bytes_atomic
from rewritelab.core.errors import RewritelabError
from rewritelab.core.paper import experiment_kind
from rewritelab.core.run_log import logged_points
from rewritelab.sweep.database import ResultsDatabase, current_rows

RUN_COLUMNS = ("experiment", "preset", "kind", "seed", "point_id", "status", "device",
               "elapsed_s", "run_dir")  # fmt: skip
FINAL = ("unseen_accuracy", "seen_accuracy", "unseen_has_op_accuracy", "unseen_noop_accuracy")
LOGGED = ("step", "epoch", "train_loss", "train_accuracy", *FINAL, "train_tokens", "tokens_per_s")
FORMATS = ("csv", "parquet")


def results_frame(database_path: str | Path, history: bool = True):
    """The tidy frame of a results database (`history`: also the training-time rows)."""
    import pandas as pd

    database = ResultsDatabase(database_path, readonly=True)
    try:
        rows, _ = current_rows(database.rows())
    finally:
        database.close()
    records = []
    for row in rows:
        run = {column: row.get(column) for column in RUN_COLUMNS}
        run["kind"] = run["kind"] or experiment_kind(row["experiment"])
        run.update(row["factors"] if isinstance(row["factors"], dict) else {})
        if row["status"] == "done":
            metrics = row["metrics"] or {}
            final = metrics.get("final_train") or {}
            records.append({**run, "evaluation": "final", "step": final.get("step"),
                            "epoch": final.get("epoch"),
                            **{m: metrics.get(m) for m in FINAL}})  # fmt: skip
        if history:
            stored = (row["metrics"] or {}).get("history") or []
            for logged in (row["run_dir"] and logged_points(row["run_dir"])) or stored:
                records.append({**run, "evaluation": "training",
                                **{m: logged.get(m) for m in LOGGED}})  # fmt: skip
    frame = pd.DataFrame.from_records(records)
    for column in {*LOGGED, *FINAL} & set(frame.columns):  # numbers, missing ones NaN
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame


def export_results(
    database_path: str | Path, out: str | Path, fmt: str, force: bool = False
) -> int:
    """Write the frame as CSV or parquet into `out` (never over an existing file unless
    `force`); return its row count."""
    if fmt not in FORMATS:
        raise RewritelabError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    if out.exists() and not force:
        raise RewritelabError(f"{out} exists (pass --force to replace it)")
    frame = results_frame(database_path)
    if fmt == "csv":
        data = frame.to_csv(index=False).encode("utf-8")
    else:
        try:
            data = frame.to_parquet(index=False)
        except ImportError:
            raise RewritelabError(
                "parquet needs pyarrow: pip install 'rewritelab[results]'"
            ) from None
    write_bytes_atomic(out, data)
    return len(frame)
