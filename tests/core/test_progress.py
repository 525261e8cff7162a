"""Progress where stderr is not a terminal: log lines, not tqdm frames; JSON with
`--log-format json`; a live bar on a terminal.

Each case runs the real CLI in a subprocess whose stderr is a pipe (or a pseudo-terminal) and
reads what it wrote.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from tiny_run import make_data

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).parents[2] / "src")
CLI = [sys.executable, "-m", "rewritelab.cli.main"]
GENERATE = ["generate", "--instructions", "4", "--examples-per-instruction", "20",
            "--test-instructions", "3"]  # fmt: skip


def _env(**settings: str) -> dict:
    return {**os.environ, "PYTHONPATH": SRC, "REWRITELAB_THREADS": "1", **settings}


def test_a_log_gets_one_line_at_the_start_and_one_at_the_end_not_frames(tmp_path):
    result = subprocess.run([*CLI, *GENERATE, "--out", str(tmp_path / "d")], capture_output=True,
                            text=True, env=_env(REWRITELAB_PROGRESS_EVERY_S="1000"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines  # within 1,000 s: the first line and the last, nothing between
    assert lines[0].startswith("0/4 stage") and lines[1].startswith("writing: 4/4 stage")


def test_json_progress_is_one_object_a_line_with_numbers(tmp_path):
    data = make_data(tmp_path / "data")
    command = [*CLI, "--log-format", "json", "train", "--data", str(data), "--out",
               str(tmp_path / "run"), "--max-steps", "40", "--eval-every", "20", "--layers", "1",
               "--heads", "1", "--width", "16", "--context", "32"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True,
                            env=_env(REWRITELAB_PROGRESS_EVERY_S="0"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert {r["progress"] for r in records} == {"train"}
    assert records[-1]["n"] == records[-1]["total"] == 40
    steps = [r["n"] for r in records]
    assert steps == sorted(steps) and len(steps) > 2  # every update, in order, at 0 s
    evaluated = [r for r in records if "seen" in r]
    assert evaluated and all(isinstance(r["loss"], float) for r in evaluated)


def test_a_terminal_gets_the_live_bar(tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 80 columns
    process = subprocess.Popen([*CLI, *GENERATE, "--out", str(tmp_path / "d")], stderr=follower,
                               stdout=subprocess.DEVNULL, env=_env())  # fmt: skip
    os.close(follower)
    written = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        written += chunk
    assert process.wait() == 0
    assert b"\r" in written and b"|" in written  # tqdm redraws its bar in place
