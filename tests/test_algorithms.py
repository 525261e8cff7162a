"""The algorithm task (`task = "markov"`): exact records, disjoint splits, determinism, refusals.

Also pins the single-rule task's bytes: adding the algorithm task must leave every existing
config's dataset unchanged.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from rewritelab import __version__
from rewritelab.datasets import generate_dataset
from rewritelab.spec import spec_from_dict

# SHA-256 of the single-rule datasets, computed on the code before the algorithm task existed.
# The manifest is hashed with its package version replaced by "VERSION" (a release bump is not
# a change of output).
RULE_TASK_HASHES = {
    "default": {
        "train.jsonl": "f5ac6f807b4d4dece49be269386564f5b2606253135e276c07a08c8967cfe27e",
        "seen_test.jsonl": "6a1a326dd9391e8451b559d66afa6c5e8dbea2016e40872bfe305796c7e75b56",
        "test.jsonl": "2bdb297b5390c42f4a77054a172f631a7bb83dccd1786ba506b1ec9d70948752",
        "manifest.json": "e56d73a58b7a7a9d63514941dc5e188194bc338607170da7fe1c53f95659ce7d",
    },
    "rich": {
        "train.jsonl": "80dbd49cae52efb4a028a98b801c35a63ed61c5ca6db876525d88ab4475d860d",
        "seen_test.jsonl": "be0c9c0b5631f65f06a3d55ef8acb235d47920f8ffbc7f0f71f082e55d7f9a1b",
        "test.jsonl": "825cc32345e464ac974ae79e39b5dec3e12511d7e432891a3a4f3ac3ccfd0d31",
        "manifest.json": "af36a3e26526a19aee8ed0b2709f2452e72b45305d09bf97f5aef5126870241f",
    },
}
RULE_TASK_CONFIGS = {
    "default": {},
    "rich": {
        "seed": 7,
        "alphabet": "abcdef",
        "disjoint": "patterns",
        "seen_test_examples": 50,
        "train": {
            "instructions": 40,
            "examples_per_instruction": 5,
            "noop_share": 0.3,
            "families": ["random", "mirror"],
            "k": [2, 3],
            "occurrences": [1, 2],
            "pattern_length": [1, 6],
            "input_length": [1, 20],
            "subsample": 0.5,
        },
        "test": {"instructions": 10, "examples_per_instruction": 3},
    },
}


@pytest.mark.parametrize("name", sorted(RULE_TASK_CONFIGS))
def test_rule_task_bytes_are_unchanged(tmp_path, name):
    out = tmp_path / "data"
    generate_dataset(spec_from_dict(RULE_TASK_CONFIGS[name]), out)
    digests = {}
    for path in sorted(out.iterdir()):
        data = path.read_bytes()
        if path.name == "manifest.json":
            data = data.replace(json.dumps(__version__).encode(), b'"VERSION"')
        digests[path.name] = hashlib.sha256(data).hexdigest()
    assert digests == RULE_TASK_HASHES[name]
