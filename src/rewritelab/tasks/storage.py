"""The on-disk dataset format, shared by every task: JSON-lines split files with their
SHA-256s, a manifest, and a directory that appears complete or not at all.

A dataset directory holds one `.jsonl` file per split and `manifest.json`. A directory being
replaced is swapped atomically (`replace_directory`); what a killed generator leaves beside it
is repaired by the next one (`recover_leftovers`).
"""

from __future__ import annotations

import ctypes
import errno
import glob
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from rewritelab.core.errors import RewritelabError
from rewritelab.core.killpoints import pause_at

FORMAT = "rewritelab-dataset/1"


SPLIT_FILES = {"train": "train.jsonl", "seen_test": "seen_test.jsonl", "test": "test.jsonl"}


def write_lines(path: Path, lines: Iterator[str], chunk: int = 50_000) -> dict:
    """Write text lines as UTF-8; return the file's sha256, size and record count."""
    digest, size, records, buffer = hashlib.sha256(), 0, 0, []
    with open(path, "wb") as handle:
        for line in lines:
            buffer.append(line)
            if len(buffer) == chunk:
                size += _flush(handle, digest, buffer)
                records += len(buffer)
                buffer = []
        size += _flush(handle, digest, buffer)
        records += len(buffer)
    return {"sha256": digest.hexdigest(), "bytes": size, "records": records}


def _flush(handle, digest, lines: list[str]) -> int:
    data = "".join(lines).encode("utf-8")
    handle.write(data)
    digest.update(data)
    return len(data)


def read_records(path: str | Path) -> Iterator[dict]:
    """The records of one JSONL split file, one dict per line."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def read_manifest(data_dir: str | Path) -> dict:
    """The manifest of a generated dataset, with a clear error if it is missing or unreadable."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise RewritelabError(f"{data_dir} is not a rewritelab dataset (no manifest.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: bad JSON, or not UTF-8
        raise RewritelabError(f"cannot read {path}: {error}") from None


def check_output(out_dir: Path, force: bool) -> None:
    """Refuse, before any work, an output that exists (unless `force` and it is a dataset)."""
    if out_dir.exists() or out_dir.is_symlink():
        if not force:
            raise RewritelabError(
                f"output directory {out_dir} already exists (use --force to replace it)"
            )
        if out_dir.is_symlink() or not out_dir.is_dir():
            raise RewritelabError(f"output path {out_dir} exists and is not a directory")
        if out_dir.resolve() == Path.cwd().resolve() or not out_dir.resolve().name:
            raise RewritelabError(f"refusing to replace the current directory {out_dir}")
        if not is_dataset_dir(out_dir):
            raise RewritelabError(
                f"refusing to replace {out_dir}: not a rewritelab dataset (no manifest of ours)"
            )
    parent = out_dir.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RewritelabError(f"cannot write dataset {out_dir}: {parent} is not writable")


def is_dataset_dir(directory: Path) -> bool:
    """Whether `directory` holds a manifest written by rewritelab (what `--force` may replace)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def staging_path(out_dir: Path, kind: str, pid: int) -> Path:
    """A hidden sibling of `out_dir` owned by process `pid`: `.NAME.partial-PID` (a dataset being
    written) or `.NAME.old-PID` (the dataset it replaces, moved aside)."""
    out_dir = out_dir.resolve()
    return out_dir.parent / f".{out_dir.name}.{kind}-{pid}"


def replace_directory(staging: Path, out_dir: Path) -> None:
    """Move the finished `staging` directory to `out_dir`, atomically at every moment.

    A new `out_dir` is one rename. An existing one is swapped with `staging` by a single
    `renameat2(RENAME_EXCHANGE)` (Linux), so `out_dir` holds the old or the new dataset, never
    neither; the old one, now at `staging`, is then deleted. Where the exchange is unsupported,
    two renames (old -> `.NAME.old-PID`, new -> `out_dir`) leave a short half-swapped moment;
    a kill there is repaired by the next run (`recover_leftovers` moves the old one back).
    """
    if not out_dir.exists():
        try:
            staging.rename(out_dir)
        except OSError:  # another process finished the same directory first
            raise RewritelabError(f"output directory {out_dir} appeared while generating") from None
        return
    pause_at("swapping")
    if _exchange(staging, out_dir):
        pause_at("swapped")
        return  # the caller deletes `staging`, which now holds the old dataset
    retired = staging_path(out_dir, "old", os.getpid())
    shutil.rmtree(retired, ignore_errors=True)
    out_dir.rename(retired)
    pause_at("half-swapped")
    staging.rename(out_dir)
    shutil.rmtree(retired, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if sys.platform != "linux" or os.environ.get("REWRITELAB_NO_EXCHANGE"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still exists (ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def recover_leftovers(out_dir: Path) -> None:
    """Repair what killed generators left beside `out_dir`: if a kill fell between the two
    renames of the fallback swap, move the old dataset back; then delete the hidden
    `.NAME.partial-PID` / `.NAME.old-PID` directories of processes that are dead."""
    parent, name = out_dir.resolve().parent, out_dir.resolve().name
    if not name or not parent.is_dir():
        return
    leftovers = []
    for path in parent.glob(f".{glob.escape(name)}.*-*"):
        kind, _, pid = path.name[len(name) + 2 :].rpartition("-")
        if kind in ("partial", "old") and pid.isdigit() and not pid_alive(int(pid)):
            leftovers.append((kind, path))
    for kind, path in leftovers:
        if kind == "old" and not out_dir.exists() and is_dataset_dir(path):
            path.rename(out_dir)  # killed half-swapped: the old dataset goes back
    for _, path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def write_manifest(directory: Path, manifest: dict) -> None:
    """`manifest.json` as indented UTF-8 JSON (non-ASCII kept)."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (directory / "manifest.json").write_text(text, encoding="utf-8")


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's bytes (None if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def damaged_files(data_dir: Path) -> list[str]:
    """The files of a generated dataset that are missing or differ from the SHA-256 its
    manifest records (["manifest.json"] when the manifest itself cannot be read)."""
    try:
        files = read_manifest(data_dir).get("files") or {}
    except RewritelabError:
        return ["manifest.json"]
    return [
        name
        for name, facts in files.items()
        if file_sha256(Path(data_dir) / name) != (facts or {}).get("sha256")
    ]
