"""Issue 10's promises, one test each: guarded and atomic `generate --force`, point and dataset
identities, reports that never mix configs, git dirty flags, failed points, claims."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from tiny_sweep import TINY

from rewritelab.analysis.report import write_report
from rewritelab.cli.main import main
from rewritelab.core import provenance
from rewritelab.sweep import ResultsDatabase, load_experiment
from rewritelab.sweep import experiment as experiment_module
from rewritelab.tasks.storage import read_manifest, recover_leftovers

GENERATE = ["generate", "--quiet", "--instructions", "3", "--examples-per-instruction", "2"]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_force_replaces_only_a_dataset(tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    assert main([*GENERATE, "--out", str(precious), "--force"]) == 2
    assert "not a rewritelab dataset" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]  # no staging left either
    data = tmp_path / "data"
    assert main([*GENERATE, "--out", str(data), "--seed", "1"]) == 0
    assert main([*GENERATE, "--out", str(data), "--seed", "2", "--force"]) == 0
    assert read_manifest(data)["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "precious"]


def test_a_half_swapped_directory_is_repaired_and_leftovers_cleaned(tmp_path):
    """A kill between the fallback swap's two renames: DIR is missing, the old dataset sits at
    .DIR.old-PID and the new one at .DIR.partial-PID; the next run restores the old one."""
    data = tmp_path / "data"
    assert main([*GENERATE, "--out", str(data), "--seed", "1"]) == 0
    new = tmp_path / "new"
    assert main([*GENERATE, "--out", str(new), "--seed", "2"]) == 0
    pid = _dead_pid()
    data.rename(tmp_path / f".data.old-{pid}")
    new.rename(tmp_path / f".data.partial-{pid}")
    live = tmp_path / ".data.partial-1"  # PID 1 is alive: another generator's, left alone
    live.mkdir()
    recover_leftovers(data)
    assert read_manifest(data)["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.partial-1", "data"]


def test_the_fallback_swap_without_rename_exchange(tmp_path, monkeypatch):
    monkeypatch.setenv("REWRITELAB_NO_EXCHANGE", "1")
    data = tmp_path / "data"
    assert main([*GENERATE, "--out", str(data), "--seed", "1"]) == 0
    assert main([*GENERATE, "--out", str(data), "--seed", "3", "--force"]) == 0
    assert read_manifest(data)["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_point_identity_is_the_full_config_and_the_generator(tmp_path, monkeypatch):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    first = load_experiment(path).points()[0]
    first_ids = (first.point_id, first.dataset_id)
    path.write_text(TINY.replace("epochs = 1", "epochs = 2"))
    edited = load_experiment(path).points()[0]
    assert edited.factors == first.factors and edited.seed == first.seed
    assert edited.point_id != first.point_id  # a changed config is a new point
    assert edited.dataset_id == first.dataset_id  # ... on the same data
    monkeypatch.setattr(experiment_module, "generator_digest", lambda: "another generator")
    path.write_text(TINY)
    regenerated = load_experiment(path).points()[0]
    assert regenerated.dataset_id != first_ids[1] and regenerated.point_id != first_ids[0]


def test_generator_digest_covers_the_generators_modules():
    digest = provenance.generator_digest()
    assert len(digest) == 16
    modules = {
        "rewritelab.tasks.generate",
        "rewritelab.tasks.spec",
        "rewritelab.tasks.rules",
        "rewritelab.tasks.inputs",
    }
    found, todo = set(), ["rewritelab.tasks.generate"]
    while todo:
        module = todo.pop()
        if module not in found:
            found.add(module)
            todo.extend(provenance._imported_modules(provenance._module_file(module)))
    assert modules <= found and "rewritelab.training.scratch" not in found


def test_the_generator_digest_reads_code_not_its_layout_comments_or_docstrings():
    module = 'x = 1\n\n\ndef f(a, b):\n    """Add."""\n    return a + b\n'
    relaid = "# a comment\nx = (1)\ndef f( a,\n       b ):\n    return (a +\n  b)  # sum\n"
    assert provenance.source_code(relaid) == provenance.source_code(module)
    code = provenance.source_code
    assert code('def f(a, b):\n    """Add."""\n') == code("def f(a, b):\n    pass\n")
    for changed in (module.replace("a + b", "a - b"), module.replace("x = 1", "x = 2"),
                    module.replace("(a, b)", "(a, b=0)"), module + "y = f\n"):  # fmt: skip
        assert provenance.source_code(changed) != provenance.source_code(module)
    assert provenance.source_code("s = 'kept'\n") != provenance.source_code("s = 'other'\n")


def test_report_never_counts_another_config_as_extra_seeds(tmp_path):
    path = tmp_path / "tiny.toml"
    database = ResultsDatabase(tmp_path / "r.sqlite")
    for epochs, accuracy in ((1, 0.2), (2, 0.8)):
        path.write_text(TINY.replace("epochs = 1", f"epochs = {epochs}"))
        points = load_experiment(path).points()
        database.plan(points)
        for point in points:
            outcome = {"metrics": {"unseen_accuracy": accuracy, "seen_accuracy": 1.0},
                       "elapsed_s": 1.0, "device": "cpu"}  # fmt: skip
            database.record(point.point_id, outcome)
    database.close()
    write_report(tmp_path / "r.sqlite", tmp_path / "report")
    report = json.loads((tmp_path / "report" / "summary.json").read_text())
    summary = report["tiny/base"]
    # each (factors, seed) ran under both configs: the later run of each point counts, the
    # earlier is left out and counted, never averaged in as extra seeds
    assert len(summary) == 2 and all(entry["seeds"] == 2 for entry in summary)
    assert [entry["unseen_accuracy"] for entry in summary] == pytest.approx([0.8, 0.8])
    assert report["analysis"]["tiny/base"]["superseded_rows"] == 4


def test_git_hash_carries_a_dirty_flag(tmp_path, monkeypatch):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", tmp_path)
    clean = provenance.git_hash()
    assert len(clean) == 40 and "+" not in clean
    (tmp_path / "a.py").write_text("x = 2\n")
    assert provenance.git_hash() == f"{clean}+dirty"


@pytest.mark.slow
def test_failed_points_are_reported_with_a_nonzero_exit_and_retried_on_request(
    tmp_path, capsys, monkeypatch
):
    text = TINY.replace('"dataset.train.instructions" = [2, 8]', '"train.model.context" = [8, 24]')
    path = tmp_path / "fails.toml"
    path.write_text(text.replace("seeds = 2", "seeds = 1"))
    monkeypatch.chdir(tmp_path)
    sweep = ["sweep", str(path), "--quiet", "--workdir", "work"]
    assert main(sweep) == 1
    assert main(sweep) == 1  # nothing ran, but a point is still failed
    out = capsys.readouterr().out.splitlines()
    assert "done 0, failed 0, already there 1" in out
    assert "1 points failed (rerun with --retry-failed to retry them):" in out
    failed = [line for line in out if line.startswith("  failed: ")]
    assert len(failed) == 2 and "context" in failed[-1]  # once per run
    assert main([*sweep, "--retry-failed"]) == 1
    rows = ResultsDatabase(tmp_path / "work" / "results.sqlite").rows()
    assert sorted(r["attempts"] for r in rows) == [1, 2]  # the failed one was run again


def test_claims_exclude_a_live_sweep_and_take_over_a_dead_one(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    point = load_experiment(path).points()[0]
    first, second = ResultsDatabase(tmp_path / "r.sqlite"), ResultsDatabase(tmp_path / "r.sqlite")
    first.plan([point])
    assert first.claim(point.point_id, "elsewhere:1:a")  # a live sweep on another host
    assert not second.claim(point.point_id, "here:2:b")
    first.connection.execute("UPDATE points SET heartbeat = ?", (time.time() - 10_000,))
    assert second.claim(point.point_id, "here:2:b")  # its heartbeat stopped long ago
    import socket

    first.connection.execute("UPDATE points SET owner = ?, heartbeat = ?",
                             (f"{socket.gethostname()}:{_dead_pid()}:c", time.time()))  # fmt: skip
    assert first.claim(point.point_id, "here:3:d")  # its owner is a dead process of this host
    assert not second.claim(point.point_id, "here:4:e")
    first.record(point.point_id, {"metrics": {"unseen_accuracy": 1.0}})
    assert not second.claim(point.point_id, "here:4:e")  # done points are never claimed
    assert first.rows()[0]["attempts"] == 3
