"""Dataset cards: every generated layout loads with `datasets.load_dataset(directory)`, all its
splits together, with the declared column types, and gives back exactly the records on disk."""

from __future__ import annotations

import json

import pytest
from conftest import load_split

from rewritelab.tasks.dataset_card import CARD, features
from rewritelab.tasks.registry import task_of
from rewritelab.tasks.storage import read_manifest

datasets = pytest.importorskip("datasets")

LENGTHS = {"pattern_length": [1, 2], "replacement_length": [0, 2], "input_length": [6, 10]}


def rules(train: dict | None = None, test: dict | None = None) -> dict:
    """A small single-rule dataset config: 10 training rules, 6 test rules."""
    return {
        "alphabet": "abcdefgh", "seen_test_examples": 20,
        "train": {"instructions": 10, "examples_per_instruction": 10, **LENGTHS, **(train or {})},
        "test": {"instructions": 6, "examples_per_instruction": 5, **LENGTHS, **(test or {})},
    }  # fmt: skip


LAYOUTS = {
    "random": rules(),
    # random training rules (k null) against structured test rules (k an integer): the mix
    # whose inferred features clashed
    "families": rules(
        test={
            "families": ["periodic"],
            "k": [2, 2],
            "pattern_length": [2, 4],
            "replacement_length": [2, 4],
        }
    ),  # fmt: skip
    "occurrences": rules({"occurrences": [1, 2, 3]}),
    "near-misses": rules({"pattern_length": [2, 3], "near_miss_share": 0.5}),
    "algorithms": {
        "task": "markov",
        "alphabet": "abc",
        "seen_test_examples": 20,
        "train": {"instructions": 6, "examples_per_instruction": 8, "markers": "αβ"},
        "test": {"instructions": 4, "examples_per_instruction": 5},
    },
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_loads_whole_with_its_declared_types(make_dataset, layout, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = make_dataset(LAYOUTS[layout])
    manifest = read_manifest(out)
    splits = task_of(manifest).split_files
    loaded = datasets.load_dataset(str(out), cache_dir=str(out.parent / "hf-cache"))
    assert set(loaded) == set(splits)
    for split in splits:
        records = load_split(out, split)
        assert set(records[0]) == set(features(out))  # the card names every field, no more
        assert loaded[split].features == features(out)
        assert loaded[split].to_list() == records


def test_the_features_also_load_the_files_by_name(make_dataset, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = make_dataset(LAYOUTS["families"])
    files = {split: str(out / f"{split}.jsonl") for split in ("train", "seen_test", "test")}
    loaded = datasets.load_dataset("json", data_files=files, features=features(out),
                                   cache_dir=str(out.parent / "hf-cache"))  # fmt: skip
    assert loaded["train"][0]["k"] is None and isinstance(loaded["test"][0]["k"], int)


def test_the_card_header_is_the_hubs_layout_and_the_table_counts_the_splits(make_dataset):
    yaml = pytest.importorskip("yaml")
    out = make_dataset(LAYOUTS["random"])
    text = (out / CARD).read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "train.jsonl"},
        {"split": "seen_test", "path": "seen_test.jsonl"},
        {"split": "test", "path": "test.jsonl"},
    ]}]  # fmt: skip
    assert header["dataset_info"]["features"] == features(out)._to_yaml_list()
    assert "| train | `train.jsonl` | 100 | 10 |" in text
    recorded = json.loads(text.split("```json\n")[1].split("```")[0])
    assert recorded == read_manifest(out)["config"]
