"""The single-rule rewrite task as a registered `Task`."""

from __future__ import annotations

from pathlib import Path

from rewritelab.tasks.base import Encoded, Task
from rewritelab.tasks.rewrite import generate
from rewritelab.tasks.rewrite.checks import check_spec
from rewritelab.tasks.rewrite.inspect import format_inspection, inspect_dataset
from rewritelab.tasks.rewrite.records import kept_fields
from rewritelab.tasks.spec import DatasetSpec
from rewritelab.tasks.storage import SPLIT_FILES

# Settings a manifest records only when near-misses are planted, so that the manifests (and the
# sweep's cache keys) of datasets without them are what they were before the setting existed.
NEAR_MISS_KEYS = ("near_miss_share", "near_miss_kinds")


class RewriteTask(Task):
    """One rule `x -> y` per instruction, applied to the leftmost `x` of `z` (see `generate`)."""

    name = "rule"
    layout = "rule"
    split_files = SPLIT_FILES
    own_split_keys = (
        "occurrences",
        "occurrence_weights",
        "families",
        "family_weights",
        "k",
        "subsample",
        "subsample_spread",
        "subsample_alpha",
        *NEAR_MISS_KEYS,
    )
    disjoint_modes = ("pairs", "patterns")
    records_name = False  # manifests from before the task registry name none
    text_prompts = True
    breakdowns = {  # a class of None leaves the record out of that breakdown
        "noop": lambda r: "noop" if r["noop"] else "has_op",
        "occurrences": lambda r: str(r["occurrences"]),
        "pattern_length": lambda r: str(len(r["x"])),
        "near_miss": lambda r: (r["near_miss_kind"] or "none") if "near_miss_kind" in r else None,
        "instruction": lambda r: str(r["instruction"]),
        "has_op_instruction": lambda r: None if r["noop"] else str(r["instruction"]),
    }

    def validate(self, spec: DatasetSpec) -> None:
        check_spec(spec)

    def record(self, spec: DatasetSpec) -> dict:
        data = super().record(spec)
        for split in ("train", "test"):
            if not getattr(spec, split).near_miss_share:
                for key in NEAR_MISS_KEYS:
                    data[split].pop(key, None)
        return data

    def build(self, spec: DatasetSpec, bar):
        return generate.build_splits(spec, bar)

    def write(self, spec: DatasetSpec, built, directory: Path) -> dict:
        return generate.write_splits(spec, self.record(spec), built, directory)

    def columns(self, config) -> dict:
        planted = any(
            (config.get(split) or {}).get("near_miss_share") for split in ("train", "test")
        )
        near_misses = {"near_miss": "string", "near_miss_kind": "string"} if planted else {}
        return {
            "instruction": "int64", "x": "string", "y": "string", "family": "string",
            "k": "int64", "z": "string", "output": "string", "noop": "bool",
            "occurrences": "int64", **near_misses,
        }  # fmt: skip

    def encode(self, record: dict, tokenizer, target: str | None) -> Encoded:
        prompt = tokenizer.encode_prompt(record["x"], record["y"], record["z"])
        return prompt, tokenizer.encode_answer(record["output"]), kept_fields(record)

    def inspect(self, data_dir: Path, manifest: dict) -> dict:
        return inspect_dataset(data_dir, manifest)

    def format_inspection(self, report: dict) -> str:
        return format_inspection(report)
