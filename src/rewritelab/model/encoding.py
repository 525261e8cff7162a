"""A generated dataset read for a model: its files checked against the manifest, its
characters, and each split tokenised as the dataset's task writes it."""

from __future__ import annotations

from pathlib import Path

from rewritelab.core.errors import RewritelabError
from rewritelab.model.batches import EncodedSplit
from rewritelab.model.tokenizer import Tokenizer
from rewritelab.tasks.base import Task
from rewritelab.tasks.registry import task_of
from rewritelab.tasks.storage import SPLIT_FILES, file_sha256, read_manifest, read_records


def check_dataset(data_dir: str | Path, tokenizer: Tokenizer | None = None) -> dict:
    """The dataset's manifest, after checking that its files exist and are the bytes the
    manifest's SHA-256s name (a truncated, edited or swapped split is refused) and that the
    tokenizer covers its alphabet."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise RewritelabError(f"data directory {data_dir} does not exist")
    manifest = read_manifest(data_dir)
    missing = [name for name in SPLIT_FILES.values() if not (data_dir / name).is_file()]
    if missing:
        raise RewritelabError(f"dataset {data_dir} is missing {', '.join(missing)}")
    for name, facts in (manifest.get("files") or {}).items():
        if file_sha256(data_dir / name) != (facts or {}).get("sha256"):
            raise RewritelabError(
                f"{data_dir / name} does not match the SHA-256 in its manifest "
                "(changed or truncated since it was generated): regenerate the dataset"
            )
    if tokenizer is not None:
        task = task_of(manifest)
        if tokenizer.layout != task.layout:
            raise RewritelabError(
                f"the model's tokenizer has the {tokenizer.layout!r} layout, but the dataset "
                f"{data_dir} is of task {task.name!r}"
            )
        tokenizer.check_alphabet(dataset_alphabet(manifest), f"the dataset {data_dir}")
    return manifest


def dataset_digest(manifest: dict) -> dict:
    """What identifies a dataset's content, for a run to record and a resume to compare."""
    return {"files": manifest.get("files"), "version": manifest.get("version")}


def dataset_alphabet(manifest: dict) -> str:
    """Every character the dataset's prompts and answers may hold (its task says which)."""
    try:
        return task_of(manifest).alphabet(manifest["config"])
    except (KeyError, TypeError):
        raise RewritelabError("dataset manifest has no config.alphabet (or markers)") from None


def dataset_tokenizer(manifest: dict) -> Tokenizer:
    """A fresh tokenizer for the dataset: its characters, in the layout of its task."""
    return Tokenizer(dataset_alphabet(manifest), layout=task_of(manifest).layout)


def resolve_target(manifest: dict, target: str | None) -> str | None:
    """The answer a model of this dataset learns to write (None where its task has one)."""
    return task_of(manifest).resolve_target(target)


def split_path(data_dir: str | Path, split: str, task: Task) -> Path:
    """The file of one split of the task's (`train`, `seen_test`, `test`, and any of its own)."""
    files = task.split_files
    if split not in files:
        raise RewritelabError(f"split must be one of {tuple(files)}, got {split!r}")
    path = Path(data_dir) / files[split]
    if not path.is_file():
        raise RewritelabError(f"dataset {data_dir} has no {files[split]}")
    return path


def encode_split(
    data_dir: str | Path, split: str, tokenizer: Tokenizer, target: str | None = None
) -> EncodedSplit:
    """Read and tokenise one split of a dataset, as its task writes it; `target` picks the
    answer where the task has several."""
    task = task_of(read_manifest(data_dir))
    path = split_path(data_dir, split, task)
    target = task.resolve_target(target)
    pieces, prompt_lengths, records = [], [], []
    try:
        for record in read_records(path):
            prompt, answer, kept = task.encode(record, tokenizer, target)
            pieces.append(prompt + answer)
            prompt_lengths.append(len(prompt))
            records.append(kept)
    except (ValueError, KeyError, TypeError) as error:
        raise RewritelabError(f"{path} is not a valid split file: {error!r}") from None
    return EncodedSplit.from_pieces(pieces, prompt_lengths, records, str(path))
