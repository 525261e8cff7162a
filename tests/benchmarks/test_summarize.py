"""benchmarks/summarize.py: the benchmarks' README is one row per measured setting, with the
figures of each benchmark's own JSON, and is current."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_summary_has_each_benchmarks_figures_and_is_current(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from summarize import write_summary
    finally:
        sys.path.pop(0)
    text = write_summary(results).read_text()
    train = json.loads((results / "train.json").read_text())
    ours = [w for w in train["workers"] if w["setting"] == "cpu-preset" and w["threads"] == 1
            and w.get("malloc", "kept") == "kept"][0]["variants"]["rewritelab"]  # fmt: skip
    assert f"{ours['tokens_per_s']:,.0f} real tokens/s, {ours['mfu']:.1%}" in text
    assert "rung b, base recipe" in text and "M tokens to seen >= 0.95" in text
    compare = json.loads((results / "sweep_compare.json").read_text())
    assert f"adaptive: {compare['adaptive']['runs']} runs" in text
    assert f"ratio {compare['core_minute_ratio']:.2f}" in text
    stacked = json.loads((results / "stacked.json").read_text())
    four = next(r for r in stacked["rows"] if r["mode"] == "stacked" and r["seeds"] == 4
                and r["threads"] == 1)  # fmt: skip
    assert f"{four['x_separate_same_threads']:.2f}x separate runs at the same threads" in text
    assert text == (ROOT / "benchmarks" / "results" / "README.md").read_text(), (
        "benchmarks/results/README.md is stale: python benchmarks/summarize.py"
    )
