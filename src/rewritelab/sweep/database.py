"""The results database: one SQLite row per grid point, written only by sweep drivers.

A row is created `pending` when a sweep is planned, becomes `running` when a driver claims it,
then `done` (with its metrics) or `failed` (with its error). Several sweeps may share one
database: a driver claims a point in one `BEGIN IMMEDIATE` transaction (recording its owner id
and a heartbeat it refreshes while the point runs), so no point is computed twice. A claim
whose owner is a dead process on this host, or whose heartbeat is older than
`STALE_AFTER_S`, is taken over: a killed sweep's points are resumed by the next one. Metrics
are stored as JSON, with the headline accuracies also in their own columns for quick queries.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewritelab.core.errors import RewritelabError

if TYPE_CHECKING:
    from rewritelab.sweep.experiment import Point

SCHEMA_VERSION = 3
STALE_AFTER_S = 300.0  # a claim not refreshed for this long belongs to a dead sweep

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    point_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    preset TEXT NOT NULL,
    kind TEXT,
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
    updated TEXT NOT NULL,
    owner TEXT,
    heartbeat REAL
);
CREATE INDEX IF NOT EXISTS points_by_experiment ON points (experiment, preset, status);
CREATE TABLE IF NOT EXISTS search_rounds (
    experiment TEXT NOT NULL,
    preset TEXT NOT NULL,
    round INTEGER NOT NULL,
    decision TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (experiment, preset, round)
);
"""

COLUMNS = (
    "point_id", "experiment", "preset", "kind", "seed", "factors", "dataset_id", "config", "status",
    "attempts", "error", "metrics", "unseen_accuracy", "seen_accuracy", "elapsed_s", "device",
    "versions", "run_dir", "data_dir", "updated", "owner", "heartbeat",
)  # fmt: skip
JSON_COLUMNS = ("factors", "config", "metrics", "versions")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_owner() -> str:
    """A claim owner id: host, process id and a random part (`host:pid:random`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """Whether a claim's owner is a process of this host that no longer exists."""
    from rewritelab.tasks.storage import pid_alive

    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


class ResultsDatabase:
    """Results of sweeps in one SQLite file; `readonly` opens an existing one without writing."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise RewritelabError(f"no results database at {self.path}")
        try:
            if readonly:
                self.connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro",
                                                  uri=True, timeout=60)  # fmt: skip
                self._check_ours(required=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.connection = sqlite3.connect(self.path, timeout=60)
                self._check_ours(required=False)
                self.connection.executescript(SCHEMA)
            self._check_version(readonly)
        except sqlite3.DatabaseError as error:
            raise RewritelabError(
                f"{self.path} is not a usable results database: {error}"
            ) from None
        self.connection.isolation_level = None  # transactions are explicit (`_transaction`)

    def _check_ours(self, required: bool) -> None:
        """Refuse another program's SQLite file before writing anything to it."""
        tables = {row[0] for row in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
        if (tables or required) and not {"meta", "points"} <= tables:
            self.connection.close()
            raise RewritelabError(f"{self.path} is not a rewritelab results database")

    # columns each older schema lacks: 1 the claim columns, 2 the experiment kind
    MIGRATIONS = {"1": ("owner TEXT", "heartbeat REAL", "kind TEXT"), "2": ("kind TEXT",)}

    def _check_version(self, readonly: bool) -> None:
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        version = None if row is None else row[0]
        if version in self.MIGRATIONS and not readonly:
            with self.connection:
                for column in self.MIGRATIONS[version]:
                    self.connection.execute(f"ALTER TABLE points ADD COLUMN {column}")
                self.connection.execute("UPDATE meta SET value = ? WHERE key = 'schema'",
                                        (str(SCHEMA_VERSION),))  # fmt: skip
        elif version is None and not readonly:
            with self.connection:
                self.connection.execute(
                    "INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
        elif version not in (None, *self.MIGRATIONS, str(SCHEMA_VERSION)):
            raise RewritelabError(
                f"{self.path} has results schema {version}, this rewritelab reads {SCHEMA_VERSION}"
            )

    def _transaction(self):
        return _Immediate(self.connection, self.path)

    def close(self) -> None:
        self.connection.close()

    def plan(self, points: list[Point]) -> None:
        """Add each point as `pending` unless it is already known."""
        with self._transaction():
            self.connection.executemany(
                "INSERT OR IGNORE INTO points (point_id, experiment, preset, kind, seed, "
                "factors, dataset_id, config, status, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (
                        p.point_id, p.experiment, p.preset, p.kind, p.seed, json.dumps(p.factors),
                        p.dataset_id, json.dumps(p.identity), _now(),
                    )
                    for p in points
                ],
            )  # fmt: skip

    def status(self, point_id: str) -> str | None:
        row = self.connection.execute(
            "SELECT status FROM points WHERE point_id = ?", (point_id,)
        ).fetchone()
        return None if row is None else row[0]

    def claim(
        self, point_id: str, owner: str, retry_failed: bool = False,
        stale_after_s: float = STALE_AFTER_S,
    ) -> bool:  # fmt: skip
        """Take the point for `owner` unless it is done, failed (without `retry_failed`) or
        claimed by a live sweep; True if taken. Atomic across processes (BEGIN IMMEDIATE)."""
        with self._transaction():
            row = self.connection.execute(
                "SELECT status, owner, heartbeat FROM points WHERE point_id = ?", (point_id,)
            ).fetchone()
            if row is None:
                return False
            status, holder, heartbeat = row
            takeable = status == "pending" or (status == "failed" and retry_failed)
            if status == "running":
                stale = heartbeat is None or time.time() - heartbeat > stale_after_s
                takeable = holder is None or stale or owner_is_dead(holder)
            if not takeable:
                return False
            self.connection.execute(
                "UPDATE points SET status = 'running', attempts = attempts + 1, error = NULL, "
                "owner = ?, heartbeat = ?, updated = ? WHERE point_id = ?",
                (owner, time.time(), _now(), point_id),
            )
            return True

    def release(self, owner: str) -> None:
        """Give back the unfinished claims of `owner` (an interrupted sweep): pending again."""
        with self._transaction():
            self.connection.execute(
                "UPDATE points SET status = 'pending', owner = NULL, heartbeat = NULL, "
                "updated = ? WHERE owner = ? AND status = 'running'",
                (_now(), owner),
            )

    def record(self, point_id: str, outcome: dict[str, Any]) -> None:
        """Store a finished point: `done` with metrics, or `failed` with its error."""
        metrics = outcome.get("metrics")
        with self._transaction():
            self.connection.execute(
                "UPDATE points SET status = ?, error = ?, metrics = ?, unseen_accuracy = ?, "
                "seen_accuracy = ?, elapsed_s = ?, device = ?, versions = ?, run_dir = ?, "
                "data_dir = ?, updated = ?, owner = NULL, heartbeat = NULL WHERE point_id = ?",
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

    def record_round(self, experiment: str, preset: str, number: int, decision: dict) -> None:
        """Store round `number` of an adaptive search (what it fitted, added and why); a
        resumed search that decides the round again replaces it."""
        with self._transaction():
            self.connection.execute(
                "INSERT OR REPLACE INTO search_rounds VALUES (?, ?, ?, ?, ?)",
                (experiment, preset, number, json.dumps(decision), _now()),
            )

    def search_rounds(self) -> dict[tuple[str, str], list[dict]]:
        """Every recorded adaptive search round, by (experiment, preset), in order (none in a
        database written before searches were recorded)."""
        tables = {row[0] for row in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
        if "search_rounds" not in tables:
            return {}
        rounds: dict[tuple[str, str], list[dict]] = {}
        for experiment, preset, decision in self.connection.execute(
            "SELECT experiment, preset, decision FROM search_rounds "
            "ORDER BY experiment, preset, round"
        ):
            rounds.setdefault((experiment, preset), []).append(json.loads(decision))
        return rounds

    def delete(self, point_ids: list[str]) -> None:
        """Remove these points' rows, in one transaction."""
        with self._transaction():
            self.connection.executemany(
                "DELETE FROM points WHERE point_id = ?", [(point_id,) for point_id in point_ids]
            )

    def rows(self, experiment: str | None = None, preset: str | None = None) -> list[dict]:
        """All rows (optionally of one experiment / preset), JSON columns decoded."""
        present = {row[1] for row in self.connection.execute("PRAGMA table_info(points)")}
        selected = ", ".join(c if c in present else f"NULL AS {c}" for c in COLUMNS)
        query, args = f"SELECT {selected} FROM points WHERE 1=1", []
        for column, value in (("experiment", experiment), ("preset", preset)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        rows = []
        try:
            found = self.connection.execute(query + " ORDER BY rowid", args).fetchall()
        except sqlite3.DatabaseError as error:
            raise RewritelabError(f"{self.path} is not usable: {error}") from None
        for values in found:
            row = dict(zip(COLUMNS, values, strict=True))
            for column in JSON_COLUMNS:
                try:
                    row[column] = None if row[column] is None else json.loads(row[column])
                except (TypeError, ValueError):
                    raise RewritelabError(
                        f"{self.path}: point {row['point_id']} has unreadable {column}"
                    ) from None
            rows.append(row)
        return rows


def current_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(kept, superseded): per run of a point (experiment, preset, factors, seed), its latest
    successful row, or its latest row when none succeeded; the others are superseded (a failed
    attempt, or a run under an older config of an edited experiment file)."""
    runs: dict[str, list[dict]] = {}
    for row in rows:
        key = json.dumps([row["experiment"], row["preset"], row["factors"], row["seed"]],
                         sort_keys=True)  # fmt: skip
        runs.setdefault(key, []).append(row)
    kept = []
    for members in runs.values():
        done = [row for row in members if row["status"] == "done"]
        # the latest by time, then by insertion (rows come in rowid order)
        kept.append(max(reversed(done or members), key=lambda row: row["updated"] or ""))
    chosen = {id(row) for row in kept}
    return [row for row in rows if id(row) in chosen], [r for r in rows if id(r) not in chosen]


class Heartbeat:
    """A background thread refreshing `owner`'s claims every `every_s` seconds (own connection)."""

    def __init__(self, path: Path, owner: str, every_s: float):
        self.path, self.owner, self.every_s = path, owner, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="sweep-heartbeat")

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            while not self.stop.wait(self.every_s):
                with _Immediate(connection):
                    connection.execute(
                        "UPDATE points SET heartbeat = ? WHERE owner = ? AND status = 'running'",
                        (time.time(), self.owner),
                    )
        finally:
            connection.close()


class _Immediate:
    """A write transaction taken with BEGIN IMMEDIATE: other writers wait, none interleave. A
    database error (the disk full, a lock held too long, a damaged file) is rolled back and
    raised as one line naming the database."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.connection, self.path = connection, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise RewritelabError(f"results database {self.path}: {error}") from None
        return self.connection

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None:  # SQLite may have rolled back already (a full disk does)
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            if issubclass(kind, sqlite3.Error):
                raise RewritelabError(f"results database {self.path}: {error}") from None
            return
        try:
            self.connection.execute("COMMIT")
        except sqlite3.Error as failure:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise RewritelabError(f"results database {self.path}: {failure}") from None
