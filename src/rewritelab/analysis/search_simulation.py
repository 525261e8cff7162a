"""How often the adaptive search's 95% interval holds the true I50: searches on synthetic
sigmoid outcomes whose I50 is known, with no training.

Each simulated experiment draws a true curve (midpoint, slope, ceiling) and a shift of its
midpoint per seed (a seed draws the training rules and the initial weights, so some seeds
generalise earlier than others). A run at (I, seed) scores each of its test rules on a few
examples drawn from that seed's curve, as E1's evaluation does. The true I50 is where the
mean curve over seeds crosses 0.5. Every outcome is a pure function of (simulation seed, I,
seed), so a simulation reruns exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rewritelab.analysis.adaptive_search import Round, SearchSettings, search
from rewritelab.analysis.transition import Observation


@dataclass(frozen=True)
class SyntheticCurve:
    """Unseen accuracy against I: `ceiling * expit(slope * (log2 I - midpoint - shift))` with
    a normal `shift` per seed (standard deviation `seed_spread`, in doublings)."""

    midpoint: float  # log2 I
    slope: float  # per doubling
    ceiling: float
    seed_spread: float
    test_rules: int = 100
    examples_per_rule: int = 5

    def true_i50(self) -> float:
        """Where the mean over seeds crosses 0.5 (Gauss-Hermite quadrature over the shift)."""
        from scipy.optimize import brentq
        from scipy.special import expit

        nodes, weights = np.polynomial.hermite_e.hermegauss(40)
        weights = weights / weights.sum()

        def mean_minus_half(x: float) -> float:
            shifted = x - self.midpoint - self.seed_spread * nodes
            curves = self.ceiling * expit(self.slope * shifted)
            return float(weights @ curves) - 0.5

        x = brentq(mean_minus_half, self.midpoint - 20, self.midpoint + 20)
        return 2.0**x

    def observe(self, simulation: int, instructions: int, seed: int) -> Observation:
        """The outcome of the run (instructions, seed) of simulation `simulation`."""
        from scipy.special import expit

        shift = np.random.default_rng([simulation, seed]).normal(0.0, self.seed_spread)
        p = self.ceiling * expit(self.slope * (math.log2(instructions) - self.midpoint - shift))
        rng = np.random.default_rng([simulation, seed, instructions])
        correct = rng.binomial(self.examples_per_rule, p, self.test_rules)
        by_rule = tuple(float(v) for v in correct / self.examples_per_rule)
        return Observation(seed, instructions, float(np.mean(by_rule)), by_rule)


def draw_curve(simulation: int, low: int, high: int) -> SyntheticCurve:
    """A curve for simulation `simulation`: I50 well inside `low`..`high`, a slope from gentle
    to steep, a ceiling below 1 and seeds that differ, as in the committed E1 sweeps."""
    rng = np.random.default_rng([simulation, 0x5EA2C4])
    midpoint = rng.uniform(math.log2(low) + 0.5, math.log2(high) - 0.5)
    return SyntheticCurve(
        midpoint=float(midpoint), slope=float(rng.uniform(1.5, 6.0)),
        ceiling=float(rng.uniform(0.9, 1.0)), seed_spread=float(rng.uniform(0.05, 0.3)),
    )  # fmt: skip


@dataclass(frozen=True)
class SimulatedSearch:
    """One search on a synthetic curve: its rounds, and whether its interval holds the truth."""

    curve: SyntheticCurve
    true_i50: float
    rounds: list[Round]

    @property
    def covered(self) -> bool:
        low, high = self.rounds[-1].i50_ci
        return low is not None and high is not None and low <= self.true_i50 <= high

    @property
    def runs(self) -> int:
        return self.rounds[-1].runs


def simulate(simulation: int, low: int, high: int, settings: SearchSettings) -> SimulatedSearch:
    """Run the adaptive search once on the synthetic curve of `simulation`."""
    curve = draw_curve(simulation, low, high)

    def observe(planned: list[tuple[int, int]]) -> list[Observation]:
        return [curve.observe(simulation, level, seed) for level, seed in planned]

    return SimulatedSearch(curve, curve.true_i50(), search(low, high, settings, observe))


def coverage(searches: list[SimulatedSearch]) -> dict:
    """The share of searches whose final interval holds the true I50, with a binomial
    standard error, and how the searches ended."""
    held = sum(s.covered for s in searches)
    share = held / len(searches)
    stops = {}
    for s in searches:
        key = s.rounds[-1].stop.split(":")[0]
        stops[key] = stops.get(key, 0) + 1
    return {
        "searches": len(searches),
        "covered": held,
        "coverage": share,
        "coverage_stderr": math.sqrt(share * (1 - share) / len(searches)),
        "stops": stops,
        "mean_runs": float(np.mean([s.runs for s in searches])),
        "mean_width_doublings": float(
            np.mean(
                [s.rounds[-1].width_doublings for s in searches if s.rounds[-1].width_doublings]
            )
        ),  # fmt: skip
    }
