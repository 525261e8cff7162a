"""`rewritelab compare`: a rerun's database against another, run by run, through the CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import run_cli
from tiny_sweep import TINY

from rewritelab.cli.main import main


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory):
    """The tiny experiment's two-seed grid, swept twice into two work directories."""
    root = tmp_path_factory.mktemp("compare")
    (root / "tiny.toml").write_text(TINY)
    databases = []
    for name in ("first", "again"):
        argv = ["sweep", str(root / "tiny.toml"), "--workdir", str(root / name), "--quiet"]
        assert main(argv + ["--jobs", "1"]) == 0
        databases.append(root / name / "results.sqlite")
    return databases


def edit_run(database, instructions, seed, edit):
    """Apply `edit(metrics, config)` to one finished run's stored JSON, in place."""
    connection = sqlite3.connect(database)
    factors = json.dumps({"dataset.train.instructions": instructions})
    metrics, config = connection.execute(
        "SELECT metrics, config FROM points WHERE factors = ? AND seed = ?", (factors, seed)
    ).fetchone()
    metrics, config = json.loads(metrics), json.loads(config)
    edit(metrics, config)
    connection.execute(
        "UPDATE points SET metrics = ?, config = ? WHERE factors = ? AND seed = ?",
        (json.dumps(metrics), json.dumps(config), factors, seed),
    )
    connection.commit()
    connection.close()


def test_a_rerun_matches_run_by_run(two_sweeps, capsys):
    first, again = two_sweeps
    code, out, err = run_cli(["compare", str(first), str(again)], capsys)
    assert (code, err) == (0, "")
    assert f"{first}: 4 finished runs; {again}: 4" in out
    assert (
        "4 runs in both (same experiment, factors and seed): 4 with identical metrics, 0 differ"
        in out
    )
    assert (
        "differs:" not in out and "config keys" not in out
    )  # the timings differ, and do not count


def test_a_metric_only_one_side_records_is_named_not_counted(two_sweeps, tmp_path, capsys):
    first, again = two_sweeps
    later = tmp_path / "later.sqlite"
    later.write_bytes(again.read_bytes())

    def record_more(metrics, config):  # as a later version might
        metrics["unseen_by_something_new"] = {"1": 0.5}
        metrics["final_train"]["a_new_rate"] = 0.25
        metrics["history"][0]["a_new_rate"] = 0.25

    edit_run(later, 2, 1, record_more)
    code, out, _ = run_cli(["compare", str(first), str(later)], capsys)
    assert code == 0 and "4 with identical metrics, 0 differ" in out
    left_out = "metrics recorded in one database only, left out: unseen_by_something_new (1 runs)"
    assert left_out in out


def test_a_changed_metric_is_named_with_its_run(two_sweeps, tmp_path, capsys):
    first, again = two_sweeps
    edited = tmp_path / "edited.sqlite"
    edited.write_bytes(again.read_bytes())

    def lower_seen(metrics, config):
        metrics["seen_accuracy"] -= 0.25

    edit_run(edited, 8, 1, lower_seen)
    code, out, _ = run_cli(["compare", str(first), str(edited)], capsys)
    assert code == 1
    assert "3 with identical metrics, 1 differ" in out
    (line,) = [line for line in out.splitlines() if "differs:" in line]
    assert 'tiny {"dataset.train.instructions": 8} seed 1 (same config): seen_accuracy (' in line

    def other_learning_rate(metrics, config):
        config["train"]["learning_rate"] = 0.123
        metrics["history"][-1]["unseen_accuracy"] += 0.5

    edit_run(edited, 2, 0, other_learning_rate)
    code, out, _ = run_cli(["compare", str(first), str(edited)], capsys)
    assert code == 1 and "2 with identical metrics, 2 differ" in out
    assert "config keys that differ between shared runs: train.learning_rate (1 runs)" in out
    assert "seed 0 (config differs: train.learning_rate): history (" in out


def test_databases_without_a_shared_run_do_not_pass(two_sweeps, tmp_path, capsys):
    first, _ = two_sweeps
    (tmp_path / "tiny.toml").write_text(TINY)
    argv = ["sweep", str(tmp_path / "tiny.toml"), "--preset", "small", "--workdir"]
    assert main(argv + [str(tmp_path / "small"), "--quiet", "--jobs", "1"]) == 0
    code, out, _ = run_cli(["compare", str(first), str(tmp_path / "small/results.sqlite")], capsys)
    assert code == 1 and "0 runs in both" in out


def test_what_is_not_a_results_database_is_one_line(two_sweeps, tmp_path, capsys):
    first, _ = two_sweeps
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    for other, problem in ((tmp_path / "none.sqlite", "no results database at"),
                           (text, "is not a usable results database")):  # fmt: skip
        code, out, err = run_cli(["compare", str(first), str(other)], capsys)
        assert (code, out) == (2, "") and err.count("\n") == 1 and problem in err
    assert not (tmp_path / "none.sqlite").exists()  # read-only: nothing created
