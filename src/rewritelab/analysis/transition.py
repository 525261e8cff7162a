"""Where generalisation switches on: a logistic fit of unseen accuracy against log2(I).

The paper describes a sharp step in unseen accuracy as the number of training instructions I
grows. This module turns that step into numbers with intervals:

- a 4-parameter logistic `floor + (ceiling - floor) / (1 + exp(-slope * (log2 I - midpoint)))`
  per seed and pooled over seeds (floor and ceiling bounded to [0, 1]);
- **I50**: where the fitted curve crosses accuracy 0.5 (the `threshold`), with a percentile
  bootstrap interval that resamples seeds and, where per-rule accuracies are stored, the test
  rules within each point; a fixed bootstrap seed makes it reproducible;
- the **slope** (per doubling of I) with its interval, and the width of the rise in doublings;
- the **share of seeds that generalise** (unseen accuracy >= 0.5) at each I;
- beside it, the interval widened for few seeds (`i50_ci_corrected`): the bootstrap I50s
  spread about the estimate by Student's t factor for the number of seeds, since a
  percentile bootstrap over 3-5 seeds is too narrow (`_widened`); `few_seeds_correction`
  makes it the interval (the adaptive search's);
- warnings where the estimate is fragile: fewer than 2 grid points on one side of I50, a slope
  at its bound (a step sharper than the grid resolves), fewer than 3 seeds.

An I50 outside the grid is never extrapolated: it is None with a status, `beyond_grid` (the
curve does not reach the threshold by the largest I, e.g. a seed that never generalises) or
`below_grid` (already above it at the smallest I). Needs numpy and scipy only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rewritelab.analysis.logistic import (  # noqa: F401  (WITHIN, BEYOND, BELOW re-exported)
    BELOW,
    BEYOND,
    SLOPE_MAX,
    WITHIN,
    LogisticFit,
    fit_logistic,
    fit_replicates,
)

BOOTSTRAP_REPLICATES = 1000
BOOTSTRAP_SEED = 20240216  # fixed: the same data always gives the same interval
CONFIDENCE = 0.95
MIN_GRID_POINTS = 3  # distinct instruction counts needed to fit at all


@dataclass(frozen=True)
class Observation:
    """Unseen accuracy of one run: its seed, its instruction count, and per-rule accuracies."""

    seed: int
    instructions: int
    accuracy: float
    by_rule: tuple[float, ...] | None = None


# ---------------------------------------------------------------- one curve, many seeds


def share_generalising(observations: list[Observation], threshold: float) -> dict[int, float]:
    """At each I, the fraction of seeds whose unseen accuracy reaches `threshold`."""
    shares = {}
    for level in sorted({o.instructions for o in observations}):
        at_level = [o.accuracy >= threshold for o in observations if o.instructions == level]
        shares[level] = sum(at_level) / len(at_level)
    return shares


def _percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """Percentile interval without interpolation, so +-inf (off the grid) stays meaningful."""
    ordered = np.sort(values)
    n = len(ordered)
    tail = (1 - CONFIDENCE) / 2
    low = ordered[max(0, math.floor(tail * n))]
    high = ordered[min(n - 1, math.ceil((1 - tail) * n) - 1)]
    return float(low), float(high)


def _log2_i50(fit: LogisticFit, threshold: float, grid: tuple[float, float]) -> float:
    """log2 I50 of a fit, with +inf beyond the grid and -inf below it."""
    i50, status = fit.crossing(threshold, grid)
    if i50 is not None:
        return math.log2(i50)
    return math.inf if status == BEYOND else -math.inf


def _resample(
    observations: list[Observation], rng: np.random.Generator, replicates: int
) -> tuple[list[tuple], list[np.ndarray], list[np.ndarray]]:
    """Bootstrap resamples: seeds drawn with replacement and, where per-rule accuracies are
    stored, the test rules within each point. Returns each replicate's seed multiset and its
    instruction counts and accuracies."""
    seeds = sorted({o.seed for o in observations})
    rows = {s: [i for i, o in enumerate(observations) if o.seed == s] for s in seeds}
    counts = np.array([o.instructions for o in observations], dtype=float)
    with_rules = all(o.by_rule for o in observations)
    if with_rules:
        rules = _padded_rules(observations)  # (observations, most rules), NaN past a run's own
        sizes = np.array([len(o.by_rule) for o in observations])
    accuracies = np.array([o.accuracy for o in observations])
    keys, xs, ys = [], [], []
    for _ in range(replicates):
        chosen = rng.choice(seeds, size=len(seeds), replace=True)
        keys.append(tuple(sorted(chosen)))
        drawn = np.array([i for s in chosen for i in rows[s]])
        xs.append(counts[drawn])
        if with_rules:  # each point's rules drawn with replacement from its own
            picks = (rng.random((len(drawn), rules.shape[1])) * sizes[drawn, None]).astype(int)
            picked = np.take_along_axis(rules[drawn], picks, axis=1)
            used = np.arange(rules.shape[1]) < sizes[drawn, None]
            ys.append(np.where(used, picked, 0.0).sum(axis=1) / sizes[drawn])
        else:
            ys.append(accuracies[drawn])
    return keys, xs, ys


def _padded_rules(observations: list[Observation]) -> np.ndarray:
    width = max(len(o.by_rule) for o in observations)
    return np.array([list(o.by_rule) + [np.nan] * (width - len(o.by_rule)) for o in observations])


def _bootstrap(
    observations: list[Observation],
    pooled: LogisticFit,
    threshold: float,
    replicates: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """log2 I50 and slope of the pooled fit over resampled seeds (and rules within points)."""
    rng = np.random.default_rng(seed)
    with_rules = all(o.by_rule for o in observations)
    grid = (min(o.instructions for o in observations), max(o.instructions for o in observations))
    keys, xs, ys = _resample(observations, rng, replicates)
    if not with_rules:  # seeds-only resamples repeat: fit each distinct one once
        distinct = {key: i for i, key in reversed(list(enumerate(keys)))}
        first = sorted(distinct.values())
        fits = dict(zip(first, fit_replicates([xs[i] for i in first], [ys[i] for i in first],
                                              pooled), strict=True))  # fmt: skip
        chosen = [fits[distinct[key]] for key in keys]
    else:
        chosen = fit_replicates(xs, ys, pooled)
    log2_i50s = np.array([_log2_i50(fit, threshold, grid) for fit in chosen])
    return log2_i50s, np.array([fit.slope for fit in chosen]), with_rules


def _widened(
    log2_i50s: np.ndarray, log2_i50: float, seeds: int, grid: tuple[float, float]
) -> np.ndarray:
    """Bootstrap I50s spread about the estimate by the small-sample factor of `seeds`
    clusters, t(seeds - 1) / z * sqrt(seeds / (seeds - 1)): a bootstrap over k seeds
    underestimates the spread of a mean over k seeds by about sqrt((k - 1) / k), and its
    tails are those of a normal, not of Student's t with k - 1 degrees of freedom. A value
    pushed past the grid is off it (+-inf), never extrapolated."""
    from scipy.stats import norm, t

    if seeds < 2:
        return log2_i50s
    tail = (1 + CONFIDENCE) / 2
    factor = t.ppf(tail, seeds - 1) / norm.ppf(tail) * math.sqrt(seeds / (seeds - 1))
    with np.errstate(invalid="ignore"):
        spread = log2_i50 + factor * (log2_i50s - log2_i50)
    spread = np.where(spread > math.log2(grid[1]), np.inf, spread)
    return np.where(spread < math.log2(grid[0]), -np.inf, spread)


def _interval_bound(log2_value: float) -> tuple[float | None, str]:
    if math.isinf(log2_value):
        return None, BEYOND if log2_value > 0 else BELOW
    return 2.0**log2_value, WITHIN


def _warnings(i50: float | None, levels: list[int], slope: float, seeds: int) -> list[str]:
    found = []
    if i50 is not None:
        below = sum(1 for level in levels if level < i50)
        above = sum(1 for level in levels if level > i50)
        if min(below, above) < 2:
            found.append(
                f"I50 has {below} grid point(s) below and {above} above it: with fewer than 2 "
                "on one side the estimate is biased; add grid points around it"
            )
    if slope >= 0.99 * SLOPE_MAX:
        found.append("slope at its bound: the step is sharper than the grid resolves")
    if seeds < 3:
        found.append(f"only {seeds} seed(s): the interval is rough")
    return found


def analyse_transition(
    observations: list[Observation],
    threshold: float = 0.5,
    generalise_at: float = 0.5,
    replicates: int | None = None,
    bootstrap_seed: int = BOOTSTRAP_SEED,
    per_seed: bool = True,
    few_seeds_correction: bool = False,
) -> dict:
    """The transition of one curve (one setting of the other factors) as JSON-able numbers
    (`replicates` defaults to BOOTSTRAP_REPLICATES; `per_seed`: also fit each seed alone)."""
    replicates = replicates or BOOTSTRAP_REPLICATES
    levels = sorted({o.instructions for o in observations})
    seeds = sorted({o.seed for o in observations})
    result: dict = {
        "threshold": threshold,
        "grid": levels,
        "seeds": len(seeds),
        "share_generalising": share_generalising(observations, generalise_at),
        "generalise_at": generalise_at,
    }
    if len(levels) < MIN_GRID_POINTS:
        result.update(i50=None, i50_status="too_few_grid_points", warnings=[
            f"{len(levels)} instruction counts: a logistic needs at least {MIN_GRID_POINTS}"
        ])  # fmt: skip
        return result
    grid = (levels[0], levels[-1])
    pooled = fit_logistic(
        [o.instructions for o in observations], [o.accuracy for o in observations]
    )
    i50, status = pooled.crossing(threshold, grid)
    log2_i50s, slopes, with_rules = _bootstrap(
        observations, pooled, threshold, replicates, bootstrap_seed
    )
    widened = _widened(log2_i50s, math.log2(i50), len(seeds), grid) if i50 else log2_i50s
    corrected = [_interval_bound(v) for v in _percentile_interval(widened)]
    if few_seeds_correction:
        log2_i50s = widened
    (low, low_status), (high, high_status) = map(_interval_bound, _percentile_interval(log2_i50s))
    result.update(
        i50_ci_corrected=[bound for bound, _ in corrected],
        i50_ci_corrected_status=[status for _, status in corrected],
        i50=i50,
        i50_status=status,
        i50_ci=[low, high],
        i50_ci_status=[low_status, high_status],
        slope=pooled.slope,
        slope_ci=list(_percentile_interval(slopes)),
        width_doublings=2 * math.log(9) / pooled.slope if pooled.slope > 0 else None,
        fit=asdict(pooled),
        per_seed=[_seed_fit(observations, s, threshold, grid) for s in seeds] if per_seed else [],
        bootstrap={
            "replicates": replicates,
            "seed": bootstrap_seed,
            "confidence": CONFIDENCE,
            "resampled": "seeds and test rules" if with_rules else "seeds",
        },
        warnings=_warnings(i50, levels, pooled.slope, len(seeds)),
    )
    return result


def _seed_fit(
    observations: list[Observation], seed: int, threshold: float, grid: tuple[float, float]
) -> dict:
    mine = [o for o in observations if o.seed == seed]
    if len({o.instructions for o in mine}) < MIN_GRID_POINTS:
        return {"seed": seed, "i50": None, "i50_status": "too_few_grid_points"}
    fit = fit_logistic([o.instructions for o in mine], [o.accuracy for o in mine])
    i50, status = fit.crossing(threshold, grid)
    return {"seed": seed, "i50": i50, "i50_status": status, **asdict(fit)}


OFF_GRID = {BEYOND: "beyond the grid", BELOW: "below the grid"}


def describe_i50(result: dict) -> str:
    """'I50 = 390 (95% CI 250 – 610)', with off-grid values named, not extrapolated."""

    def value(number, status):
        return f"{number:.0f}" if number is not None else OFF_GRID.get(status, status)

    low, high = result["i50_ci"]
    low_status, high_status = result["i50_ci_status"]
    text = (
        f"I50 = {value(result['i50'], result['i50_status'])} "
        f"({result['bootstrap']['confidence']:.0%} CI "
        f"{value(low, low_status)} – {value(high, high_status)}"
    )
    if "i50_ci_corrected" in result and result["i50_ci_corrected"] != result["i50_ci"]:
        (c_low, c_high), (s_low, s_high) = (
            result["i50_ci_corrected"],
            result["i50_ci_corrected_status"],
        )
        text += (
            f", widened for {result['seeds']} seeds {value(c_low, s_low)} – {value(c_high, s_high)}"
        )
    return text + ")"


def describe(result: dict) -> str:
    """One line for a report: I50 with its interval, slope, and what the bootstrap resampled."""
    if result.get("i50_status") == "too_few_grid_points":
        return "no logistic fit (" + result["warnings"][0] + ")"
    slope_low, slope_high = result["slope_ci"]
    boot = result["bootstrap"]
    return (
        f"{describe_i50(result)}; "
        f"slope {result['slope']:.2f} per doubling ({slope_low:.2f} – {slope_high:.2f}); "
        f"{result['seeds']} seeds, bootstrap over {boot['resampled']} "
        f"({boot['replicates']} replicates)"
    )
