"""E3's controls: the same trained models on other unseen rules than E3's test.

    python within_k.py runs/e3-cpu/results.sqlite runs/e3-within-k > WITHIN_K.md

E3's test asks for k < 3. A model at 0 there may fail to transfer to low k, fail on every
unseen rule, or fail only because a k < 3 pattern is shorter than every training pattern (so
the prompt puts the input where no training prompt did). For each finished point of the
sweep database, this regenerates its dataset twice with one change, the test split (same seed,
so the same training rules, checked by digest), and evaluates the run on each:

- `within-k`: 100 unseen rules of the training families, k and lengths;
- `low-k-same-length`: 100 unseen rules of the training families with k in {1, 2} and
  the training pattern lengths (6 letters: k = 2 has 3-letter blocks, `aabbcc`, `abcabc`,
  `abccba`; k = 1 is any 6-letter block), so the prompt layout is the training one.

The run's own record stays; the controls' metrics go beside it under the test file's digest.
"""

import json
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from rewritelab.evaluation.evaluate import evaluate_run
from rewritelab.tasks.generate import generate_dataset
from rewritelab.tasks.spec_files import spec_from_dict

TRAINING_KEYS = {
    "within-k": ("families", "k", "input_length", "pattern_length", "replacement_length"),
    "low-k-same-length": ("families", "input_length", "pattern_length", "replacement_length"),
}


def control_dataset(data_dir: Path, out_root: Path, control: str) -> Path:
    """The dataset of `data_dir` with the test keys `TRAINING_KEYS[control]` set as in training."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    config = manifest["config"]
    train = config["train"]
    config["test"].update({key: train[key] for key in TRAINING_KEYS[control]})
    out = out_root / control / data_dir.name
    if not out.is_dir():
        generate_dataset(spec_from_dict(config), out)
    made = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if made["files"]["train.jsonl"] != manifest["files"]["train.jsonl"]:
        raise SystemExit(f"{out}: the training split differs from {data_dir}'s")
    return out


def cell(values: np.ndarray) -> str:
    """The seed mean, then each seed's value."""
    return f"{values.mean():.2f} ({', '.join(f'{v:.2f}' for v in values)})"


def main(database: str, out_root: str) -> None:
    torch.set_num_threads(1)
    rows = (
        sqlite3.connect(database)
        .execute(
            "SELECT factors, seed, data_dir, run_dir, unseen_accuracy, seen_accuracy FROM points"
            " WHERE status = 'done'"
        )
        .fetchall()
    )
    lines = defaultdict(list)
    for factors, seed, data_dir, run_dir, unseen, seen in rows:
        factors = json.loads(factors)
        controls = [
            evaluate_run(
                run_dir,
                control_dataset(Path(data_dir), Path(out_root), control),
                split="test",
                path="fast",
                device="cpu",
            )["overall"]["accuracy"]
            for control in TRAINING_KEYS
        ]
        key = (factors["family"], factors["dataset.train.instructions"])
        lines[key].append((seed, seen, unseen, *controls))
    print(
        "| family | I | seeds | seen (training rules) | unseen, training k (control) |"
        " unseen, k < 3 (E3's test) | unseen, k < 3 at the training length (control) |"
        "\n|---|---|---|---|---|---|---|"
    )
    for (family, instructions), runs in sorted(lines.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        seen, unseen, within, same_length = (
            np.array([run[i] for run in runs]) for i in (1, 2, 3, 4)
        )
        print(
            f"| {family} | {instructions} | {len(runs)} | {cell(seen)} | {cell(within)} |"
            f" {cell(unseen)} | {cell(same_length)} |"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
