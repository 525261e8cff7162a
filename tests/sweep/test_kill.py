"""kill -9 at many moments: `generate --force` always leaves a complete dataset (old or new) and
the next run cleans up; a killed `sweep --jobs 2` takes its workers with it and a re-run
computes each point once; two sweeps on one workdir never compute a point twice.

The generator pauses at a named moment of its directory swap when REWRITELAB_PAUSE_AT names
it (see `rewritelab.core.killpoints`), so a kill can land exactly there.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_sweep import TINY

from rewritelab.sweep import ResultsDatabase
from rewritelab.tasks.storage import read_manifest

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


def _cli(*argv: str, env: dict | None = None, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rewritelab.cli.main", *argv], env={**ENV, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options,
    )  # fmt: skip


def _generate(out: Path, seed: int) -> list[str]:
    return ["generate", "--quiet", "--force", "--out", str(out), "--seed", str(seed),
            "--instructions", "40", "--examples-per-instruction", "100"]  # fmt: skip


def _complete_seed(directory: Path) -> int:
    """The seed of the complete dataset at `directory` (every file matches its manifest)."""
    manifest = read_manifest(directory)
    for name, facts in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == facts["sha256"]
    return manifest["seed"]


@pytest.fixture
def old_dataset(tmp_path) -> Path:
    out = tmp_path / "data"
    assert _cli(*_generate(out, 1)).wait() == 0
    return out


@pytest.mark.parametrize(
    "moment, exchange",
    [("written", True), ("swapping", True), ("swapped", True), ("half-swapped", False)],
)
def test_generate_killed_at_each_moment_of_the_swap(old_dataset, moment, exchange):
    env = {"REWRITELAB_PAUSE_AT": moment, **({} if exchange else {"REWRITELAB_NO_EXCHANGE": "1"})}
    process = _cli(*_generate(old_dataset, 2), env=env)
    assert process.stderr.readline().strip() == f"paused at {moment}"
    process.kill()
    process.wait()
    leftovers = [p.name for p in old_dataset.parent.iterdir() if p.name.startswith(".data.")]
    assert leftovers  # the killed run left its hidden directories behind
    if moment != "half-swapped":  # the one moment only the fallback (no exchange) has
        assert _complete_seed(old_dataset) == (2 if moment == "swapped" else 1)
    assert _cli(*_generate(old_dataset, 3)).wait() == 0  # the next run repairs and cleans
    assert _complete_seed(old_dataset) == 3
    assert [p.name for p in old_dataset.parent.iterdir()] == ["data"]


def test_generate_killed_at_random_moments_keeps_a_complete_dataset(old_dataset):
    for delay in (0.2, 0.4, 0.6, 0.8, 1.0):
        process = _cli(*_generate(old_dataset, 2))
        time.sleep(delay)
        process.kill()
        process.wait()
        assert _complete_seed(old_dataset) in (1, 2)
    assert _cli(*_generate(old_dataset, 3)).wait() == 0
    assert [p.name for p in old_dataset.parent.iterdir()] == ["data"]


def _processes(field: int, value: int) -> list[int]:
    """Processes whose /proc stat field number `field` (after the name) is `value`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(fields[field]) == value:
            found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    return _processes(1, pid)  # the parent's pid


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _sweep_command(tmp_path: Path, *extra: str, epochs: int = 1) -> list[str]:
    experiment = tmp_path / "tiny.toml"
    text = TINY.replace("epochs = 1", f"epochs = {epochs}").replace("seeds = 2", "seeds = 1")
    experiment.write_text(text)  # two points
    return ["sweep", str(experiment), "--quiet", "--workdir", str(tmp_path / "work"), *extra]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_killed_sweep_takes_its_workers_along_and_resumes_each_point_once(tmp_path):
    command = _sweep_command(tmp_path, "--jobs", "2", epochs=8)
    driver = _cli(*command, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = [p for p in _children(driver.pid) if "spawn_main" in _cmdline(p)]
        if len(workers) == 2:
            break
        time.sleep(0.1)
    assert len(workers) == 2
    time.sleep(0.5)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [w for w in workers if _alive(w)]
    for worker in alive:  # do not leave them behind even when the test fails
        os.kill(worker, signal.SIGKILL)
    assert not alive, "workers outlived their driver"
    database = tmp_path / "work" / "results.sqlite"
    before = {r["point_id"]: r for r in ResultsDatabase(database).rows()}
    rerun = _cli(*command)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read()
    after = ResultsDatabase(database).rows()
    assert {r["status"] for r in after} == {"done"}
    for row in after:
        if before[row["point_id"]]["status"] == "done":
            assert row["attempts"] == 1 and row["updated"] == before[row["point_id"]]["updated"]


def _in_session(session: int) -> list[int]:
    """Live processes of a session (the driver started one with `start_new_session`)."""
    return [pid for pid in _processes(3, session) if _alive(pid)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_stops_a_sweep_in_one_line_and_leaves_no_process_or_semaphore(tmp_path):
    """Ctrl-C reaches the whole foreground group (driver and workers): the driver stops its
    workers, prints one line and exits 130; no process of the session outlives it, and the
    resource tracker finds no leaked semaphore (resuming after a kill: the test above)."""
    command = _sweep_command(tmp_path, "--jobs", "2", epochs=400)  # minutes: Ctrl-C lands mid-run
    driver = _cli(*command, start_new_session=True)
    deadline = time.monotonic() + 60
    runs = tmp_path / "work" / "runs"
    while len(list(runs.glob("*/run_config.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # until both workers train (their progress bars exist)
    time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    deadline = time.monotonic() + 5
    while _in_session(driver.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _in_session(driver.pid)
    for pid in left:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert driver.returncode == 130
    assert err.splitlines() == ["rewritelab: interrupted"], err
    assert not left, "processes outlived the interrupted sweep"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_two_sweeps_on_one_workdir_compute_each_point_once(tmp_path):
    command = _sweep_command(tmp_path)
    first, second = _cli(*command), _cli(*command)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.wait(timeout=120) == 0, second.stderr.read()
    rows = ResultsDatabase(tmp_path / "work" / "results.sqlite").rows()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}
    assert [r["attempts"] for r in rows] == [1, 1]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_worker_killed_by_the_os_does_not_abort_the_sweep(tmp_path):
    """kill -9 of one worker (what the OOM killer does) breaks the process pool: the sweep
    starts a fresh pool, runs the lost points again, and ends with every point done."""
    command = _sweep_command(tmp_path, "--jobs", "2", epochs=8)
    driver = _cli(*command)
    deadline = time.monotonic() + 60
    workers = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [p for p in _children(driver.pid) if "spawn_main" in _cmdline(p)]
        time.sleep(0.1)
    assert len(workers) == 2
    time.sleep(1.0)
    os.kill(workers[0], signal.SIGKILL)
    assert driver.wait(timeout=180) == 0, driver.stderr.read()
    rows = ResultsDatabase(tmp_path / "work" / "results.sqlite").rows()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}


def _dies_on_point_zero(point, _workdir):
    """A point function whose worker is killed from outside whenever it runs point 0."""
    if point.point_id == "p0":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"metrics": {"ran": point.point_id}}


def test_a_point_whose_worker_is_killed_twice_is_failed_and_the_others_run():
    from types import SimpleNamespace

    from rewritelab.sweep.executors import KILLED_TWICE, ProcessPool

    points = [SimpleNamespace(point_id=f"p{i}") for i in range(3)]
    with ProcessPool(2) as pool:
        outcomes = {p.point_id: o for p, o in pool.run(_dies_on_point_zero, points, "w")}
    assert outcomes["p0"] == {"error": KILLED_TWICE}
    assert outcomes["p1"] == {"metrics": {"ran": "p1"}} and outcomes["p2"]["metrics"]["ran"] == "p2"
