"""A full disk, for real: each command writes onto a small tmpfs and runs out of space.

Every command must exit non-zero with one stderr line that names the path it could not write
and says why, and leave no partial file behind (the tmpfs holds only what was there before, or
what a later resume needs). A training run stopped by a full disk resumes, once there is space
again, to the same metrics as a run that never stopped. A results database on a full disk
gives one line and keeps its bytes.

Each case runs in its own mount namespace (`unshare`), so the tmpfs needs no privileges and
disappears with the case.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_results import e1_rows, write_rows
from tiny_run import make_data

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "REWRITELAB_THREADS": "1"}
CLI = [sys.executable, "-m", "rewritelab.cli.main"]
NO_SPACE = os.strerror(28)  # ENOSPC: "No space left on device"
TRAIN = ["--max-steps", "30", "--eval-every", "10", "--batch-size", "16", "--layers", "2",
         "--heads", "2", "--width", "64", "--context", "32", "--quiet"]  # fmt: skip
# A shell run inside a private mount namespace: mount a tmpfs of $1 at $2, run the commands
# (one per line of $3, with $DISK set), each one's exit code and stderr written beside the tmpfs.
SCRIPT = r"""
size=$1 disk=$2 commands=$3 report=$4
mount -t tmpfs -o size="$size" tmpfs "$disk" || exit 99
export DISK="$disk"
n=0
while IFS= read -r line; do
  n=$((n + 1))
  case $line in
    grow) mount -o remount,size=64m "$disk" ;;
    fill) cat /dev/zero > "$disk/filler" 2>/dev/null ;;
    unfill) rm -f "$disk/filler" ;;
    *) eval "$line" 2> "$report/err$n"; echo $? > "$report/rc$n"
       (cd "$disk" && find . -mindepth 1 | sort) > "$report/files$n" ;;
  esac
done < "$commands"
"""


def _namespaces_available() -> bool:
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    return shutil.which("unshare") is not None and subprocess.run(probe).returncode == 0


requires_unshare = pytest.mark.skipif(
    not _namespaces_available(), reason="needs unshare with user and mount namespaces"
)


def on_small_disk(tmp_path: Path, size: str, lines: list[str]) -> list[dict]:
    """Run shell `lines` (commands, or `grow` / `fill` / `unfill`) with $DISK a tmpfs of
    `size`; per command: its exit code, stderr lines and the files it left on the tmpfs."""
    disk, report = tmp_path / "disk", tmp_path / "report"
    disk.mkdir()
    report.mkdir()
    (tmp_path / "commands").write_text("\n".join(lines) + "\n")
    args = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT, "sh", size,
            str(disk), str(tmp_path / "commands"), str(report)]  # fmt: skip
    assert subprocess.run(args, env=ENV).returncode == 0
    outcomes = []
    for n in range(1, len(lines) + 1):
        if (report / f"rc{n}").exists():
            outcomes.append({
                "rc": int((report / f"rc{n}").read_text()),
                "err": (report / f"err{n}").read_text().splitlines(),
                "files": (report / f"files{n}").read_text().split(),
            })  # fmt: skip
    return outcomes


def command(*args: str) -> str:
    """A shell line running the CLI with `args` (quoted, $DISK expanded)."""
    quoted = " ".join(f'"{arg}"' for arg in [*CLI, *args])
    return quoted


def assert_one_line_naming(outcome: dict, path: str) -> None:
    assert outcome["rc"] != 0
    assert len(outcome["err"]) == 1, outcome["err"]
    assert outcome["err"][0].startswith("rewritelab: error: cannot write"), outcome["err"]
    assert path in outcome["err"][0] and NO_SPACE in outcome["err"][0], outcome["err"]


def no_partial_files(files: list[str]) -> bool:
    return not any(".partial" in name for name in files)


@requires_unshare
def test_generate_on_a_full_disk_leaves_nothing(tmp_path):
    [outcome] = on_small_disk(tmp_path, "64k", [
        command("generate", "--out", "$DISK/data", "--instructions", "200",
                "--examples-per-instruction", "100", "--quiet"),
    ])  # fmt: skip
    assert_one_line_naming(outcome, "/data")
    assert outcome["files"] == []


@requires_unshare
def test_train_on_a_full_disk_stops_cleanly_and_resumes_to_the_same_run(tmp_path):
    data = make_data(tmp_path / "data")
    reference = tmp_path / "reference"
    subprocess.run([*CLI, "train", "--data", str(data), "--out", str(reference), *TRAIN],
                   env=ENV, check=True, capture_output=True)  # fmt: skip
    train = command("train", "--data", str(data), "--out", "$DISK/run", *TRAIN)
    copy_log = f'cp "$DISK/run/metrics.jsonl" "{tmp_path}/resumed.jsonl"'
    full, resumed, _ = on_small_disk(tmp_path, "64k", [train, "grow", f"{train} --resume",
                                                       copy_log])  # fmt: skip
    assert_one_line_naming(full, "run/")  # the weights (~400 KB) do not fit in 64 KB
    assert no_partial_files(full["files"]) and "./run/run_config.json" in full["files"]
    assert resumed["rc"] == 0, resumed["err"]
    assert "./run/model/model.safetensors" in resumed["files"]
    assert no_partial_files(resumed["files"])
    deterministic = ("step", "train_loss", "seen_accuracy", "unseen_accuracy")
    expected = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    got = [json.loads(line) for line in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    assert [{k: m[k] for k in deterministic} for m in got] == [
        {k: m[k] for k in deterministic} for m in expected
    ]


@requires_unshare
def test_evaluate_predictions_on_a_full_disk_leave_no_partial_file(tmp_path, tiny_run):
    data, run, _ = tiny_run
    [outcome] = on_small_disk(tmp_path, "4k", [
        command("evaluate", str(run), "--data", str(data), "--split", "train",
                "--predictions", "$DISK/predictions.jsonl"),
    ])  # fmt: skip
    assert_one_line_naming(outcome, "predictions.jsonl")
    assert outcome["files"] == []


@requires_unshare
def test_report_and_export_on_a_full_disk_leave_no_partial_file(tmp_path):
    results = tmp_path / "results.sqlite"
    write_rows(results, e1_rows())
    report, export = on_small_disk(tmp_path, "32k", [
        command("report", str(results), "--out", "$DISK/report"), "fill",
        command("results", "export", str(results), "--out", "$DISK/frame.csv"),
    ])  # fmt: skip
    assert_one_line_naming(report, "report/")  # the figures do not fit
    assert report["files"] == ["./report"]  # the folder asked for, nothing half-written in it
    assert_one_line_naming(export, "frame.csv")
    assert export["files"] == ["./filler", "./report"]


@requires_unshare
def test_a_results_database_on_a_full_disk_gives_one_line_and_keeps_its_bytes(tmp_path):
    results = tmp_path / "results.sqlite"
    failed = {**e1_rows(grid=(2048,), seeds=1)[0], "status": "failed"}  # what prune removes
    write_rows(results, [*e1_rows(), failed])
    digest = hashlib.sha256(results.read_bytes()).hexdigest()
    copy_back = f'cp "$DISK/results.sqlite" "{tmp_path}/after.sqlite"'
    _, prune, _ = on_small_disk(tmp_path, "1m", [
        f'cp "{results}" "$DISK/results.sqlite"', "fill",
        command("results", "prune", "$DISK/results.sqlite", "--failed"), "unfill", copy_back,
    ])  # fmt: skip
    assert prune["rc"] != 0 and len(prune["err"]) == 1, prune["err"]
    assert prune["err"][0].startswith("rewritelab: error: results database"), prune["err"]
    assert "results.sqlite" in prune["err"][0] and "full" in prune["err"][0], prune["err"]
    assert hashlib.sha256((tmp_path / "after.sqlite").read_bytes()).hexdigest() == digest
