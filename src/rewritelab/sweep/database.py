"""The results database: one SQLite row per grid point, written only by the sweep's driver.

A row is created `pending` when a sweep is planned, becomes `running`, then `done` (with its
metrics) or `failed` (with its error). A killed sweep leaves `running` rows behind; the next
run treats them as unfinished and resumes them. Metrics are stored as JSON, with the headline
accuracies also in their own columns for quick SQL queries.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rewritelab.errors import RewritelabError
from rewritelab.sweep.experiment import Point

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    point_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    preset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    factors TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    metrics TEXT,
    unseen_accuracy REAL,
    seen_accuracy REAL,
    elapsed_s REAL,
    device TEXT,
    versions TEXT,
    run_dir TEXT,
    data_dir TEXT,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_by_experiment ON points (experiment, preset, status);
"""

COLUMNS = (
    "point_id", "experiment", "preset", "seed", "factors", "dataset_id", "config", "status",
    "attempts", "error", "metrics", "unseen_accuracy", "seen_accuracy", "elapsed_s", "device",
    "versions", "run_dir", "data_dir", "updated",
)  # fmt: skip
JSON_COLUMNS = ("factors", "config", "metrics", "versions")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultsDatabase:
    """Results of sweeps in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connection = sqlite3.connect(self.path, timeout=60)
            self.connection.executescript(SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as error:
            raise RewritelabError(
                f"{self.path} is not a usable results database: {error}"
            ) from None

    def _check_version(self) -> None:
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            with self.connection:
                self.connection.execute(
                    "INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
        elif int(row[0]) != SCHEMA_VERSION:
            raise RewritelabError(
                f"{self.path} has results schema {row[0]}, this rewritelab reads {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        self.connection.close()

    def plan(self, points: list[Point]) -> None:
        """Add each point as `pending` unless it is already known."""
        with self.connection:
            self.connection.executemany(
                "INSERT OR IGNORE INTO points (point_id, experiment, preset, seed, factors, "
                "dataset_id, config, status, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (
                        p.point_id, p.experiment, p.preset, p.seed, json.dumps(p.factors),
                        p.dataset_id, json.dumps({"dataset": p.dataset, "train": p.train}), _now(),
                    )
                    for p in points
                ],
            )  # fmt: skip

    def status(self, point_id: str) -> str | None:
        row = self.connection.execute(
            "SELECT status FROM points WHERE point_id = ?", (point_id,)
        ).fetchone()
        return None if row is None else row[0]

    def mark_running(self, point_id: str) -> None:
        with self.connection:
            self.connection.execute(
                "UPDATE points SET status = 'running', attempts = attempts + 1, error = NULL, "
                "updated = ? WHERE point_id = ?",
                (_now(), point_id),
            )

    def record(self, point_id: str, outcome: dict[str, Any]) -> None:
        """Store a finished point: `done` with metrics, or `failed` with its error."""
        metrics = outcome.get("metrics")
        with self.connection:
            self.connection.execute(
                "UPDATE points SET status = ?, error = ?, metrics = ?, unseen_accuracy = ?, "
                "seen_accuracy = ?, elapsed_s = ?, device = ?, versions = ?, run_dir = ?, "
                "data_dir = ?, updated = ? WHERE point_id = ?",
                (
                    "failed" if outcome.get("error") else "done",
                    outcome.get("error"),
                    None if metrics is None else json.dumps(metrics),
                    (metrics or {}).get("unseen_accuracy"),
                    (metrics or {}).get("seen_accuracy"),
                    outcome.get("elapsed_s"),
                    outcome.get("device"),
                    json.dumps(outcome.get("versions")),
                    outcome.get("run_dir"),
                    outcome.get("data_dir"),
                    _now(),
                    point_id,
                ),
            )

    def rows(self, experiment: str | None = None, preset: str | None = None) -> list[dict]:
        """All rows (optionally of one experiment / preset), JSON columns decoded."""
        query, args = f"SELECT {', '.join(COLUMNS)} FROM points WHERE 1=1", []
        for column, value in (("experiment", experiment), ("preset", preset)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        rows = []
        for values in self.connection.execute(query + " ORDER BY rowid", args):
            row = dict(zip(COLUMNS, values, strict=True))
            for column in JSON_COLUMNS:
                row[column] = None if row[column] is None else json.loads(row[column])
            rows.append(row)
        return rows

    def export_json(self, path: str | Path) -> None:
        """Write every row as JSON (the portable export committed next to figures)."""
        Path(path).write_text(json.dumps(self.rows(), indent=1) + "\n", encoding="utf-8")
