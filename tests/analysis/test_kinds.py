"""Experiment kinds: required and validated in experiment files, recorded by the sweep, and
what decides the report's analysis (not the experiment's name)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from tiny_sweep import TINY

from rewritelab.analysis.kinds import KINDS
from rewritelab.analysis.report import write_report
from rewritelab.core.errors import RewritelabError
from rewritelab.core.paper import KIND_NAMES
from rewritelab.sweep import ResultsDatabase, load_experiment


def test_every_known_kind_has_an_analysis_and_every_analysis_a_kind():
    assert sorted(KINDS) == sorted(KIND_NAMES)


@pytest.mark.parametrize("text, message", [
    (TINY.replace('kind = "generic"\n', ""), "no kind; an experiment's kind is one of e0, "),
    (TINY.replace('kind = "generic"', 'kind = "e9"'), "kind 'e9'; an experiment's kind is one"),
    (TINY.replace('kind = "generic"', "kind = [1]"), "kind '[1]'"),
])  # fmt: skip
def test_an_experiment_file_without_a_known_kind_is_refused(tmp_path, text, message):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    with pytest.raises(RewritelabError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_experiment(path)


def _finished_database(tmp_path, kind: str):
    """The tiny experiment under `kind`, every point recorded done with made-up accuracies
    rising with I (no training: the report is what is tested)."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace('kind = "generic"', f'kind = "{kind}"'))
    points = load_experiment(path).points()
    database = ResultsDatabase(tmp_path / "r.sqlite")
    database.plan(points)
    for point in points:
        accuracy = 0.1 if point.factors["dataset.train.instructions"] == 2 else 0.9
        database.record(point.point_id, {
            "metrics": {"unseen_accuracy": accuracy, "seen_accuracy": 1.0}, "elapsed_s": 1.0,
            "device": "cpu", "versions": {"rewritelab": "test"},
        })  # fmt: skip
    database.close()
    return tmp_path / "r.sqlite"


def _analysis(database, out) -> dict:
    write_report(database, out)
    return json.loads((out / "summary.json").read_text())["analysis"]["tiny/base"]


def test_the_report_analyses_an_experiment_by_its_recorded_kind_not_its_name(tmp_path):
    database = _finished_database(tmp_path, "e1")  # named "tiny": the name says nothing
    analysis = _analysis(database, tmp_path / "report")
    assert analysis["kind"] == "e1"
    assert "transitions" in analysis  # E1's analysis: the fitted transition
    assert analysis["claim"].startswith("unseen accuracy ≈ 0 for I < 300")


def test_a_generic_experiment_gets_curves_without_a_transition_or_claim(tmp_path):
    analysis = _analysis(_finished_database(tmp_path, "generic"), tmp_path / "report")
    assert analysis["kind"] == "generic" and "transitions" not in analysis
    assert analysis["claim"] == "–"


def test_a_database_written_before_kinds_were_recorded_is_migrated_and_read(tmp_path):
    database = _finished_database(tmp_path, "e1")
    with sqlite3.connect(database) as connection:  # as results schema 2 wrote it
        connection.execute("ALTER TABLE points DROP COLUMN kind")
        connection.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    readonly = _analysis(database, tmp_path / "old")  # read as it is: kind from the name
    assert readonly["kind"] == "generic"
    ResultsDatabase(database).close()  # opened for writing: migrated to schema 3
    with sqlite3.connect(database) as connection:
        columns = {c[1] for c in connection.execute("PRAGMA table_info(points)")}
        schema = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    assert "kind" in columns and schema == ("3",)


def test_an_unknown_recorded_kind_is_one_line_not_a_traceback(tmp_path):
    database = _finished_database(tmp_path, "e1")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE points SET kind = 'e99'")
    with pytest.raises(RewritelabError, match="experiment 'tiny' has unknown kind 'e99'"):
        write_report(database, tmp_path / "report")
