"""kill -9 of `rewritelab train` at many moments, inside checkpoint writes and the run
directory's creation included: `train --resume` (or, before the run exists, `train` again)
always ends with the weights and metrics of an uninterrupted run.

A run pauses at a named moment when REWRITELAB_PAUSE_AT names it (`rewritelab.core.killpoints`), so
a kill lands exactly there; other kills land at random times during training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_run import make_data

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "REWRITELAB_THREADS": "1"}
SETTINGS = ["--max-steps", "24", "--eval-every", "4", "--batch-size", "16", "--lr", "0.003",
            "--layers", "1", "--heads", "2", "--width", "16", "--context", "32",
            "--dropout", "0.1", "--quiet"]  # fmt: skip
DETERMINISTIC = ("step", "epoch", "train_loss", "lr", "seen_accuracy", "unseen_accuracy")


def _train(data: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rewritelab.cli.main", "train", "--data", str(data),
         "--out", str(out), *SETTINGS, *extra],
        env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(data: Path, out: Path) -> None:
    """Resume a killed run (or start it again when the kill came before it existed)."""
    resume = ["--resume"] if (out / "run_config.json").is_file() else []
    process = _train(data, out, *resume)
    assert process.wait(timeout=120) == 0, process.stderr.read()


def _same_run(a: Path, b: Path) -> None:
    wa, wb = (load_file(run / "model" / "model.safetensors") for run in (a, b))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[name], wb[name]) for name in wa)
    logs = [
        [{k: json.loads(line)[k] for k in DETERMINISTIC} for line in (run / "metrics.jsonl").open()]
        for run in (a, b)
    ]
    assert logs[0] == logs[1]
    hidden = [p.name for p in b.rglob(".*") if p.name != ".partial"]
    assert not [h for h in hidden if "partial" in h and (b / "checkpoints").exists()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_train")
    data = make_data(root / "data")
    process = _train(data, root / "straight")
    assert process.wait(timeout=120) == 0, process.stderr.read()
    return data, root / "straight"


@pytest.mark.parametrize(
    "moment", ["run-creating", "checkpoint-written", "checkpoint-published", "latest-updated"]
)
def test_train_killed_at_each_moment_of_a_write_resumes_to_the_same_run(straight, tmp_path, moment):
    data, reference = straight
    out = tmp_path / "run"
    process = _train(data, out, env={"REWRITELAB_PAUSE_AT": moment})
    line = process.stderr.readline().strip()
    assert line == f"paused at {moment}", line + process.stderr.read()
    process.kill()
    process.wait()
    _finish(data, out)
    _same_run(reference, out)
    assert not list(tmp_path.glob(".run.partial*"))


def test_train_killed_at_random_moments_resumes_to_the_same_run(straight, tmp_path):
    data, reference = straight
    out = tmp_path / "run"
    for delay in (2.5, 3.5, 4.5):  # python and torch start in ~2 s; the run trains ~2 s more
        process = _train(data, out, *(["--resume"] if (out / "run_config.json").is_file() else []))
        time.sleep(delay)
        process.kill()
        process.wait()
    _finish(data, out)
    _same_run(reference, out)


def _killed_at_first_checkpoint(data: Path, out: Path) -> None:
    """A run killed just after its first checkpoint (step 4) was published and pointed to."""
    process = _train(data, out, env={"REWRITELAB_PAUSE_AT": "latest-updated"})
    assert process.stderr.readline().strip() == "paused at latest-updated"
    process.kill()
    process.wait()


def test_a_resumed_run_counts_the_training_time_before_the_kill(straight, tmp_path):
    """elapsed_s goes on from the time logged at the checkpoint it resumes from: it never
    falls back, so a resumed run's recorded compute time is the whole run's."""
    data, _ = straight
    out = tmp_path / "run"
    _killed_at_first_checkpoint(data, out)
    before = [json.loads(line)["elapsed_s"] for line in (out / "metrics.jsonl").open()]
    _finish(data, out)
    logged = [json.loads(line)["elapsed_s"] for line in (out / "metrics.jsonl").open()]
    assert logged[: len(before)] == before and len(logged) > len(before)
    assert logged == sorted(logged) and logged[len(before)] > before[-1]


def test_a_kill_while_resume_trims_the_log_loses_no_history(straight, tmp_path):
    """Resume drops log lines from beyond its checkpoint; killed while it does, the log still
    holds every line (the trimmed log replaces it in one rename), and the run completes."""
    data, reference = straight
    out = tmp_path / "run"
    _killed_at_first_checkpoint(data, out)
    log = out / "metrics.jsonl"
    history = log.read_text()
    orphan = {**json.loads(history.splitlines()[-1]), "step": 6}  # logged, never checkpointed
    log.write_text(history + json.dumps(orphan) + "\n")
    process = _train(data, out, "--resume", env={"REWRITELAB_PAUSE_AT": "metrics-rewritten"})
    assert process.stderr.readline().strip() == "paused at metrics-rewritten"
    process.kill()
    process.wait()
    assert log.read_text().startswith(history)  # nothing of the history lost
    _finish(data, out)
    _same_run(reference, out)


def test_a_log_cut_mid_line_is_resumed_with_a_warning(straight, tmp_path):
    data, reference = straight
    out = tmp_path / "run"
    _killed_at_first_checkpoint(data, out)
    with open(out / "metrics.jsonl", "a") as log:
        log.write('{"step": 8, "epo')  # power lost mid-write
    process = _train(data, out, "--resume")
    assert process.wait(timeout=120) == 0, process.stderr.read()
    assert "ignoring its last line, cut short" in process.stderr.read()
    _same_run(reference, out)


@pytest.mark.parametrize("damage", ["outside", "absolute", "step-mismatch", "negative", "beyond"])
def test_resume_refuses_a_checkpoint_pointer_or_state_it_cannot_trust(tmp_path, damage):
    data = make_data(tmp_path / "data")
    out = tmp_path / "run"
    _killed_at_first_checkpoint(data, out)
    checkpoints = out / "checkpoints"
    (tmp_path / "elsewhere").mkdir()
    if damage == "outside":
        (checkpoints / "latest").write_text("../../elsewhere\n")
    elif damage == "absolute":
        (checkpoints / "latest").write_text(f"{tmp_path / 'elsewhere'}\n")
    elif damage == "step-mismatch":
        (checkpoints / "step-00000004" / "trainer_state.json").write_text('{"step": 20}\n')
    elif damage == "negative":
        (checkpoints / "step-00000004" / "trainer_state.json").write_text('{"step": -4}\n')
    else:  # a checkpoint past the run's 24 steps would publish early weights as final
        (checkpoints / "step-00000004").rename(checkpoints / "step-00000999")
        (checkpoints / "step-00000999" / "trainer_state.json").write_text('{"step": 999}\n')
        (checkpoints / "latest").write_text("step-00000999\n")
    before = sorted(p.name for p in out.rglob("*"))
    process = _train(data, out, "--resume")
    assert process.wait(timeout=120) == 2
    lines = process.stderr.read().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rewritelab: error: "), lines
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing written
    assert not (out / "model").exists()


def test_two_resumes_of_one_run_never_run_together(straight, tmp_path):
    """While one `train --resume` holds the run, a second is refused in one line; once the
    first is killed its lock dies with it, and a resume finishes the run as if never stopped."""
    data, reference = straight
    out = tmp_path / "run"
    _killed_at_first_checkpoint(data, out)
    first = _train(data, out, "--resume", env={"REWRITELAB_PAUSE_AT": "checkpoint-written"})
    assert first.stderr.readline().strip() == "paused at checkpoint-written"
    second = _train(data, out, "--resume")
    assert second.wait(timeout=120) == 2
    (line,) = second.stderr.read().strip().splitlines()
    assert "is in use by another process" in line
    first.kill()
    first.wait()
    _finish(data, out)  # no stale lock to clear
    _same_run(reference, out)


def test_generate_force_refuses_a_dataset_another_process_is_replacing(tmp_path):
    out = tmp_path / "data"
    args = [sys.executable, "-m", "rewritelab.cli.main", "generate", "--out", str(out),
            "--instructions", "5", "--force"]  # fmt: skip
    assert subprocess.run(args, env=ENV, capture_output=True).returncode == 0
    first = subprocess.Popen(args, env={**ENV, "REWRITELAB_PAUSE_AT": "written"},
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert any("paused at written" in line for line in first.stderr)  # after its progress bar
    second = subprocess.run(args, env=ENV, capture_output=True, text=True)
    first.kill()
    first.wait()
    assert second.returncode == 2 and "is in use by another process" in second.stderr
    inspect = [sys.executable, "-m", "rewritelab.cli.main", "inspect", str(out)]
    assert subprocess.run(inspect, env=ENV, capture_output=True).returncode == 0  # intact
