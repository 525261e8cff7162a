"""Files that appear whole or not at all: written under a temporary name, then renamed.

A write that fails (the disk full, a quota, a read-only file system) leaves no partial file
behind, and is raised as one `RewritelabError` line that names the path it was writing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rewritelab.core.errors import RewritelabError
from rewritelab.core.killpoints import pause_at


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Raise an OSError of the block as one line naming `path`: `cannot write PATH: why`."""
    try:
        yield
    except OSError as error:
        raise RewritelabError(f"cannot write {path}: {error.strerror or error}") from None


@contextmanager
def staged_directory(target: Path, replace: bool = True) -> Iterator[Path]:
    """An empty hidden sibling `.NAME.partial` of `target` to write into; when the block ends,
    it is renamed to `target` (replacing what is there, unless `replace` is False: then a
    `target` that appeared meanwhile is an error). If the block fails, the sibling is removed."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a process killed while writing
    try:
        with writing(target):
            partial.mkdir(parents=True)
            yield partial
            if target.exists() and replace:
                shutil.rmtree(target)
            os.rename(partial, target)  # onto an existing directory: an OSError
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes, moment: str | None = None) -> None:
    """Write `data` to a hidden temporary sibling, then rename it over `path`; `moment` names
    the kill point between the two (`killpoints`)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with writing(path):
            partial.write_bytes(data)
            if moment:
                pause_at(moment)
            os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str, moment: str | None = None) -> None:
    """Write `text` (UTF-8) atomically (`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"), moment)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write `data` as indented JSON, atomically (`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def append_line(path: Path, line: str) -> None:
    """Append one line to a log; if the write fails, the log is cut back to its old length, so
    a full disk never leaves a torn line."""
    with writing(path), open(path, "a", encoding="utf-8") as handle:
        start = handle.tell()
        try:
            handle.write(line + "\n")
            handle.flush()
        except OSError:
            handle.truncate(start)
            raise
