"""Confidence intervals for exact-match accuracies that stay honest at 0 and 1.

A Wald interval (p ± z·sqrt(p(1-p)/n)) has width 0 when every answer is right or every one
is wrong; the Wilson score interval does not, and keeps close to its nominal coverage for
small n. The report pools a point's seeds (their correct answers over their examples), so the
interval speaks of the test examples; the seed standard error beside it speaks of the seeds.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: `successes` out of `n` trials."""
    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds, not rounding's
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def pooled_wilson(metrics: list[dict], split: str) -> tuple[float, float] | None:
    """The Wilson interval of `split`'s accuracy over the examples of every run (their
    `{split}_accuracy` and `{split}_examples`), or None where a run lacks its count."""
    counts = [(m.get(f"{split}_accuracy"), m.get(f"{split}_examples")) for m in metrics]
    if not counts or any(a is None or not isinstance(n, int) or n <= 0 for a, n in counts):
        return None
    correct = sum(round(accuracy * n) for accuracy, n in counts)
    return wilson_interval(correct, sum(n for _, n in counts))
