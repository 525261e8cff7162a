"""Shared by the training and evaluation tests: tiny datasets and one tiny trained run.

The trained run itself is the `tiny_run` fixture (conftest.py).
"""

from __future__ import annotations

from pathlib import Path

from rewritelab.tasks.generate import generate_dataset
from rewritelab.tasks.spec_files import spec_from_dict
from rewritelab.training.scratch_config import train_config_from_dict

TINY_DATA = {
    "seed": 1,
    "alphabet": "abc",
    "seen_test_examples": 100,
    "train": {
        "instructions": 3,
        "examples_per_instruction": 100,
        "input_length": [1, 3],
        "pattern_length": [1, 2],
        "replacement_length": [1, 2],
        "noop_share": 0.2,
    },
    "test": {"instructions": 3, "examples_per_instruction": 20},
}

TINY_DATA_NAME = "tiny_data"
TINY_MODEL = {"layers": 2, "heads": 4, "width": 64, "context": 32}


def make_data(directory: Path, **train_changes) -> Path:
    """Generate the tiny dataset (with some training-split settings changed) into `directory`."""
    config = {**TINY_DATA, "train": {**TINY_DATA["train"], **train_changes}}
    generate_dataset(spec_from_dict(config), directory)
    return directory


def tiny_config(**changes):
    """A TrainConfig for the tiny model on the tiny dataset, with some settings changed."""
    values = {
        "epochs": 50,
        "batch_size": 16,
        "warmup_steps": 10,
        "learning_rate": 3e-3,
        "eval_every": 1000,
        "model": TINY_MODEL,
        **changes,
    }
    return train_config_from_dict(values)
