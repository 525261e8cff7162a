"""E3's control: the same trained models on unseen rules of their own training k.

    python within_k.py runs/e3-cpu/results.sqlite runs/e3-within-k > WITHIN_K.md

E3's test asks for k < 3. A model at 0 there may fail to transfer to low k, or fail on every
unseen rule. For each finished point of the sweep database, this regenerates its dataset with
one change, the test split: 100 unseen rules of the training families, k and lengths (same
seed, so the same training rules, checked by digest), and evaluates the run on it. The run's
own record stays; the control's metrics go beside it under the test file's digest.
"""

import json
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from rewritelab.datasets import generate_dataset
from rewritelab.evaluate import evaluate_run
from rewritelab.spec import spec_from_dict


def control_dataset(data_dir: Path, out_root: Path) -> Path:
    """The dataset of `data_dir` with its test split drawn like its training rules."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    config = manifest["config"]
    train = config["train"]
    config["test"].update(
        {
            key: train[key]
            for key in ("families", "k", "input_length", "pattern_length", "replacement_length")
        }
    )
    out = out_root / data_dir.name
    if not out.is_dir():
        generate_dataset(spec_from_dict(config), out)
    control = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if control["files"]["train.jsonl"] != manifest["files"]["train.jsonl"]:
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
        control = control_dataset(Path(data_dir), Path(out_root))
        metrics = evaluate_run(run_dir, control, split="test", path="fast", device="cpu")
        key = (factors["family"], factors["dataset.train.instructions"])
        lines[key].append((seed, seen, unseen, metrics["overall"]["accuracy"]))
    print(
        "| family | I | seeds | seen (training rules) | unseen, training k (control) |"
        " unseen, k < 3 (E3's test) |\n|---|---|---|---|---|---|"
    )
    for (family, instructions), runs in sorted(lines.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        seen, unseen, within = (np.array([run[i] for run in runs]) for i in (1, 2, 3))
        print(
            f"| {family} | {instructions} | {len(runs)} | {cell(seen)} | {cell(within)} |"
            f" {cell(unseen)} |"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
