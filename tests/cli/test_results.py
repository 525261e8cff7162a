"""`rewritelab results export` and `results prune`, through the CLI: the tidy frame of a results
database (CSV and parquet, read back with pandas), and pruning rows that a later success
of the same point supersedes, which the report leaves out and counts."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import run_cli
from tiny_sweep import TINY

from rewritelab.analysis.report import write_report
from rewritelab.sweep import ResultsDatabase, load_experiment

pd = pytest.importorskip("pandas")


def _outcome(accuracy: float, run_dir=None) -> dict:
    return {"metrics": {"unseen_accuracy": accuracy, "seen_accuracy": 1.0,
                        "final_train": {"step": 30, "epoch": 1.0}},
            "elapsed_s": 2.0, "device": "cpu", "versions": {"rewritelab": "test"},
            "run_dir": None if run_dir is None else str(run_dir)}  # fmt: skip


def _points(tmp_path, text=TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return load_experiment(path).points()


@pytest.fixture
def database(tmp_path):
    """The tiny experiment, every point done (unseen 0.1 at I = 2, 0.9 at I = 8); the first
    point's run directory logged two evaluation points."""
    points = _points(tmp_path)
    run_dir = tmp_path / "run0"
    run_dir.mkdir()
    logged = [{"step": 10, "epoch": 0.5, "train_loss": 0.5, "seen_accuracy": 0.4},
              {"step": 20, "epoch": 1.0, "train_loss": 0.2, "seen_accuracy": 0.8}]  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in logged))
    db = ResultsDatabase(tmp_path / "r.sqlite")
    db.plan(points)
    for i, point in enumerate(points):
        accuracy = 0.1 if point.factors["dataset.train.instructions"] == 2 else 0.9
        db.record(point.point_id, _outcome(accuracy, run_dir if i == 0 else None))
    db.close()
    return tmp_path / "r.sqlite"


def test_export_gives_a_row_per_run_and_evaluation_point(database, tmp_path, capsys):
    out = tmp_path / "frame.csv"
    code, printed, _ = run_cli(["results", "export", str(database), "--out", str(out)], capsys)
    assert code == 0 and "6 rows" in printed  # 4 final rows + 2 logged points of one run
    frame = pd.read_csv(out)
    final = frame[frame.evaluation == "final"]
    assert len(final) == 4 and set(final.seed) == {0, 1}
    by_count = final.groupby("dataset.train.instructions").unseen_accuracy.mean().to_dict()
    assert by_count == {2: 0.1, 8: 0.9}
    training = frame[frame.evaluation == "training"]
    assert training.step.tolist() == [10, 20] and training.seen_accuracy.tolist() == [0.4, 0.8]
    assert set(frame.kind) == {"generic"} and set(frame.experiment) == {"tiny"}
    parquet = tmp_path / "frame.parquet"
    assert run_cli(["results", "export", str(database), "--format", "parquet",
                    "--out", str(parquet)], capsys)[0] == 0  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), frame, check_dtype=False)


def test_export_never_replaces_a_file_unless_forced(database, tmp_path, capsys):
    out = tmp_path / "frame.csv"
    out.write_text("mine\n")
    code, _, err = run_cli(["results", "export", str(database), "--out", str(out)], capsys)
    assert code != 0 and err.count("\n") == 1 and "exists" in err
    assert out.read_text() == "mine\n"
    assert run_cli(["results", "export", str(database), "--out", str(out), "--force"],
                   capsys)[0] == 0  # fmt: skip
    assert out.read_text().startswith("experiment,")


def test_a_later_run_under_an_edited_config_supersedes_the_older(database, tmp_path, capsys):
    edited = _points(tmp_path, TINY.replace("epochs = 1", "epochs = 2"))  # same factors, seeds
    db = ResultsDatabase(database)
    db.plan(edited)
    for point in edited:
        db.record(point.point_id, _outcome(0.5))
    first = _points(tmp_path)[0]  # a row of the unedited file: superseded
    db.close()
    write_report(database, tmp_path / "report")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["analysis"]["tiny/base"]["superseded_rows"] == 4
    assert all("config" not in e["factors"] for e in summary["tiny/base"])  # one series
    assert [e["unseen_accuracy"] for e in summary["tiny/base"]] == [0.5, 0.5]

    before = hashlib.sha256(database.read_bytes()).hexdigest()
    code, printed, _ = run_cli(["results", "prune", str(database), "--dry-run"], capsys)
    assert code == 0 and "would remove 4 rows" in printed
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    assert run_cli(["results", "prune", str(database)], capsys)[0] == 0
    rows = ResultsDatabase(database, readonly=True).rows()
    assert len(rows) == 4 and first.point_id not in {r["point_id"] for r in rows}


def test_prune_failed_removes_points_that_never_succeeded(tmp_path, capsys):
    points = _points(tmp_path)
    db = ResultsDatabase(tmp_path / "r.sqlite")
    db.plan(points)
    db.record(points[0].point_id, {"error": "boom"})
    db.record(points[1].point_id, _outcome(0.3))
    db.close()
    code, printed, _ = run_cli(["results", "prune", str(tmp_path / "r.sqlite"), "--failed"], capsys)
    assert code == 0 and "removed 1 rows" in printed and "1 failed" in printed
    remaining = ResultsDatabase(tmp_path / "r.sqlite", readonly=True).rows()
    assert points[0].point_id not in {r["point_id"] for r in remaining} and len(remaining) == 3


def test_a_moved_database_still_gives_the_history_it_stored(tmp_path, capsys):
    points = _points(tmp_path)
    db = ResultsDatabase(tmp_path / "r.sqlite")
    db.plan(points[:1])
    outcome = _outcome(0.7, tmp_path / "gone")  # its run directory is not on this machine
    outcome["metrics"]["history"] = [{"step": 5, "seen_accuracy": 0.25}]
    db.record(points[0].point_id, outcome)
    db.close()
    out = tmp_path / "frame.csv"
    assert run_cli(["results", "export", str(tmp_path / "r.sqlite"), "--out", str(out)],
                   capsys)[0] == 0  # fmt: skip
    frame = pd.read_csv(out)
    assert frame.evaluation.tolist() == ["final", "training"]
    assert frame.seen_accuracy.tolist() == [1.0, 0.25]
