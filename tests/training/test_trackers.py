"""Trackers through their own libraries, offline: a run's metrics reach MLflow (a local file
store, read back with MlflowClient), Weights & Biases (offline mode, its run directory),
Trackio (its local store, read back with its API) and TensorBoard (read back with its event
reader), with the values of `metrics.jsonl`; a resumed run continues the same tracker run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from tiny_run import make_data

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).parents[2] / "src")
TRAIN = ["--max-steps", "40", "--eval-every", "20", "--layers", "1", "--heads", "1",
         "--width", "16", "--context", "32", "--quiet"]  # fmt: skip


def _train(tmp_path, capsys, tracker: str, *extra: str):
    data = tmp_path / "data"
    if not data.exists():
        make_data(data)
    run = tmp_path / f"run-{tracker}"
    args = [
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        *TRAIN,
        "--set",
        f"tracker='{tracker}'",
    ]
    code, _, err = run_cli([*args, *extra], capsys)
    assert code == 0, err
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return run, logged


def test_mlflow_gets_every_point_and_a_resume_continues_its_run(tmp_path, capsys, monkeypatch):
    """Killed after its first checkpoint and resumed: one MLflow run, with the history of the
    metrics log."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = make_data(tmp_path / "data")
    run = tmp_path / "run-mlflow"
    command = [sys.executable, "-m", "rewritelab.cli.main", "train", "--data", str(data),
               "--out", str(run), *TRAIN, "--set", "tracker='mlflow'"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": SRC, "REWRITELAB_THREADS": "1",
           "REWRITELAB_PAUSE_AT": "latest-updated"}  # fmt: skip
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert any("paused at latest-updated" in line for line in first.stderr)
    first.kill()
    first.wait()
    run, logged = _train(tmp_path, capsys, "mlflow", "--resume")
    run_id = json.loads((run / "tracker.json").read_text())["id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{(run / 'mlflow.db').resolve()}")
    history = client.get_metric_history(run_id, "seen_accuracy")
    assert [(m.step, m.value) for m in history] == [(m["step"], m["seen_accuracy"]) for m in logged]
    assert [m["step"] for m in logged] == [20, 40]
    assert client.get_run(run_id).data.params["learning_rate"] == str(0.001)
    [experiment] = [e for e in client.search_experiments() if e.name == "rewritelab"]
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_wandb_runs_offline_into_the_run_directory(tmp_path, capsys, monkeypatch):
    """wandb 0.31 keeps an offline run as protobuf records (`wandb sync` uploads them); their
    strings are stored as written, so each logged value's JSON text is found in the file."""
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is our default, not the env's
    run, logged = _train(tmp_path, capsys, "wandb")
    [records] = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    data = records.read_bytes()
    assert b"seen_accuracy" in data and b"train_loss" in data
    assert all(json.dumps(m["train_loss"]).encode() in data for m in logged)


def test_trackio_logs_to_its_local_store(tmp_path):
    """In a subprocess: trackio reads TRACKIO_DIR once, when it is first imported."""
    pytest.importorskip("trackio")
    data = make_data(tmp_path / "data")
    run, store = tmp_path / "run", tmp_path / "trackio"
    command = [sys.executable, "-m", "rewritelab.cli.main", "train", "--data", str(data),
               "--out", str(run), *TRAIN, "--set", "tracker='trackio'"]  # fmt: skip
    env = {**os.environ, "TRACKIO_DIR": str(store), "REWRITELAB_THREADS": "1",
           "PYTHONPATH": SRC}  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    name = json.loads((run / "tracker.json").read_text())["id"]
    with sqlite3.connect(store / "rewritelab.db") as database:  # trackio's own store, read back
        rows = database.execute(
            "SELECT step, metrics FROM metrics WHERE run_name = ? ORDER BY step", (name,)
        ).fetchall()
    assert [(step, json.loads(m)["seen_accuracy"]) for step, m in rows] == [
        (m["step"], m["seen_accuracy"]) for m in logged
    ]


def test_tensorboard_events_hold_the_logged_values(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, logged = _train(tmp_path, capsys, "tensorboard")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    values = [(e.step, e.value) for e in events.Scalars("seen_accuracy")]
    assert values == [(m["step"], pytest.approx(m["seen_accuracy"])) for m in logged]


def test_an_unknown_tracker_is_one_line(tmp_path, capsys):
    make_data(tmp_path / "data")
    args = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r"), *TRAIN]
    code, _, err = run_cli([*args, "--set", "tracker='neptune'"], capsys)
    assert code == 2 and "tracker must be one of none, tensorboard, mlflow, wandb, trackio" in err
    assert not (tmp_path / "r").exists()
