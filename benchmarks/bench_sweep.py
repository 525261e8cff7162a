"""Benchmark: the adaptive transition search against a dense grid, in runs and core-minutes.

Two measurements, each a table (markdown) plus JSON under benchmarks/results/:

- `coverage`: how often a 95% interval of I50 holds the true I50, on synthetic sigmoid curves
  with known I50 (no training; `rewritelab.analysis.search_simulation`): the adaptive search
  with its default settings (1,000 bootstrap replicates), and fixed dense grids with 3 and 10
  seeds under the report's percentile interval and under the few-seeds corrected one.
- `compare`: a dense grid and an adaptive search of one experiment, from their results
  databases: both I50s and intervals side by side, and each one's core-minutes (the sum of its
  runs' training times as their run directories logged them, redraws included; a run both
  use counts in both).

    python benchmarks/bench_sweep.py coverage --searches 200
    python benchmarks/bench_sweep.py compare --dense DENSE.sqlite --adaptive SEARCH.sqlite \\
        --experiment e1 --preset dense10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LOW, HIGH = 16, 1024  # the synthetic searches' range of instruction counts


def machine() -> dict:
    from rewritelab.core.hardware import usable_cores

    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())  # fmt: skip
    return {"cpu_model": model, "usable_cores": usable_cores(), "python": platform.python_version()}


def fixed_grid_coverage(simulations: int, seeds: int) -> dict:
    """Coverage of the report's interval and of the corrected one on a dense grid (one count
    per half doubling over LOW..HIGH) with `seeds` seeds, over `simulations` curves."""
    from rewritelab.analysis.search_simulation import draw_curve
    from rewritelab.analysis.transition import analyse_transition

    levels = sorted({round(LOW * 2 ** (k / 2)) for k in range(int(2 * math.log2(HIGH / LOW)) + 1)})
    held = {"percentile": 0, "corrected": 0}
    for simulation in range(simulations):
        curve = draw_curve(simulation, LOW, HIGH)
        truth = curve.true_i50()
        found = [
            curve.observe(simulation, level, seed) for level in levels for seed in range(seeds)
        ]
        for name, corrected in (("percentile", False), ("corrected", True)):
            low, high = analyse_transition(found, per_seed=False,
                                           few_seeds_correction=corrected)["i50_ci"]  # fmt: skip
            held[name] += bool(low and high and low <= truth <= high)
    shares = {f"coverage_{name}": count / simulations for name, count in held.items()}
    return {"grid": levels, "seeds": seeds, "runs": len(levels) * seeds,
            "simulations": simulations} | shares  # fmt: skip


def measure_coverage(searches: int, fixed: int) -> dict:
    from rewritelab.analysis.adaptive_search import SearchSettings
    from rewritelab.analysis.search_simulation import coverage, simulate

    settings = SearchSettings()
    started = time.perf_counter()
    adaptive = coverage([simulate(s, LOW, HIGH, settings) for s in range(searches)])
    adaptive["wall_s"] = round(time.perf_counter() - started, 1)
    return {"settings": settings.__dict__, "range": [LOW, HIGH], "adaptive": adaptive,
            "fixed_grids": [fixed_grid_coverage(fixed, seeds) for seeds in (3, 10)]}  # fmt: skip


def coverage_table(result: dict) -> str:
    a = result["adaptive"]
    lines = [
        "# How often a 95% interval of I50 holds the true I50 (`benchmarks/bench_sweep.py "
        "coverage`)", "",
        f"Synthetic sigmoid curves with known I50 over I = {result['range'][0]}-"
        f"{result['range'][1]} (no training: `rewritelab.analysis.search_simulation`); the "
        "adaptive search with its default settings and 1,000 bootstrap replicates, and dense "
        "grids (a count every half doubling) under the report's percentile interval and the "
        "interval widened for few seeds. "
        f"{result['machine']['cpu_model']}, {result['machine']['usable_cores']} cores, one "
        f"thread, load {result['load_average_start'][0]:.1f} -> "
        f"{result['load_average_end'][0]:.1f}; {result['date'][:10]}; `{result['command']}` "
        f"(the searches {a['wall_s'] / 60:.0f} min).", "",
        "| design | runs | searches | 95% interval holds the true I50 |", "|---|---|---|---|",
        f"| adaptive search (defaults, few-seeds corrected) | {a['mean_runs']:.1f} (mean) | "
        f"{a['searches']} | **{a['coverage']:.1%}** ± {a['coverage_stderr']:.1%} |",
    ]  # fmt: skip
    for grid in result["fixed_grids"]:
        for name in ("percentile", "corrected"):
            lines.append(f"| dense grid, {len(grid['grid'])} counts x {grid['seeds']} seeds, "
                         f"{name} interval | {grid['runs']} | {grid['simulations']} | "
                         f"{grid[f'coverage_{name}']:.1%} |")  # fmt: skip
    return "\n".join(lines)


def design_summary(rows: list[dict], cost_of: dict[str, float]) -> dict:
    """I50 with the report's interval and the corrected one, runs and core-minutes."""
    from rewritelab.analysis.report_transitions import transition_observations
    from rewritelab.analysis.transition import analyse_transition

    found = transition_observations(rows, "final", "unseen_accuracy")
    summary = {"runs": len(rows), "core_minutes": sum(cost_of[r["point_id"]] for r in rows) / 60}
    for name, corrected in (("percentile", False), ("corrected", True)):
        fit = analyse_transition(found, per_seed=False, few_seeds_correction=corrected)
        low, high = fit["i50_ci"]
        width = math.log2(high / low) if low and high else None
        summary[name] = {"i50": fit["i50"], "i50_ci": [low, high], "width_doublings": width}
    return summary


def training_s(row: dict) -> float:
    """A point's training time: the time its run logged at its last evaluation, summed over
    its draws (a redrawn point trained twice). It counts a run once however often it was
    resumed or evaluated again, and the same way for a run both designs share."""
    metrics = row["metrics"] or {}
    runs = [row["run_dir"]] + [draw["run_dir"] for draw in metrics.get("redrawn", [])]
    total = 0.0
    for run in runs:
        lines = (Path(run) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        total += json.loads(lines[-1])["elapsed_s"]
    return total


def measure_compare(dense_path: str, adaptive_path: str, experiment: str, preset: str) -> dict:
    from rewritelab.sweep.database import ResultsDatabase

    dense_db, search_db = (ResultsDatabase(p, readonly=True) for p in (dense_path, adaptive_path))
    dense = [r for r in dense_db.rows(experiment, preset) if r["status"] == "done"]
    rounds = search_db.search_rounds()[(experiment, preset)]
    ids = {a["point_id"] for r in rounds for a in r["additions"]}
    searched = [r for r in search_db.rows() if r["point_id"] in ids and r["status"] == "done"]
    cost_of = {r["point_id"]: training_s(r) for r in searched + dense}
    shared = {r["point_id"] for r in dense}
    result = {
        "dense": design_summary(dense, cost_of), "adaptive": design_summary(searched, cost_of),
        "shared_runs": len(ids & set(shared)), "rounds": len(rounds), "stop": rounds[-1]["stop"],
        "experiment": experiment, "preset": preset,
    }  # fmt: skip
    result["core_minute_ratio"] = (
        result["adaptive"]["core_minutes"] / result["dense"]["core_minutes"]
    )
    return result


def compare_table(result: dict) -> str:
    lines = [f"# {result['experiment']} `{result['preset']}`: the adaptive search against the "
             "dense grid (`benchmarks/bench_sweep.py compare`)", "",
             f"{result['machine']['cpu_model']}, {result['machine']['usable_cores']} cores; "
             f"{result['date'][:10]}. Core-minutes are each design's training time as its run "
             "directories logged it (redraws included); the runs' own machine load is in the "
             "notes of the results they belong to (results/cpu/e1-adaptive/NOTES.md for E1). "
             f"Ratio of core-minutes, adaptive over dense: **{result['core_minute_ratio']:.2f}**; "
             f"the search stopped `{result['stop']}` after {result['rounds']} rounds; "
             f"{result['shared_runs']} of its runs are points of the dense grid too "
             "(each design is charged for them in full). Command (the run directories the "
             f"databases name must exist): `{result['command']}`.", "",
             "| design | runs | core-minutes | I50 | 95% CI (report's percentile) | width | "
             "95% CI (few-seeds corrected) | width |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in ("dense", "adaptive"):
        d = result[name]
        p, c = d["percentile"], d["corrected"]
        lines.append(
            f"| {name} | {d['runs']} | {d['core_minutes']:.1f} | {p['i50']:.0f} | "
            f"{p['i50_ci'][0]:.0f}-{p['i50_ci'][1]:.0f} | {p['width_doublings']:.2f} | "
            f"{c['i50_ci'][0]:.0f}-{c['i50_ci'][1]:.0f} | {c['width_doublings']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    cover = modes.add_parser("coverage")
    cover.add_argument("--searches", type=int, default=200)
    cover.add_argument("--fixed", type=int, default=200, help="simulations per fixed grid")
    compare = modes.add_parser("compare")
    compare.add_argument("--dense", required=True)
    compare.add_argument("--adaptive", required=True)
    compare.add_argument("--experiment", default="e1")
    compare.add_argument("--preset", default="dense10")
    args = parser.parse_args()
    load_start = os.getloadavg()
    if args.mode == "coverage":
        result, table = measure_coverage(args.searches, args.fixed), coverage_table
    else:
        result = measure_compare(args.dense, args.adaptive, args.experiment, args.preset)
        table = compare_table
    command = " ".join(["python benchmarks/bench_sweep.py", *sys.argv[1:]])
    result |= {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
               "load_average_start": load_start, "load_average_end": os.getloadavg(),
               "command": command}  # fmt: skip
    text = table(result)
    print(text)
    name = f"sweep_{args.mode}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
