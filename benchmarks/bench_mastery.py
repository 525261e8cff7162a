"""Benchmark: the mastery ladder. What does it cost a small GPT, on one CPU thread, to master
rewrite rules of rising difficulty, and which recipe lowers the cost?

Rungs (26 letters throughout, at an instruction count well above the rung's transition):
  a: |x| = |y| = 1, |z| = 6 (the old cpu regime: 650 possible rules)
  b: |x| = |y| = 2, |z| in 6..10
  c: |x| in 1..3, |y| in 0..3, |z| in 4..12, 10% no-ops
  d: |x| in 1..4, |y| in 0..4, |z| in 4..16, x once or twice (leftmost matters), 10% no-ops

A recipe is a set of dataset and training settings laid over `BASE` (the recipe E1's cpu preset
adopts). Each cell (rung, recipe) trains `--seeds` seeds through the CLI (`rewritelab generate`,
`rewritelab train`, `rewritelab evaluate`), two processes at once with one thread each, and
records per seed: the real tokens and wall time until seen accuracy (500 held-out inputs of
training rules) first reaches 0.95, or "not reached" within the budget; the final seen and
unseen accuracy, each split by planted near-miss kind; the machine's load. Each record is
appended to benchmarks/results/mastery.json as it ends, so an interrupted benchmark resumes
where it stopped; mastery.md is rewritten from the JSON.

    python benchmarks/bench_mastery.py --workdir /tmp/ladder              # every cell, 2 seeds
    python benchmarks/bench_mastery.py --workdir /tmp/ladder --cells b/base b/no-near-miss
    python benchmarks/bench_mastery.py --table                            # mastery.md only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MASTERED = 0.95

RUNGS = {
    "a": {"pattern_length": [1, 1], "replacement_length": [1, 1], "input_length": [6, 6],
          "instructions": 512},
    "b": {"pattern_length": [2, 2], "replacement_length": [2, 2], "input_length": [6, 10],
          "instructions": 1024},
    "c": {"pattern_length": [1, 3], "replacement_length": [0, 3], "input_length": [4, 12],
          "noop_share": 0.1, "instructions": 2000},
    "d": {"pattern_length": [1, 4], "replacement_length": [0, 4], "input_length": [4, 16],
          "occurrences": [1, 2], "noop_share": 0.1, "instructions": 2000},
}  # fmt: skip

# The recipe E1's cpu preset adopts (experiments/e1.toml): 48,000 examples seen 4 times, half
# the inputs holding a near-miss of x; 4 layers of width 96 with PyTorch's initialisation and
# an untied head; AdamW at 3e-3, beta2 0.999, no weight decay; plain random batches; evaluated
# every quarter epoch, stopped once 0.98 of 500 training examples are right.
BASE = {
    "dataset": {"near_miss_share": 0.5, "examples": 48_000},
    "train": {
        "epochs": 4, "batch_size": 64, "learning_rate": 3e-3, "warmup_steps": 30,
        "weight_decay": 0.0, "adam_beta2": 0.999, "bucket_batches": 1, "eval_every": 188,
        "eval_examples": 500, "stop_at_train_accuracy": 0.98, "device": "cpu", "threads": 1,
        "bf16": False,
        "model": {"layers": 4, "heads": 4, "width": 96, "context": 48, "vocab_size": 64,
                  "tie_embeddings": False, "init": "pytorch"},
    },
}  # fmt: skip

# Each recipe changes BASE in one respect (dataset settings, training settings, model settings).
RECIPES = {
    "base": {},
    "gpt2-init": {"train": {"adam_beta2": 0.95, "model": {"tie_embeddings": True, "init": "gpt2"}}},
    "12k-examples": {"dataset": {"examples": 12_000}, "train": {"epochs": 16}},
    "no-near-miss": {"dataset": {"near_miss_share": 0.0}},
    "near-miss-0.25": {"dataset": {"near_miss_share": 0.25}},
    "bucketed": {"train": {"bucket_batches": 50}},
    "weight-decay-0.01": {"train": {"weight_decay": 0.01}},
    "3L-64": {"train": {"learning_rate": 5e-3, "model": {"layers": 3, "width": 64}}},
    "3L-128": {"train": {"model": {"layers": 3, "width": 128}}},
    "4L-128": {"train": {"learning_rate": 2e-3, "model": {"width": 128}}},
    "6L-96": {"train": {"model": {"layers": 6}}},
    "lr-1e-3": {"train": {"learning_rate": 1e-3}},
    "warmup-300": {"train": {"warmup_steps": 300}},
    "batch-32": {"train": {"batch_size": 32}},
    "batch-128": {"train": {"batch_size": 128}},
    "8-epochs": {"train": {"epochs": 8}},
}
# Recipes the ladder names but cannot measure with the trainer as it is, and why.
NOT_MEASURED = {
    "rotary positions": "needs a Llama-architecture trainee (HF LlamaForCausalLM); our GPT is "
    "GPT-2 with learned absolute positions",
    "random position offset": "needs position ids shifted per sequence in training (and a "
    "context that covers the shifts); not in the trainer",
    "length curriculum": "needs a batch order by input length over epochs; the trainer's "
    "batches are a pure function of (seed, step) without one",
}
CELLS = [
    ("a", "base"),
    *(("b", recipe) for recipe in RECIPES),
    ("c", "base"), ("c", "6L-96"), ("c", "8-epochs"),
    ("d", "base"), ("d", "6L-96"),
]  # fmt: skip


def merged(base: dict, change: dict) -> dict:
    """`change` laid over `base`, tables merged key by key."""
    out = dict(base)
    for key, value in change.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def toml_text(table: dict, prefix: str = "") -> str:
    """A small TOML writer for the flat-and-nested configs above (no arrays of tables)."""
    lines, tables = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    text = "\n".join(lines) + "\n"
    for key, value in tables:
        name = f"{prefix}{key}"
        text += f"\n[{name}]\n" + toml_text(value, f"{name}.")
    return text


def cell_configs(rung: str, recipe: str, seed: int) -> tuple[dict, dict]:
    """The dataset config and the training config of one cell and seed."""
    settings = merged(BASE, RECIPES[recipe])
    split = {**RUNGS[rung], **settings["dataset"]}
    dataset = {
        "seed": seed,
        "seen_test_examples": 500,
        "train": split,
        "test": {"instructions": 100, "examples_per_instruction": 5},
    }
    return dataset, {**settings["train"], "seed": seed}


def run_cli(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["rewritelab", *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"rewritelab {' '.join(args)}: {done.stderr.strip()[-400:]}")


def near_miss_split(evaluation: dict) -> dict:
    return {kind: round(v["accuracy"], 3) for kind, v in evaluation.get("by_near_miss", {}).items()}


def measure(workdir: Path, rung: str, recipe: str, seed: int) -> dict:
    """Generate, train and evaluate one cell and seed; its record."""
    where = workdir / f"{rung}-{recipe}-{seed}"
    dataset, train = cell_configs(rung, recipe, seed)
    where.mkdir(parents=True, exist_ok=True)
    (where / "data.toml").write_text(toml_text(dataset))
    (where / "train.toml").write_text(toml_text(train))
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    if not (where / "data" / "manifest.json").exists():
        run_cli("generate", "--config", str(where / "data.toml"), "--out", str(where / "data"))
    run = where / "run"
    resume = ["--resume"] if run.exists() else []
    run_cli("train", "--data", str(where / "data"), "--out", str(run), "--quiet",
            "--config", str(where / "train.toml"), *resume)  # fmt: skip
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluations = {}
    for split in ("seen_test", "test"):
        run_cli("evaluate", str(run), "--data", str(where / "data"), "--split", split)
        evaluations[split] = json.loads((run / f"eval-{split}-fast.json").read_text())
    first = next((h for h in history if h["seen_accuracy"] >= MASTERED), None)
    return {
        "rung": rung, "recipe": recipe, "seed": seed,
        "mastered": first is not None,
        "tokens_to_mastery": first and first["train_tokens"],
        "epochs_to_mastery": first and round(first["epoch"], 2),
        "wall_s_to_mastery": first and round(first["elapsed_s"], 1),
        "epochs_trained": round(history[-1]["epoch"], 2),
        "tokens_trained": history[-1]["train_tokens"],
        "seen_accuracy": round(evaluations["seen_test"]["overall"]["accuracy"], 3),
        "unseen_accuracy": round(evaluations["test"]["overall"]["accuracy"], 3),
        "seen_by_near_miss": near_miss_split(evaluations["seen_test"]),
        "unseen_by_near_miss": near_miss_split(evaluations["test"]),
        "tokens_per_s": round(sum(h["tokens_per_s"] for h in history) / len(history)),
        "seen_curve": [round(h["seen_accuracy"], 3) for h in history],
        "wall_s": round(time.perf_counter() - start, 1),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
        "finished": f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
    }  # fmt: skip


def load_records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["records"] if path.exists() else []


def save_records(path: Path, records: list[dict]) -> None:
    """Write the JSON atomically (a temporary file renamed over it)."""
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": platform.python_version()}  # fmt: skip
    data = {"benchmark": "mastery", "machine": machine, "mastered_at": MASTERED,
            "base": BASE, "recipes": RECIPES, "rungs": RUNGS, "not_measured": NOT_MEASURED,
            "records": records}  # fmt: skip
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)


def _mean(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.2f}" if values else "–"


def _cost(records: list[dict], key: str, scale: float, unit: str) -> str:
    reached = [r[key] for r in records if r["mastered"]]
    if not reached:
        return "not reached"
    text = f"{sum(reached) / len(reached) / scale:.2f}{unit}"
    return text if len(reached) == len(records) else f"{text} ({len(reached)}/{len(records)})"


def table(records: list[dict]) -> str:
    """mastery.md: one row per cell, seeds averaged."""
    lines = [
        "| rung | recipe | seeds | mastered | tokens to seen ≥ 0.95 | wall to it | final seen "
        "| final unseen | seen on near-misses | tokens/s (1 thread) | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rung, recipe in CELLS:
        rows = [r for r in records if (r["rung"], r["recipe"]) == (rung, recipe)]
        if not rows:
            lines.append(f"| {rung} | {recipe} | 0 | not measured yet | | | | | | | |")
            continue
        near = [
            sum(v for k, v in r["seen_by_near_miss"].items() if k != "none")
            / max(1, len([k for k in r["seen_by_near_miss"] if k != "none"]))
            for r in rows
            if len(r["seen_by_near_miss"]) > 1
        ]
        lines.append(
            f"| {rung} | {recipe}{' (chosen)' if recipe == 'base' else ''} | {len(rows)} "
            f"| {sum(r['mastered'] for r in rows)}/{len(rows)} "
            f"| {_cost(rows, 'tokens_to_mastery', 1e6, ' M')} "
            f"| {_cost(rows, 'wall_s_to_mastery', 1, ' s')} "
            f"| {_mean([r['seen_accuracy'] for r in rows])} "
            f"| {_mean([r['unseen_accuracy'] for r in rows])} | {_mean(near)} "
            f"| {_mean([r['tokens_per_s'] / 1000 for r in rows])} k "
            f"| {_mean([r['load_average_start'] for r in rows])} |"
        )
    lines += ["", "Not measured (the trainer has no such option):", ""]
    lines += [f"- {name}: {why}" for name, why in NOT_MEASURED.items()]
    return "\n".join(lines + calibration_lines()) + "\n"


def calibration_lines() -> list[str]:
    """The calibration runs that chose BASE (mastery_calibration.json), one row each."""
    path = RESULTS / "mastery_calibration.json"
    if not path.exists():
        return []
    calibration = json.loads(path.read_text())
    lines = ["", "## Calibration (rung b at I = 512, one seed each)", "", calibration["what"], "",
             "| run | recipe | examples × epochs | seen after 4 epochs of 12k (same tokens) "
             "| last evaluation: epoch, train / seen / unseen | wall |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for run in calibration["runs"]:
        per_epoch = 4 if run["examples_x_epochs"].startswith("48k") else 1
        at_four = next((p["seen"] for p in run["curve"] if p["epoch"] * per_epoch >= 4), None)
        last = run["curve"][-1]
        lines.append(
            f"| {run['run']} | {run['recipe']} | {run['examples_x_epochs']} "
            f"| {'–' if at_four is None else at_four} "
            f"| {last['epoch']:g}: {last['train_accuracy']} / {last['seen']} / {last['unseen']} "
            f"| {last['elapsed_s']} s |"
        )
    lines += ["", f"How: {calibration['how']}", "", f"Machine: {calibration['machine']}."]
    reading = RESULTS / "mastery_reading.md"  # written by hand from the measurements
    return lines + (["", reading.read_text().rstrip("\n")] if reading.exists() else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rewritelab-mastery"))
    parser.add_argument("--cells", nargs="*", help="rung/recipe, e.g. b/base (default: all)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--parallel", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--table", action="store_true", help="only rewrite mastery.md")
    args = parser.parse_args()
    path = RESULTS / "mastery.json"
    records = load_records(path)
    if not args.table:
        cells = [tuple(c.split("/", 1)) for c in args.cells] if args.cells else CELLS
        unknown = [c for c in cells if c[0] not in RUNGS or c[-1] not in RECIPES]
        if unknown:
            sys.exit(f"bench_mastery: unknown cell {'/'.join(unknown[0])}")
        done = {(r["rung"], r["recipe"], r["seed"]) for r in records}
        todo = [(r, c, s) for r, c in cells for s in args.seeds if (r, c, s) not in done]
        with ThreadPoolExecutor(args.parallel) as pool:
            futures = [pool.submit(measure, args.workdir, *job) for job in todo]
            for future in as_completed(futures):
                record = future.result()
                records.append(record)
                save_records(path, records)
                print(json.dumps({k: record[k] for k in list(record)[:10]}), flush=True)
    (RESULTS / "mastery.md").write_text(table(records))
    print(table(records))


if __name__ == "__main__":
    main()
