"""The Task interface: everything the rest of rewritelab asks of a kind of instruction.

A task owns its datasets from end to end, as an Int2Int environment does: which split settings
it reads, how a spec is checked, how the splits are drawn and written, what the model sees and
writes for a record, how accuracy is broken down, and what `inspect` reports and checks.
Training, evaluation and the report ask the task; none of them names one. A new task is one
module with a `Task` subclass plus one line in `registry.TASKS`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.spec import GENERIC_SPLIT_KEYS, TASK_TOP_KEYS, DatasetSpec, split_default

Encoded = tuple[list[int], list[int], dict]  # prompt ids, answer ids, the record fields kept


class Task(ABC):
    """One kind of instruction, from its config settings to its accuracy breakdowns."""

    name: ClassVar[str]
    layout: ClassVar[str]  # the tokenizer layout its prompts are written in
    split_files: ClassVar[Mapping[str, str]]  # split name -> file in the dataset directory
    own_split_keys: ClassVar[tuple[str, ...]]  # split settings it reads beyond the generic ones
    own_top_keys: ClassVar[tuple[str, ...]] = ()  # top-level settings it reads (and records)
    disjoint_modes: ClassVar[tuple[str, ...]]  # how test instructions differ (first: default)
    split_defaults: ClassVar[Mapping[str, Any]] = {}  # config-file defaults of its splits
    targets: ClassVar[tuple[str, ...]] = ()  # answers a model may learn to write; (): one
    default_target: ClassVar[str | None] = None
    breakdowns: ClassVar[Mapping[str, Callable[[dict], Any]]]  # name -> class of a kept record
    records_name: ClassVar[bool] = True  # whether manifests and cache keys name the task
    text_prompts: ClassVar[bool] = False  # whether `model.prompts` templates can write it (so
    # pretrained LMs with their own tokenizers can be fine-tuned and evaluated on it)

    # ------------------------------------------------------------ config

    @abstractmethod
    def validate(self, spec: DatasetSpec) -> None:
        """Raise RewritelabError naming the first setting this task cannot generate."""

    def reads(self, key: str) -> bool:
        """Whether a split setting means anything to this task."""
        return key in GENERIC_SPLIT_KEYS or key in self.own_split_keys

    def check_keys(self, spec: DatasetSpec) -> None:
        """Refuse, by name, a split setting this task ignores that is set to anything but its
        default (a silently ignored setting is a wrong experiment)."""
        for split in ("train", "test"):
            for key, value in dataclasses.asdict(getattr(spec, split)).items():
                if not self.reads(key) and value != split_default(key):
                    raise RewritelabError(f"{split}.{key} does not apply to task = {self.name!r}")

    def record(self, spec: DatasetSpec) -> dict[str, Any]:
        """The spec as a manifest records it (and the sweep hashes it): this task's settings."""
        data = dataclasses.asdict(spec)
        for key in ("task", *self.other_top_keys()):
            if key != "task" or not self.records_name:
                data.pop(key, None)
        for split in ("train", "test"):
            data[split] = {k: v for k, v in data[split].items() if self.reads(k)}
        return data

    def other_top_keys(self) -> tuple[str, ...]:
        """Top-level settings of the spec that belong to other tasks."""
        return tuple(k for k in TASK_TOP_KEYS if k not in self.own_top_keys)

    # ------------------------------------------------------------ data

    @abstractmethod
    def build(self, spec: DatasetSpec, bar) -> Any:
        """Every split of a validated spec, in memory (advancing the tqdm `bar` by stage)."""

    @abstractmethod
    def write(self, spec: DatasetSpec, built: Any, directory: Path) -> dict:
        """Write the split files and `manifest.json` into `directory`; return the manifest:
        `format`, `version`, `config` (`record`), `seed`, `files` (`storage.write_lines` of
        each), `counts` (per split: `examples`, `instructions`, `noop`), and `task` when
        `records_name`."""

    @abstractmethod
    def columns(self, config: Mapping) -> dict[str, Any]:
        """The type of every field of its records, the same in every split of a dataset with
        this recorded config: "int64", "string" or "bool" (null allowed), a one-item list for
        a list of that type, or a dict for a struct (`dataset_card` writes it for
        `datasets`)."""

    def alphabet(self, config: Mapping) -> str:
        """Every character a dataset's prompts and answers may hold (from its recorded config)."""
        return config["alphabet"]

    # ------------------------------------------------------------ model side

    def resolve_target(self, target: str | None) -> str | None:
        """The answer a model is trained to write (None where the task has just one)."""
        if not self.targets:
            if target is not None:
                raise RewritelabError(
                    f"target = {target!r} does not apply to task {self.name!r}: it has one answer"
                )
            return None
        if target is None:
            return self.default_target
        if target not in self.targets:
            raise RewritelabError(f"target must be one of {self.targets}, got {target!r}")
        return target

    @abstractmethod
    def encode(self, record: dict, tokenizer, target: str | None) -> Encoded:
        """A record as the model sees it (prompt ids), what it must write (answer ids, ending
        in the end token), and the fields kept for breakdowns and predictions."""

    # ------------------------------------------------------------ inspect

    @abstractmethod
    def inspect(self, data_dir: Path, manifest: dict) -> dict:
        """Statistics of every split and independent checks of what the manifest claims."""

    @abstractmethod
    def format_inspection(self, report: dict) -> str:
        """`inspect`'s report as readable text."""
