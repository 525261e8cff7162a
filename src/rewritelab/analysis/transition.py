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
- on request (`few_seeds_correction`, the adaptive search's), the bootstrap I50s spread
  about the estimate by Student's t factor for the number of seeds: a percentile bootstrap
  over 3-5 seeds is too narrow (`_widened`);
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


# ---------------------------------------------------------------- many fits at once

DAMPING_START, DAMPING_UP, DAMPING_DOWN = 1e-3, 4.0, 3.0
BATCH_ITERATIONS = 200
DAMPING_GIVE_UP = 1e12  # a fit whose steps keep failing is left to scipy
CONVERGED_GRADIENT = 1e-8  # |gradient of the cost| at which a batched fit is done (scipy's gtol)
STEEP_SLOPE = 6.0  # per doubling: steeper, the crossing between grid points is barely fixed
BOUND_MARGIN = 1e-9  # a parameter this close to a bound that the cost pushes on sits on it


def _gradient_and_hessian(p, x, r, s, weight) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (B, 4) and Gauss-Newton Hessian (B, 4, 4) of half the squared residuals."""
    ds = (p[:, 1:2] - p[:, 0:1]) * s * (1 - s)
    jac = np.stack([1 - s, s, ds * (x - p[:, 3:4]), -ds * p[:, 2:3]], axis=2) * weight[..., None]
    return np.einsum("bni,bn->bi", jac, r), np.einsum("bni,bnj->bij", jac, jac)


def _held_at_bounds(p, gradient, lower, upper) -> np.ndarray:
    """Parameters on a bound that the cost would push past it: they stay there."""
    return ((p <= lower) & (gradient > 0)) | ((p >= upper) & (gradient < 0))


def fit_replicates(xs: list[np.ndarray], ys: list[np.ndarray], start: LogisticFit) -> list:
    """`fit_logistic(x, y, start)` for many (x, y) at once: Levenberg-Marquardt on all of them
    together in numpy (1,000 bootstrap replicates in tens of ms, against seconds one by one).
    A parameter that the cost pushes against its bound stays on it (the bounds' optimality
    conditions). A fit that does not converge so, or whose slope reaches its bound, is done
    again by `fit_logistic`; one steeper than `STEEP_SLOPE` (a step between two grid points,
    where crossings far apart fit almost equally) is done by both and the better kept. So
    every result is scipy's bounded least-squares fit from the same start, to its tolerance,
    or a better one."""
    x, y, weight, lower, upper = _stacked(xs, ys)
    p = np.tile([start.floor, start.ceiling, start.slope, start.midpoint], (len(xs), 1))
    p = np.clip(p, lower, upper)
    r, s = _residuals(p, x, y, weight)
    cost = (r**2).sum(axis=1)
    damping = np.full(len(xs), DAMPING_START)
    done = np.zeros(len(xs), dtype=bool)
    active = np.arange(len(xs))
    for _ in range(BATCH_ITERATIONS):
        a = active
        gradient, hessian = _gradient_and_hessian(p[a], x[a], r[a], s[a], weight[a])
        held = _held_at_bounds(p[a], gradient, lower[a] + BOUND_MARGIN, upper[a] - BOUND_MARGIN)
        converged = np.all(held | (np.abs(gradient) < CONVERGED_GRADIENT), axis=1)
        done[a[converged]] = True
        on_bound = held[:, 2] & (p[a, 2] >= SLOPE_MAX - BOUND_MARGIN)  # left to scipy
        going = ~converged & ~on_bound & (damping[a] < DAMPING_GIVE_UP)
        active, gradient, hessian, held = a[going], gradient[going], hessian[going], held[going]
        if not len(active):
            break
        a = active
        hessian = np.where(held[:, :, None] | held[:, None, :], 0.0, hessian)
        diagonal = np.einsum("bii->bi", hessian)
        damped = hessian + (damping[a, None] * diagonal + held + 1e-12)[..., None] * np.eye(4)
        step = np.linalg.solve(damped, np.where(held, 0.0, gradient)[..., None])[..., 0]
        trial = np.clip(p[a] - step, lower[a], upper[a])
        trial_r, trial_s = _residuals(trial, x[a], y[a], weight[a])
        trial_cost = (trial_r**2).sum(axis=1)
        better = trial_cost < cost[a]
        kept = a[better]
        p[kept], r[kept], s[kept], cost[kept] = (
            trial[better],
            trial_r[better],
            trial_s[better],
            trial_cost[better],
        )
        damping[a] = np.where(better, damping[a] / DAMPING_DOWN, damping[a] * DAMPING_UP)
    done &= p[:, 2] < SLOPE_MAX - BOUND_MARGIN
    fits = []
    for i in range(len(xs)):
        fit = LogisticFit(*(float(v) for v in p[i]))
        if not done[i]:
            fit = fit_logistic(xs[i], ys[i], start)
        elif fit.slope > STEEP_SLOPE:  # a step between grid points: take the better of both
            alone = fit_logistic(xs[i], ys[i], start)
            fit = alone if _cost(alone, xs[i], ys[i]) <= _cost(fit, xs[i], ys[i]) else fit
        fits.append(fit)
    return fits


def _cost(fit: LogisticFit, instructions: np.ndarray, accuracy: np.ndarray) -> float:
    return float(((fit.predict(instructions) - accuracy) ** 2).sum())


def _stacked(xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """log2 I, accuracy and weight as (B, N) arrays (short replicates padded with weight 0),
    and each replicate's bounds (B, 4), as `fit_logistic` sets them."""
    shape = (len(xs), max(len(v) for v in xs))
    x, y, weight = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for i, (instructions, accuracy) in enumerate(zip(xs, ys, strict=True)):
        x[i, : len(instructions)] = np.log2(instructions)
        y[i, : len(accuracy)] = accuracy
        weight[i, : len(instructions)] = 1.0
    low = np.where(weight > 0, x, np.inf).min(axis=1)
    high = np.where(weight > 0, x, -np.inf).max(axis=1)
    zeros, ones = np.zeros(len(xs)), np.ones(len(xs))
    lower = np.column_stack([zeros, zeros, zeros, low - MIDPOINT_MARGIN])
    upper = np.column_stack([ones, ones, np.full(len(xs), SLOPE_MAX), high + MIDPOINT_MARGIN])
    return x, y, weight, lower, upper


def _residuals(p, x, y, weight) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of each replicate's curve (B, N), and its sigmoid term."""
    from scipy.special import expit

    s = expit(p[:, 2:3] * (x - p[:, 3:4]))
    return (p[:, 0:1] + (p[:, 1:2] - p[:, 0:1]) * s - y) * weight, s


def _widened(log2_i50s: np.ndarray, log2_i50: float, seeds: int) -> np.ndarray:
    """Bootstrap I50s spread about the estimate by the small-sample factor of `seeds`
    clusters, t(seeds - 1) / z * sqrt(seeds / (seeds - 1)): a bootstrap over k seeds
    underestimates the spread of a mean over k seeds by about sqrt((k - 1) / k), and its
    tails are those of a normal, not of Student's t with k - 1 degrees of freedom."""
    from scipy.stats import norm, t

    if seeds < 2:
        return log2_i50s
    tail = (1 + CONFIDENCE) / 2
    factor = t.ppf(tail, seeds - 1) / norm.ppf(tail) * math.sqrt(seeds / (seeds - 1))
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(log2_i50s), log2_i50 + factor * (log2_i50s - log2_i50),
                        log2_i50s)  # fmt: skip


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
    if few_seeds_correction and i50 is not None:
        log2_i50s = _widened(log2_i50s, math.log2(i50), len(seeds))
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
