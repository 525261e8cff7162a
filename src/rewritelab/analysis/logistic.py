"""The 4-parameter logistic of unseen accuracy against log2(I), and its least-squares fits:
one curve at a time with scipy (`fit_logistic`), or a thousand bootstrap replicates at once
(`fit_replicates`, a batched Levenberg-Marquardt in numpy that gives scipy's fits)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SLOPE_MAX = 30.0  # per doubling of I: a step sharper than this is a step between grid points
MIDPOINT_MARGIN = 8.0  # doublings the midpoint may lie outside the grid
WITHIN, BEYOND, BELOW = "within", "beyond_grid", "below_grid"


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


# ---------------------------------------------------------------- many fits at once

DAMPING_START, DAMPING_UP, DAMPING_DOWN = 1e-3, 4.0, 3.0
BATCH_ITERATIONS = 200
DAMPING_GIVE_UP = 1e12  # a fit whose steps keep failing is left to scipy
CONVERGED_GRADIENT = 1e-8  # |gradient of the cost| at which a batched fit is done (scipy's gtol)
STEEP_RISE = 6.0  # slope x the gap of counts around the midpoint: above, a step between them
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
    again by `fit_logistic`; one that rises by more than `STEEP_RISE` across the gap of
    counts around its midpoint (a step between two counts, where crossings far apart fit
    almost equally) is done by both and the better kept. So
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
    with np.errstate(invalid="ignore"):  # a flat fit (slope 0) off the counts: not steep
        steep = p[:, 2] * _gap_around(p[:, 3], x, weight) > STEEP_RISE
    fits = []
    for i in range(len(xs)):
        fit = LogisticFit(*(float(v) for v in p[i]))
        if not done[i]:
            fit = fit_logistic(xs[i], ys[i], start)
        elif steep[i]:  # a step between two counts: take the better of both fits
            alone = fit_logistic(xs[i], ys[i], start)
            fit = alone if _cost(alone, xs[i], ys[i]) <= _cost(fit, xs[i], ys[i]) else fit
        fits.append(fit)
    return fits


def _gap_around(midpoint: np.ndarray, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per replicate, the distance in doublings between the counts on either side of the
    midpoint (infinite where it lies off them)."""
    below = np.where((x <= midpoint[:, None]) & (weight > 0), x, -np.inf).max(axis=1)
    above = np.where((x >= midpoint[:, None]) & (weight > 0), x, np.inf).min(axis=1)
    return above - below


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
