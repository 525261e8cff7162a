"""The machine a run computes on: device choice, thread counts, malloc tuning and bf16 precision."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from rewritelab.core.errors import RewritelabError

THREADS_ENV = "REWRITELAB_THREADS"  # threads per process, when set (tests, sweeps)
JOBS_ENV = "REWRITELAB_JOBS"  # processes sharing the machine (set by sweeps)


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when available unless a device is named ("cpu", "cuda", "cuda:1", ...). Called
    when a run starts, never when a config is validated (a CPU head node may load a CUDA
    experiment)."""
    device = parse_device(requested)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RewritelabError(f"device {requested!r} requested but CUDA is not available")
    return device


def parse_device(requested: str) -> torch.device | None:
    """The device a config names (None for "auto"); refuses a malformed name."""
    if requested == "auto":
        return None
    try:
        return torch.device(requested)
    except RuntimeError:
        raise RewritelabError(f"unknown device {requested!r}") from None


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads for one process: `REWRITELAB_THREADS` (or `OMP_NUM_THREADS`), else the usable
    cores divided by the processes running at once (`REWRITELAB_JOBS`, set by sweeps).
    Torch's own default (one thread per core) collapses 3-10x as soon as anything else runs."""
    for variable in (THREADS_ENV, "OMP_NUM_THREADS"):  # Ray sets OMP_NUM_THREADS per task
        if os.environ.get(variable, "").isdigit():
            return max(1, int(os.environ[variable]))
    jobs = max(1, int(os.environ.get(JOBS_ENV) or 1))
    return max(1, usable_cores() // jobs)


def apply_threads(threads: int) -> int:
    """Set torch's intra- and inter-op thread counts (0 = `default_threads`); return it."""
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable before the first parallel op of the process
        pass
    return threads


# glibc's mallopt parameters, and the values training processes set (bytes)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 1 << 30


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the kernel:
    blocks under 32 MiB come from the heap rather than fresh mmap pages, and up to 1 GiB of
    free heap stays. Every training step frees and re-allocates the same activations; by
    default glibc returns many of them and page-faults them in again, and the cpu-preset step
    runs ~11% faster without that (benchmarks/results/train.md). No arithmetic changes, so
    neither does any result. Returns whether it applied (False where the C library is not
    glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    kept_small_blocks = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return bool(kept_small_blocks and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast
    runs 10-500x slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@contextmanager
def precision(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Compute in `dtype` (None: fp32 as it is) under autocast. In bf16 on a CPU, attention
    takes SDPA's math kernel: the CPU flash kernel runs 2-9x slower in bf16 than in fp32,
    the math kernel does not (benchmarks/bench_train.py, on an AMX Xeon)."""
    if dtype is None:
        yield
        return
    kernels = sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else nullcontext()
    with torch.autocast(device.type, dtype), kernels:
        yield


def autocast_dtype(device: torch.device, bf16: bool) -> torch.dtype | None:
    """bf16 when asked for and the hardware computes it natively; None (fp32) otherwise."""
    if not bf16:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None
