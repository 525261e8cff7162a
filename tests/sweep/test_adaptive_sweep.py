"""The adaptive search on a real sweep: points through run_sweep and the results database,
rounds recorded with their reasons, a resumed search that runs nothing twice, the report's
account, and `--adaptive` through the CLI."""

from __future__ import annotations

import json

import pytest
from tiny_sweep import TINY

from rewritelab.analysis.adaptive_search import SearchSettings
from rewritelab.analysis.adaptive_sweep import run_adaptive_sweep
from rewritelab.analysis.report import write_report
from rewritelab.analysis.search_simulation import SyntheticCurve
from rewritelab.cli.main import main
from rewritelab.sweep import ResultsDatabase, load_experiment, run_sweep
from rewritelab.sweep import runner as runner_module

CURVE = SyntheticCurve(midpoint=6.0, slope=3.0, ceiling=0.97, seed_spread=0.15)
WIDE = TINY.replace(
    '"dataset.train.instructions" = [2, 8]', '"dataset.train.instructions" = [8, 256]'
)
WIDE = WIDE.replace('alphabet = "abcd"', 'alphabet = "abcdefgh"').replace(
    "examples = 200", "examples = 2000"
)


@pytest.fixture
def synthetic_runs(monkeypatch):
    """run_point replaced by the synthetic curve (no training): every call is counted."""
    calls = []

    def run_point(point, workdir):
        level = point.factors["dataset.train.instructions"]
        calls.append((level, point.seed))
        observed = CURVE.observe(0, level, point.seed)
        by_rule = {str(i): a for i, a in enumerate(observed.by_rule)}
        metrics = {"unseen_accuracy": observed.accuracy, "seen_accuracy": 1.0,
                   "unseen_by_instruction": by_rule, "final_train": {}, "history": []}  # fmt: skip
        return {"metrics": metrics, "elapsed_s": 1.0, "device": "cpu", "versions": {}}

    monkeypatch.setattr(runner_module, "run_point", run_point)
    return calls


def test_the_search_runs_its_rounds_through_the_sweep_and_resumes_without_rerunning(
    tmp_path, synthetic_runs
):
    path = tmp_path / "wide.toml"
    path.write_text(WIDE)
    experiment = load_experiment(path)
    settings = SearchSettings(replicates=200, budget=30)
    database = ResultsDatabase(tmp_path / "results.sqlite")

    def run_points(points):
        return run_sweep(experiment, database, tmp_path, points=points, progress=False)

    rounds = run_adaptive_sweep(experiment, database, settings, run_points)
    assert rounds[-1].stop is not None and len(rounds) > 2
    planned = [(a.instructions, a.seed) for r in rounds for a in r.additions]
    assert sorted(synthetic_runs) == sorted(planned)  # each planned run ran once
    recorded = database.search_rounds()[("tiny", "base")]
    assert [r["number"] for r in recorded] == list(range(len(rounds)))
    assert recorded[-1]["stop"] == rounds[-1].stop
    ids = {row["point_id"] for row in database.rows()}
    assert {a["point_id"] for r in recorded for a in r["additions"]} == ids
    assert all(a["reason"] for r in recorded for a in r["additions"])
    synthetic_runs.clear()
    again = run_adaptive_sweep(experiment, database, settings, run_points)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rounds]
    assert synthetic_runs == []  # a resumed search replays its rounds from the database
    database.close()
    report = write_report(tmp_path / "results.sqlite", tmp_path / "report").read_text()
    assert f"**Adaptive search**: {len(rounds)} rounds, {len(planned)} runs" in report
    assert "coarse grid (1 doublings apart)" in report
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["analysis"]["tiny/base"]["search"] == recorded


def test_a_search_needs_one_curve_with_a_range_of_counts(tmp_path):
    from rewritelab.analysis.adaptive_sweep import instruction_range
    from rewritelab.core.errors import RewritelabError

    path = tmp_path / "t.toml"
    path.write_text(
        TINY + '[presets.one]\n[presets.one.grid]\n"dataset.train.instructions" = [4]\n'
    )
    with pytest.raises(RewritelabError, match="at least two instruction counts"):
        instruction_range(load_experiment(path, "one"))
    two_lines = TINY.replace("[grid]\n", '[grid]\n"train.epochs" = [1, 2]\n')
    path.write_text(two_lines)
    with pytest.raises(RewritelabError, match="grid factor 'train.epochs' has 2 values"):
        instruction_range(load_experiment(path))


def test_adaptive_through_the_cli_records_rounds_and_refuses_bad_settings(tmp_path, capsys):
    """`reproduce FILE --adaptive` on real tiny training (which never generalises: the search
    stops off the grid after its coarse round), then a rerun that trains nothing."""
    path = tmp_path / "tiny.toml"
    path.write_text(
        TINY.replace("[presets.small]", "[adaptive]\nreplicates = 100\n\n[presets.small]")
    )
    args = ["reproduce", str(path), "--adaptive", "--workdir", str(tmp_path / "w"), "--quiet",
            "--jobs", "1", "--out", str(tmp_path / "report")]  # fmt: skip
    assert main(args) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert "adaptive search (at most 60 runs)" in printed
    stopped = "stopped: off the grid: I50 is beyond the grid of I = 2..8"
    assert f"adaptive search: 2 rounds, 6 runs, {stopped}" in printed
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["run"]["command"] == f"rewritelab reproduce {path} --adaptive"
    assert [len(r["additions"]) for r in summary["analysis"]["tiny/base"]["search"]] == [6, 0]
    assert main(args) == 0
    database = ResultsDatabase(tmp_path / "w" / "results.sqlite", readonly=True)
    assert all(row["attempts"] == 1 for row in database.rows())  # nothing trained twice
    database.close()
    path.write_text(TINY.replace("[presets.small]", "[adaptive]\nbudgit = 3\n\n[presets.small]"))
    assert main(args) == 2
    assert "unknown key 'budgit' in adaptive" in capsys.readouterr().err
    assert main(["reproduce", "all", "--adaptive", "--quiet"]) == 2
    assert "takes no --workdir, --db or --adaptive" in capsys.readouterr().err
