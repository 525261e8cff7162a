"""benchmarks/results/README.md: every benchmark's latest figures in one table, the machine
and its load beside each, so that speed and sample efficiency are read together.

    python benchmarks/summarize.py            # rewrites benchmarks/results/README.md

It reads the JSON each benchmark writes (train.json, generate.json, mastery.json, and, once
they have run, sweep_compare.json, sweep_coverage.json and stacked.json) and lists the
write-ups that have none (e1-budget.md, mastery_reading.md, stacked_reading.md) by their
title.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
WRITE_UPS = ("e1-budget.md", "mastery_reading.md", "stacked_reading.md")


def train_rows(data: dict) -> list[str]:
    """One row per setting and thread count: rewritelab's tokens/s, share of the ceiling."""
    load = f"{data['load_average_start'][0]:.1f} -> {data['load_average_end'][0]:.1f}"
    rows = []
    for worker in data["workers"]:
        if worker.get("malloc", "kept") != "kept":
            continue
        ours = worker["variants"].get("rewritelab")
        if not ours:
            continue
        mfu = ours.get("mfu")
        share = f", {mfu:.1%} of the matmul ceiling" if isinstance(mfu, float) else ""
        threads = f"{worker['threads']} thread{'s' if worker['threads'] > 1 else ''}"
        model = data["settings"][worker["setting"]]["model"]
        shape = f"{model['layers']} layers, width {model['width']}"
        rows.append(
            f"| training step (`bench_train.py`, [train.md](train.md)) | {worker['setting']} "
            f"({shape}), {threads} | {ours['tokens_per_s']:,.0f} real tokens/s{share} "
            f"| {data['machine']['cpu_model']}, {data['machine']['usable_cores']} cores | {load} "
            f"| {data['date'][:10]} |"
        )
    return rows


def generate_rows(data: dict) -> list[str]:
    largest = max(data["rows"], key=lambda row: row["train_instructions"])
    return [
        f"| dataset generation (`bench_generate.py`) | {largest['examples_written']:,} examples, "
        f"I = {largest['train_instructions']:,} | {largest['examples_per_s']:,} examples/s, peak "
        f"{largest['peak_rss_mib']:.0f} MiB | {data['machine']} | – | {data['date'][:10]} |"
    ]


def mastery_rows(data: dict) -> list[str]:
    """Tokens to mastery (seen >= the threshold) per rung of the ladder, chosen recipe."""
    rows = []
    for rung in sorted(data["rungs"]):
        runs = [r for r in data["records"] if r["rung"] == rung and r["recipe"] == "base"]
        if not runs:
            continue
        reached = [r["tokens_to_mastery"] for r in runs if r["mastered"]]
        tokens = f"{sum(reached) / len(reached) / 1e6:.2f} M tokens" if reached else "not reached"
        speed = sum(r["tokens_per_s"] for r in runs) / len(runs)
        loads = [r["load_average_start"] for r in runs if r.get("load_average_start") is not None]
        load = f"{min(loads):.1f}-{max(loads):.1f} at start" if loads else "–"
        rows.append(
            f"| tokens to mastery (`bench_mastery.py`, [mastery.md](mastery.md)) | rung {rung}, "
            f"base recipe, {len(runs)} seeds | {len(reached)}/{len(runs)} mastered, {tokens} "
            f"to seen >= {data['mastered_at']} ({speed / 1e3:.1f} k tokens/s, 1 thread) | "
            f"{data['machine']['cores']} cores | {load} | – |"
        )
    return rows


def _load(data: dict) -> str:
    return f"{data['load_average_start'][0]:.1f} -> {data['load_average_end'][0]:.1f}"


def _machine(data: dict) -> str:
    return f"{data['machine']['cpu_model']}, {data['machine']['usable_cores']} cores"


def sweep_compare_rows(data: dict) -> list[str]:
    """The adaptive search against the dense grid: I50s, intervals and core-minutes."""
    cells = []
    for name in ("dense", "adaptive"):
        design, fit = data[name], data[name]["corrected"]
        low, high = fit["i50_ci"]
        cells.append(f"{name}: {design['runs']} runs, {design['core_minutes']:.0f} core-min, "
                     f"I50 {fit['i50']:.0f} ({low:.0f}-{high:.0f})")  # fmt: skip
    return [
        f"| adaptive search vs dense grid (`bench_sweep.py compare`, "
        f"[sweep_compare.md](sweep_compare.md)) | {data['experiment']} {data['preset']} "
        f"| {'; '.join(cells)}; ratio {data['core_minute_ratio']:.2f} "
        f"| {_machine(data)} | {_load(data)} | {data['date'][:10]} |"
    ]


def sweep_coverage_rows(data: dict) -> list[str]:
    adaptive = data["adaptive"]
    return [
        f"| interval coverage, simulated (`bench_sweep.py coverage`, "
        f"[sweep_coverage.md](sweep_coverage.md)) | adaptive search, {adaptive['searches']} "
        f"searches | {adaptive['coverage']:.1%} of 95% intervals hold the true I50 "
        f"({adaptive['mean_runs']:.1f} runs a search) | {_machine(data)} | {_load(data)} "
        f"| {data['date'][:10]} |"
    ]


def stacked_rows(data: dict) -> list[str]:
    """Stacked seeds against separate runs, at each thread count."""
    rows = []
    for row in data["rows"]:
        if row["mode"] == "stacked":
            rows.append(
                f"| stacked seeds (`bench_stacked.py`, [stacked.md](stacked.md)) | {row['seeds']} "
                f"seeds, {row['threads']} thread{'s' if row['threads'] > 1 else ''} "
                f"| {row['seeds_per_core_hour']:.2f} seeds per core-hour, "
                f"{row['x_separate_same_threads']:.2f}x separate runs at the same threads "
                f"| {_machine(data)} | {_load(data)} | {data['date'][:10]} |"
            )
    return rows


def write_summary(results: Path = RESULTS) -> Path:
    lines = [
        "# Benchmarks: the latest figures",
        "",
        "Generated by `python benchmarks/summarize.py` from each benchmark's JSON. Speed "
        "(tokens/s, share of the matmul ceiling) and sample efficiency (tokens to mastery) side "
        "by side; each row names its machine and the load average while it ran.",
        "",
        "| benchmark | setting | figure | machine | load | date |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in (("train.json", train_rows), ("generate.json", generate_rows),
                       ("mastery.json", mastery_rows)):  # fmt: skip
        lines += rows(json.loads((results / name).read_text(encoding="utf-8")))
    for name, rows in (("sweep_compare.json", sweep_compare_rows),
                       ("sweep_coverage.json", sweep_coverage_rows),
                       ("stacked.json", stacked_rows)):  # fmt: skip
        if (results / name).is_file():
            lines += rows(json.loads((results / name).read_text(encoding="utf-8")))
    lines += ["", "Write-ups without a JSON of their own:", ""]
    for name in WRITE_UPS:
        title = (results / name).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        lines.append(f"- [{name}]({name}): {title}")
    out = results / "README.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    print(f"wrote {write_summary()}")
