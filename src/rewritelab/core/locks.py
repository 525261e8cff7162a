"""Exclusive locks on directories, so that two processes never write one run or dataset.

The lock is the kernel's (`flock` on the directory itself): it writes no file, and it is
released when its holder exits, however it exits, so a killed process never leaves a stale
lock to clear.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rewritelab.core.errors import RewritelabError


@contextmanager
def directory_lock(directory: Path, what: str) -> Iterator[None]:
    """An exclusive `flock` on `directory` for the block; refused in one line while another
    process (or another block of this one) holds it."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RewritelabError(
                f"{what} {directory} is in use by another process (wait for it to end, or stop it)"
            ) from None
        yield
    finally:
        os.close(descriptor)
