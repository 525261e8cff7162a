"""Two results databases compared run by run: does a rerun reproduce the runs of another?

Finished runs are matched by experiment, grid factors and seed (not by point id, which also
hashes the generator's code and changes when that code does; not by preset, so that a preset
with more seeds matches the one it extends). They are compared on everything a run stores
but its timings (`TIMING_KEYS`): accuracies, breakdowns, the final training loss and the
whole evaluation history. A metric that only one side records (written by a later version)
is left out, and named when it is a run's own metric rather than a field of its history.
Their resolved configs are compared too, so that a difference of settings (another learning
rate under the same factors) is named as such. On a CPU, at the same thread count, the same
config and seed give the same metrics: a run whose config is the same and whose metrics
differ did not reproduce. Where one database holds a run twice (the same factors and seed
under two presets), its last row counts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from rewritelab.core.config import flatten
from rewritelab.sweep.database import ResultsDatabase

TIMING_KEYS = frozenset({"elapsed_s", "tokens_per_s", "steps_per_s"})
SHOWN_METRICS = ("seen_accuracy", "unseen_accuracy")  # printed beside each differing run

RunKey = tuple[str, str, int]  # (experiment, factors as sorted JSON, seed)


def without_timings(value: Any) -> Any:
    """`value` with every TIMING_KEYS entry removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def finished_runs(path: str | Path) -> dict[RunKey, dict]:
    """Every finished run of a database (opened read-only): its metrics, timings left out,
    and its resolved config."""
    database = ResultsDatabase(path, readonly=True)
    try:
        rows = database.rows()
    finally:
        database.close()
    return {
        (row["experiment"], json.dumps(row["factors"], sort_keys=True), row["seed"]): {
            "metrics": without_timings(row["metrics"] or {}),
            "config": flatten(row["config"] or {}),
        }
        for row in rows
        if row["status"] == "done"
    }


def compare_databases(first: str | Path, second: str | Path) -> dict:
    """Run counts of both databases, the runs they share, the config keys that differ and
    the metrics only one side records (each with how many shared runs), and each shared run
    whose metrics differ: its key, those metrics, its config keys that differ and the
    SHOWN_METRICS of both."""
    runs = [finished_runs(first), finished_runs(second)]
    common = sorted(set(runs[0]) & set(runs[1]))
    differing, config_changes, one_sided = [], Counter(), Counter()
    for key in common:
        first_run, second_run = runs[0][key], runs[1][key]
        a, b = first_run["metrics"], second_run["metrics"]
        config_changed = changed_keys(first_run["config"], second_run["config"])
        config_changes.update(config_changed)
        one_sided.update(a.keys() ^ b.keys())
        changed = sorted(name for name in a.keys() & b.keys() if not agree(a[name], b[name]))
        if changed:
            differing.append({
                "run": key,
                "changed": changed,
                "config_changed": config_changed,
                "shown": {name: (a.get(name), b.get(name)) for name in SHOWN_METRICS},
            })  # fmt: skip
    return {
        "runs": [len(r) for r in runs],
        "common": len(common),
        "config_changes": dict(sorted(config_changes.items())),
        "one_sided": dict(sorted(one_sided.items())),
        "differing": differing,
    }


def agree(a: Any, b: Any) -> bool:
    """Equal wherever both record a value: dict keys on one side only are left out (at any
    depth); lists must have the same length."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(agree(a[key], b[key]) for key in a.keys() & b.keys())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(agree(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def changed_keys(a: dict, b: dict) -> list[str]:
    """The keys whose values differ between two dicts (missing on one side counts)."""
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def format_comparison(result: dict, names: tuple[str, str]) -> str:
    """A readable summary: counts, then one line per differing run."""
    identical = result["common"] - len(result["differing"])
    lines = [
        f"{names[0]}: {result['runs'][0]} finished runs; {names[1]}: {result['runs'][1]}",
        f"{result['common']} runs in both (same experiment, factors and seed): "
        f"{identical} with identical metrics, {len(result['differing'])} differ (timings aside)",
    ]
    if result["config_changes"]:
        changes = ", ".join(f"{key} ({n} runs)" for key, n in result["config_changes"].items())
        lines.append(f"config keys that differ between shared runs: {changes}")
    if result["one_sided"]:
        left_out = ", ".join(f"{key} ({n} runs)" for key, n in result["one_sided"].items())
        lines.append(f"metrics recorded in one database only, left out: {left_out}")
    for entry in result["differing"]:
        experiment, factors, seed = entry["run"]
        shown = ", ".join(f"{name} {a} -> {b}" for name, (a, b) in entry["shown"].items())
        config = entry["config_changed"]
        why = f"config differs: {', '.join(config)}" if config else "same config"
        lines.append(
            f"  differs: {experiment} {factors} seed {seed} ({why}): "
            f"{', '.join(entry['changed'])} ({shown})"
        )
    return "\n".join(lines)
