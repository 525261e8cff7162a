"""Sweeps through submitit (`--executor submitit-local`, the same jobs `--executor slurm`
submits, run as local processes): every point done, the same metrics as the local executor's
run, and a second sweep computes nothing again (resume stays the database's)."""

from __future__ import annotations

import pytest
from conftest import run_cli
from tiny_sweep import TINY

from rewritelab.sweep import ResultsDatabase
from rewritelab.sweep.submitit_jobs import slurm_parameters

pytestmark = pytest.mark.slow


def test_a_sweep_through_submitit_jobs_matches_the_local_one(tmp_path, capsys):
    pytest.importorskip("submitit")
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(TINY)
    jobs = ["sweep", str(experiment), "--quiet", "--executor", "submitit-local", "--jobs", "2",
            "--workdir", str(tmp_path / "jobs")]  # fmt: skip
    assert run_cli(jobs, capsys)[0] == 0
    local = ["sweep", str(experiment), "--quiet", "--workdir", str(tmp_path / "local"),
             "--jobs", "1"]  # fmt: skip
    assert run_cli(local, capsys)[0] == 0
    rows = ResultsDatabase(tmp_path / "jobs" / "results.sqlite").rows()
    assert len(rows) == 4 and {row["status"] for row in rows} == {"done"}
    assert list((tmp_path / "jobs" / "submitit").iterdir())  # the jobs' own files
    compare = ["compare", str(tmp_path / "jobs" / "results.sqlite"),
               str(tmp_path / "local" / "results.sqlite")]  # fmt: skip
    code, printed, err = run_cli(compare, capsys)
    assert code == 0, printed + err  # identical metrics, run by run
    assert run_cli(jobs, capsys)[0] == 0  # again: nothing left to compute
    again = ResultsDatabase(tmp_path / "jobs" / "results.sqlite").rows()
    assert [(r["attempts"], r["updated"]) for r in again] == [
        (r["attempts"], r["updated"]) for r in rows
    ]


def test_slurm_settings_are_read_as_submitit_parameters():
    assert slurm_parameters("slurm_partition=gpu, timeout_min=120,gpus_per_node=1") == {
        "slurm_partition": "gpu", "timeout_min": 120, "gpus_per_node": 1,
    }  # fmt: skip
    assert slurm_parameters(None) == {}
