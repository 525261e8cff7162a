"""Run directories and the run environment: atomic creation, threads, precision, provenance."""

import json
import platform
import subprocess
import sys

import pytest
import torch
from tiny_run import make_data, tiny_config

from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import (
    apply_threads,
    autocast_dtype,
    cpu_has_bf16,
    default_threads,
    pick_device,
    usable_cores,
)
from rewritelab.core.provenance import git_hash
from rewritelab.model.gpt import RUN_CONFIG
from rewritelab.training.runs import RunDirectory
from rewritelab.training.scratch import train

SMALL = {"layers": 1, "heads": 2, "width": 16, "context": 32}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data") / "tiny")


def test_threads_default_to_the_cores_shared_by_the_jobs(monkeypatch):
    monkeypatch.delenv("REWRITELAB_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("REWRITELAB_JOBS", "1")
    assert default_threads() == usable_cores()
    monkeypatch.setenv("REWRITELAB_JOBS", str(usable_cores()))
    assert default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("REWRITELAB_THREADS", "2")
    assert default_threads() == 2


def test_apply_threads_sets_torch():
    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
        assert apply_threads(0) == default_threads()  # the tests' REWRITELAB_THREADS=1
    finally:
        torch.set_num_threads(before)


def test_bf16_only_where_the_hardware_computes_it():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, bf16=False) is None
    assert autocast_dtype(cpu, bf16=True) == (torch.bfloat16 if cpu_has_bf16() else None)


def test_the_run_logs_the_precision_it_computed_in(data, tmp_path, monkeypatch):
    """bf16 = true computes in bf16 only on a CPU that has it, and says which: a CPU without
    it falls back to fp32 (the log says fp32); one with it (patched here) says bf16."""
    from rewritelab.core import hardware

    def logged(name: str, **settings) -> str:
        train(tiny_config(max_steps=2, eval_every=2, model=SMALL, **settings), data,
              tmp_path / name, progress=False)  # fmt: skip
        return json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1])[
            "precision"
        ]

    assert logged("asked", bf16=True) == ("bf16" if cpu_has_bf16() else "fp32")
    assert logged("fp32", bf16=False) == "fp32"
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    assert logged("native", bf16=True) == "bf16"


def test_device_is_chosen_at_run_start_not_at_validation():
    config = tiny_config(device="cuda:0")  # validates on a machine without CUDA
    assert config.device == "cuda:0"
    if not torch.cuda.is_available():
        with pytest.raises(RewritelabError, match="CUDA is not available"):
            pick_device(config.device)
    with pytest.raises(RewritelabError, match="unknown device"):
        tiny_config(device="abacus")


def test_run_records_threads_and_a_dirty_flagged_git_hash(data, tmp_path):
    train(tiny_config(max_steps=2, model=SMALL), data, tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run" / RUN_CONFIG).read_text())
    assert recorded["threads"] == 1 and recorded["usable_cores"] >= 1
    commit = git_hash()
    assert recorded["git_hash"] == commit
    if commit is not None:
        assert len(commit.removesuffix("+dirty")) == 40


def test_resume_under_another_thread_count_says_so(data, tmp_path, capsys):
    config = tiny_config(max_steps=4, eval_every=2, model=SMALL)
    train(config, data, tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run" / RUN_CONFIG).read_text())
    recorded["threads"] = 7
    (tmp_path / "run" / RUN_CONFIG).write_text(json.dumps(recorded))
    train(config, data, tmp_path / "run", resume=True, progress=False)
    assert "started with 7 thread(s) and resumes with 1" in capsys.readouterr().err


def test_a_run_directory_appears_whole_with_its_config(data, tmp_path):
    # What a kill between mkdir and writing run_config.json used to leave: a half-made run.
    # Now creation happens in a hidden staging directory; a leftover one is cleared.
    (tmp_path / ".run.partial").mkdir()
    (tmp_path / ".run.partial" / "junk").write_text("from a killed run")
    train(tiny_config(max_steps=2, model=SMALL), data, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / RUN_CONFIG).is_file()
    assert not (tmp_path / ".run.partial").exists()
    RunDirectory(tmp_path / "run").recorded()  # readable


def test_a_non_finite_loss_stops_the_run_keeping_the_last_good_checkpoint(data, tmp_path):
    config = tiny_config(max_steps=40, eval_every=2, learning_rate=1e30, warmup_steps=4,
                         grad_clip=0.0, model=SMALL)  # fmt: skip
    with pytest.raises(RewritelabError, match="loss became"):
        train(config, data, tmp_path / "run", progress=False)
    run = RunDirectory(tmp_path / "run")
    checkpoint, step = run.latest_checkpoint()
    assert not (tmp_path / "run" / "model").exists()
    if checkpoint is not None:  # every checkpoint written holds a finite loss
        logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
        assert logged[-1]["step"] == step
        assert all(line["train_loss"] == line["train_loss"] for line in logged)  # no NaN


@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_dataset_files_must_match_their_manifest(tmp_path, damage):
    data = make_data(tmp_path / "data")
    path = data / "train.jsonl"
    lines = path.read_text().splitlines()
    if damage == "truncate":
        path.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    else:
        record = json.loads(lines[0])
        record["output"] = record["output"] + "a"
        path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    with pytest.raises(RewritelabError, match="does not match the SHA-256"):
        train(tiny_config(max_steps=2, model=SMALL), data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_data_edited_before_a_resume_is_refused(tmp_path):
    data = make_data(tmp_path / "data")
    config = tiny_config(max_steps=4, eval_every=2, model=SMALL)
    train(config, data, tmp_path / "run", progress=False)
    manifest = json.loads((data / "manifest.json").read_text())
    path = data / "test.jsonl"
    path.write_text(path.read_text().replace('"a"', '"b"', 1))
    manifest["files"]["test.jsonl"]["sha256"] = "0" * 64  # even a forged manifest
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RewritelabError, match="SHA-256"):
        train(config, data, tmp_path / "run", resume=True, progress=False)


HEAP_ACROSS_TRAINING_STEPS = """
import ctypes, sys
from rewritelab.core.hardware import keep_freed_memory

class Mallinfo2(ctypes.Structure):  # glibc's own accounting of its heap
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = Mallinfo2, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "kept":
    assert keep_freed_memory()
for step in range(3):  # two activation-sized blocks a step, freed at its end
    blocks = [libc.malloc(8 << 20) for _ in range(2)]
    in_use = libc.mallinfo2().arena
    for block in reversed(blocks):
        libc.free(block)
print(in_use - libc.mallinfo2().arena)  # bytes of heap handed back to the kernel
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_training_processes_keep_freed_activations_for_the_next_step():
    def heap_returned_each_step(mode: str) -> int:
        command = [sys.executable, "-c", HEAP_ACROSS_TRAINING_STEPS, mode]
        return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)

    assert heap_returned_each_step("default") >= 16 << 20  # trimmed, faulted in again next step
    assert heap_returned_each_step("kept") == 0
