"""Benchmark: stacked seeds against separate runs, in seeds per core-hour, at 1 and 2 threads.

The point is E1's `cpu` preset at I = 256 (experiments/e1.toml: 4 layers, width 96, batch 64,
two-letter rules in words of 6-10 letters), one dataset per seed as a sweep makes them, with
fewer training examples (the step's cost depends on the batch's shape, not the split's size).
Each mode trains `--steps` steps through the real entry points (`train`, `train_stacked`), one
evaluation at the end on a small sample; the rate is the training window's steps/s that the
loop logs (evaluation excluded):
  separate       one seed alone in the process (`train`), at 1 or 2 threads;
  separate x 2   two processes at once, one thread and one seed each (how a sweep uses the two
                 cores): their rates summed;
  stacked S      S seeds in one process and one step (`train_stacked`), at 1 or 2 threads.
Seeds per core-hour = seed-steps per second x 3600 / (steps of a full run x cores). Each mode
runs in a fresh worker process; the rounds repeat every mode in turn, and the table gives the
median round. The load average before and after is recorded: only an idle machine's 2-thread
rows mean anything.

    .venv/bin/python benchmarks/bench_stacked.py             # ~10 minutes on an idle 2-core CPU
    .venv/bin/python benchmarks/bench_stacked.py --steps 20 --rounds 1   # the plumbing
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
INSTRUCTIONS = 256
EXAMPLES = 6000
MODES = [("separate", 1, 1), ("stacked", 1, 2), ("stacked", 1, 4), ("separate", 2, 1),
         ("separate x 2", 1, 1), ("stacked", 2, 2), ("stacked", 2, 4)]  # fmt: skip


def point_configs(seeds: int, steps: int) -> tuple[list, object]:
    """The seeds' dataset specs and the shared training config of the benchmark point."""
    from dataclasses import replace

    from rewritelab.sweep.experiment import load_experiment, point_config

    experiment = load_experiment(ROOT / "experiments" / "e1.toml", "cpu")
    points = [experiment.point_at({"dataset.train.instructions": INSTRUCTIONS}, s)
              for s in range(seeds)]  # fmt: skip
    for point in points:
        point.dataset["train"]["examples"] = EXAMPLES
    config = replace(point_config(points[0]), max_steps=steps, eval_every=steps,
                     eval_examples=50, stop_at_train_accuracy=0.0, tracker="none")  # fmt: skip
    return [point.dataset for point in points], config


def make_data(directory: Path, seeds: int) -> list[Path]:
    from rewritelab.tasks.generate import generate_dataset
    from rewritelab.tasks.spec_files import spec_from_dict

    specs, _ = point_configs(seeds, 1)
    paths = []
    for seed, spec in enumerate(specs):
        path = directory / f"data-{seed}"
        generate_dataset(spec_from_dict(spec), path)
        paths.append(path)
    return paths


def worker(mode: str, threads: int, seeds: int, steps: int, data: Path, out: Path) -> dict:
    """Train one mode's runs in this process; their logged training steps/s."""
    from dataclasses import replace

    from rewritelab.training.scratch import train
    from rewritelab.training.stacked import SeedRun, train_stacked

    _, config = point_configs(seeds, steps)
    config = replace(config, threads=threads)
    runs = [SeedRun(s, data / f"data-{s}", out / f"run-{s}") for s in range(seeds)]
    if mode == "stacked":
        metrics = train_stacked(config, runs, progress=False)
    else:
        metrics = [train(replace(config, seed=r.seed), r.data_dir, r.out_dir, progress=False)
                   for r in runs]  # fmt: skip
    return {"steps_per_s": [m["steps_per_s"] for m in metrics]}


def run_mode(mode: str, threads: int, seeds: int, steps: int, data: Path, work: Path) -> dict:
    """One mode in fresh worker processes (two at once for `separate x 2`)."""
    copies = 2 if mode == "separate x 2" else 1
    outs = [Path(tempfile.mkdtemp(dir=work)) for _ in range(copies)]
    command = [sys.executable, __file__, "--worker", "stacked" if mode == "stacked" else "separate",
               "--threads", str(threads), "--seeds", str(seeds), "--steps", str(steps),
               "--data", str(data)]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    processes = [subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.PIPE,
                                  env=environment, text=True) for out in outs]  # fmt: skip
    results = [json.loads(p.communicate()[0].splitlines()[-1]) for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit(f"a worker of {mode} failed")
    rates = [rate for result in results for rate in result["steps_per_s"]]
    per_seed = statistics.mean(rates)
    seed_steps_per_s = per_seed * (seeds if mode == "stacked" else copies)
    cores = threads * copies
    return {"mode": mode, "threads": threads, "seeds": seeds, "processes": copies,
            "steps_per_s_per_seed": per_seed,
            "seed_steps_per_core_s": seed_steps_per_s / cores}  # fmt: skip


def measure(steps: int, rounds: int) -> dict:
    _, config = point_configs(1, steps)
    full_steps = full_run_steps()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = work / "data"
        data.mkdir()
        make_data(data, 4)
        load_start, started = os.getloadavg(), time.perf_counter()
        measured = {f"{m}|{t}|{s}": [] for m, t, s in MODES}
        for _ in range(rounds):
            for mode, threads, seeds in MODES:
                row = run_mode(mode, threads, seeds if mode == "stacked" else 1, steps, data, work)
                measured[f"{mode}|{threads}|{seeds}"].append(row)
        load_end = os.getloadavg()
    rows = []
    for found in measured.values():
        rates = [row["seed_steps_per_core_s"] for row in found]
        row = {**found[0], "seed_steps_per_core_s": statistics.median(rates),
               "steps_per_s_per_seed": statistics.median(r["steps_per_s_per_seed"] for r in found),
               "rounds": [round(rate, 3) for rate in rates]}  # fmt: skip
        row["seeds_per_core_hour"] = row["seed_steps_per_core_s"] * 3600 / full_steps
        rows.append(row)
    for row in rows:
        alone = next(r for r in rows if r["mode"] == "separate" and r["threads"] == row["threads"])
        ratio = row["seed_steps_per_core_s"] / alone["seed_steps_per_core_s"]
        row["x_separate_same_threads"] = ratio
    from bench_sweep import machine

    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
            "load_average_start": load_start, "load_average_end": load_end,
            "wall_s": round(time.perf_counter() - started, 1), "steps": steps, "rounds": rounds,
            "point": f"e1 cpu, I = {INSTRUCTIONS}, {EXAMPLES} training examples a seed",
            "model": config.model.to_dict(), "batch_size": config.batch_size,
            "full_run_steps": full_steps, "rows": rows,
            "command": f"python benchmarks/bench_stacked.py --steps {steps} --rounds {rounds}",
            }  # fmt: skip


def full_run_steps() -> int:
    """Steps of a full run of the cpu preset's point (48,000 examples, 6 epochs at batch 64)."""
    from rewritelab.sweep.experiment import load_experiment, point_config

    experiment = load_experiment(ROOT / "experiments" / "e1.toml", "cpu")
    point = experiment.point_at({"dataset.train.instructions": INSTRUCTIONS}, 0)
    config = point_config(point)
    return config.epochs * -(-point.dataset["train"]["examples"] // config.batch_size)


def table(result: dict) -> str:
    lines = [
        "# Stacked seeds against separate runs (`benchmarks/bench_stacked.py`)",
        "",
        f"{result['point']}; model {result['model']['layers']} layers, width "
        f"{result['model']['width']}, batch {result['batch_size']}; a full run is "
        f"{result['full_run_steps']:,} steps. {result['machine']['cpu_model']}, "
        f"{result['machine']['usable_cores']} usable cores; load average "
        f"{result['load_average_start'][0]:.2f} -> {result['load_average_end'][0]:.2f}; "
        f"{result['steps']} timed steps a run, median of {result['rounds']} rounds; "
        f"{result['date'][:10]}; `{result['command']}` ({result['wall_s'] / 60:.1f} min).",
        "",
        "| mode | threads | seeds a process | processes | steps/s a seed | seed-steps/s a core "
        "| seeds per core-hour | x separate (same threads) | rounds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['mode']} | {row['threads']} | {row['seeds']} | {row['processes']} "
            f"| {row['steps_per_s_per_seed']:.2f} | {row['seed_steps_per_core_s']:.2f} "
            f"| {row['seeds_per_core_hour']:.2f} | {row['x_separate_same_threads']:.2f} "
            f"| {', '.join(str(r) for r in row['rounds'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", choices=["separate", "stacked"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.threads, args.seeds, args.steps, args.data, args.out)
        print(json.dumps(result))
        return
    result = measure(args.steps, args.rounds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stacked.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "stacked.md").write_text(table(result))
    print(table(result))


if __name__ == "__main__":
    main()
