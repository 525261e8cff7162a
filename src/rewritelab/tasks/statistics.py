"""What inspections share: summaries of counts, histograms, file digests, check lines."""

from __future__ import annotations

import numpy as np


def describe(values: np.ndarray) -> dict:
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 3),
        "max": int(values.max()),
    }


def histogram(counts: dict) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{key}: {value} ({value / total:.1%})" for key, value in counts.items())


def check_lines(checks: dict[str, bool]) -> list[str]:
    """The checks of an inspection, one `[ok]` or `[FAIL]` line each."""
    return ["checks:"] + [
        f"  [{'ok' if passed else 'FAIL'}] {check}" for check, passed in checks.items()
    ]


def split_header(name: str, summary: dict, unit: str, units: str) -> list[str]:
    """The first lines of a split in an inspection: its examples, instructions (`units`) and
    how many examples each has."""
    per = summary[f"examples_per_{unit}"]
    return [
        f"\n[{name}] {summary['examples']} examples, {summary[units]} {units}",
        f"  examples per {unit}: min {per['min']}, median {per['median']:g}, "
        f"mean {per['mean']:g}, max {per['max']}",
    ]


def length_lines(lengths: dict, sides: tuple[str, ...]) -> list[str]:
    """One line per side of a record (x, z, input, ...): the least, mean and greatest length."""
    return [
        f"  |{side}|: min {lengths[side]['min']}, mean {lengths[side]['mean']:g}, "
        f"max {lengths[side]['max']}"
        for side in sides
    ]
