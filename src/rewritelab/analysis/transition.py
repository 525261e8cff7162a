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

SLOPE_MAX = 30.0  # per doubling of I: a step sharper than this is a step between grid points
MIDPOINT_MARGIN = 8.0  # doublings the midpoint may lie outside the grid
BOOTSTRAP_REPLICATES = 1000
BOOTSTRAP_SEED = 20240216  # fixed: the same data always gives the same interval
CONFIDENCE = 0.95
MIN_GRID_POINTS = 3  # distinct instruction counts needed to fit at all
WITHIN, BEYOND, BELOW = "within", "beyond_grid", "below_grid"


@dataclass(frozen=True)
class Observation:
    """Unseen accuracy of one run: its seed, its instruction count, and per-rule accuracies."""

    seed: int
    instructions: int
    accuracy: float
    by_rule: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LogisticFit:
    """A fitted 4-parameter logistic in x = log2(I)."""

    floor: float
    ceiling: float
    slope: float  # per doubling of I
    midpoint: float  # log2 I halfway between floor and ceiling

    def predict(self, instructions) -> np.ndarray:
        from scipy.special import expit

        x = np.log2(np.asarray(instructions, dtype=float))
        return self.floor + (self.ceiling - self.floor) * expit(self.slope * (x - self.midpoint))

    def crossing(self, threshold: float, grid: tuple[float, float]) -> tuple[float | None, str]:
        """The I where the curve meets `threshold`, or None and where it lies off `grid`."""
        low, high = sorted((self.floor, self.ceiling))
        if high <= threshold:
            return None, BEYOND
        if low >= threshold or self.slope <= 1e-9:
            constant_above = (self.floor + self.ceiling) / 2 >= threshold
            return None, BELOW if low >= threshold or constant_above else BEYOND
        ratio = (self.ceiling - self.floor) / (threshold - self.floor) - 1
        x = self.midpoint - math.log(ratio) / self.slope
        if x > math.log2(grid[1]):
            return None, BEYOND
        if x < math.log2(grid[0]):
            return None, BELOW
        return 2.0**x, WITHIN


def _initial_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    """Floor and ceiling from the lowest and highest mean, midpoint where the means pass
    halfway between them (or past the grid's end when they never rise)."""
    levels = np.unique(x)
    means = np.array([y[x == level].mean() for level in levels])
    floor, ceiling = (float(np.clip(v, 0.01, 0.99)) for v in (means[0], means.max()))
    midpoint = levels[-1] + 1.0
    halfway = (means[0] + means.max()) / 2
    above = np.nonzero(means >= halfway)[0]
    if means.max() - means[0] > 0.05 and above.size and above[0] > 0:
        i = above[0]
        fraction = (halfway - means[i - 1]) / (means[i] - means[i - 1])
        midpoint = levels[i - 1] + fraction * (levels[i] - levels[i - 1])
    return [floor, ceiling, 2.0, float(midpoint)]


def fit_logistic(instructions, accuracy, start: LogisticFit | None = None) -> LogisticFit:
    """Least-squares 4-parameter logistic of accuracy against log2(instructions).

    Without `start`, a few starting slopes are tried (a flat rise, a sharp step) and the best
    fit kept; with one (the bootstrap starts from the pooled fit), only that start.
    """
    from scipy.optimize import least_squares
    from scipy.special import expit

    x = np.log2(np.asarray(instructions, dtype=float))
    y = np.asarray(accuracy, dtype=float)
    lower = [0.0, 0.0, 0.0, x.min() - MIDPOINT_MARGIN]
    upper = [1.0, 1.0, SLOPE_MAX, x.max() + MIDPOINT_MARGIN]

    def residuals(p):
        return p[0] + (p[1] - p[0]) * expit(p[2] * (x - p[3])) - y

    def jacobian(p):
        s = expit(p[2] * (x - p[3]))
        ds = (p[1] - p[0]) * s * (1 - s)
        return np.column_stack([1 - s, s, ds * (x - p[3]), -ds * p[2]])

    if start is None:
        guess = _initial_guess(x, y)
        starts = [[guess[0], guess[1], slope, guess[3]] for slope in (guess[2], 0.5, 8.0)]
    else:
        starts = [[start.floor, start.ceiling, start.slope, start.midpoint]]
    best = None
    for guess in starts:
        guess = np.clip(guess, lower, upper)
        result = least_squares(residuals, guess, jac=jacobian, bounds=(lower, upper))
        if best is None or result.cost < best.cost - 1e-12:
            best = result
    floor, ceiling, slope, midpoint = (float(v) for v in best.x)
    return LogisticFit(floor, ceiling, slope, midpoint)


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


def _bootstrap(
    observations: list[Observation],
    pooled: LogisticFit,
    threshold: float,
    replicates: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """log2 I50 and slope of the pooled fit over resampled seeds (and rules within points)."""
    rng = np.random.default_rng(seed)
    seeds = sorted({o.seed for o in observations})
    by_seed = {s: [o for o in observations if o.seed == s] for s in seeds}
    with_rules = all(o.by_rule for o in observations)
    grid = (min(o.instructions for o in observations), max(o.instructions for o in observations))
    log2_i50s, slopes = np.empty(replicates), np.empty(replicates)
    fitted: dict[tuple, tuple[float, float]] = {}  # seeds-only resamples repeat: fit each once
    for b in range(replicates):
        chosen = rng.choice(seeds, size=len(seeds), replace=True)
        key = tuple(sorted(chosen))
        if not with_rules and key in fitted:
            log2_i50s[b], slopes[b] = fitted[key]
            continue
        xs, ys = [], []
        for s in chosen:
            for o in by_seed[s]:
                xs.append(o.instructions)
                if with_rules:
                    rules = np.asarray(o.by_rule)
                    ys.append(rules[rng.integers(0, len(rules), len(rules))].mean())
                else:
                    ys.append(o.accuracy)
        fit = fit_logistic(xs, ys, start=pooled)
        log2_i50s[b], slopes[b] = fitted[key] = _log2_i50(fit, threshold, grid), fit.slope
    return log2_i50s, slopes, with_rules


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
) -> dict:
    """The transition of one curve (one setting of the other factors) as JSON-able numbers
    (`replicates` defaults to BOOTSTRAP_REPLICATES)."""
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
    (low, low_status), (high, high_status) = map(_interval_bound, _percentile_interval(log2_i50s))
    result.update(
        i50=i50,
        i50_status=status,
        i50_ci=[low, high],
        i50_ci_status=[low_status, high_status],
        slope=pooled.slope,
        slope_ci=list(_percentile_interval(slopes)),
        width_doublings=2 * math.log(9) / pooled.slope if pooled.slope > 0 else None,
        fit=asdict(pooled),
        per_seed=[_seed_fit(observations, s, threshold, grid) for s in seeds],
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
    return (
        f"I50 = {value(result['i50'], result['i50_status'])} "
        f"({result['bootstrap']['confidence']:.0%} CI "
        f"{value(low, low_status)} – {value(high, high_status)})"
    )


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
