"""The transition fit: known I50 and slope recovered, off-grid cases, bootstrap determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewritelab.analysis import transition
from rewritelab.analysis.transition import (
    BELOW,
    BEYOND,
    WITHIN,
    LogisticFit,
    Observation,
    analyse_transition,
    describe,
    fit_logistic,
)

GRID = [2**k for k in range(2, 13)]  # 4 ... 4096, one point per doubling


def curve(instructions, floor, ceiling, slope, midpoint_i):
    x = math.log2(instructions) - math.log2(midpoint_i)
    return floor + (ceiling - floor) / (1 + math.exp(-slope * x))


def i_at(threshold, floor, ceiling, slope, midpoint_i):
    """Closed form: where the curve above meets `threshold`."""
    return midpoint_i * 2 ** (-math.log((ceiling - floor) / (threshold - floor) - 1) / slope)


def observations(grid, seeds, rules, noise, rng, **shape):
    found = []
    for seed in range(seeds):
        for instructions in grid:
            p = curve(instructions, **shape)
            per_rule = np.clip(rng.normal(p, noise, rules), 0, 1) if rules else None
            accuracy = float(per_rule.mean()) if rules else p
            found.append(Observation(seed, instructions, accuracy,
                                     tuple(per_rule) if rules else None))  # fmt: skip
    return found


def test_noise_free_curves_give_back_their_parameters():
    for floor, ceiling, slope, midpoint in [(0.0, 1.0, 1.5, 300), (0.1, 0.8, 3.0, 50)]:
        accuracy = [curve(i, floor, ceiling, slope, midpoint) for i in GRID]
        fit = fit_logistic(GRID, accuracy)
        assert fit.floor == pytest.approx(floor, abs=1e-3)
        assert fit.ceiling == pytest.approx(ceiling, abs=1e-3)
        assert fit.slope == pytest.approx(slope, rel=1e-2)
        assert 2**fit.midpoint == pytest.approx(midpoint, rel=1e-2)
        i50, status = fit.crossing(0.5, (GRID[0], GRID[-1]))
        assert status == WITHIN
        assert i50 == pytest.approx(i_at(0.5, floor, ceiling, slope, midpoint), rel=1e-2)


def test_noisy_seeds_and_rules_recover_i50_inside_a_tight_interval():
    rng = np.random.default_rng(1)
    shape = {"floor": 0.02, "ceiling": 0.95, "slope": 2.0, "midpoint_i": 200}
    found = observations(GRID, 3, 100, 0.15, rng, **shape)
    result = analyse_transition(found, replicates=200)
    true_i50 = i_at(0.5, **shape)
    assert result["i50"] == pytest.approx(true_i50, rel=0.1)
    low, high = result["i50_ci"]
    assert low < true_i50 < high and high / low < 1.5
    assert result["slope"] == pytest.approx(2.0, rel=0.2)
    assert result["slope_ci"][0] < result["slope"] < result["slope_ci"][1]
    assert result["bootstrap"]["resampled"] == "seeds and test rules"
    assert result["warnings"] == []  # 3 seeds, several grid points either side
    # every seed is below 0.5 up to 128 and above from 256 on (true I50 = 193)
    assert [result["share_generalising"][i] for i in (128, 256)] == [0.0, 1.0]
    assert all(s["i50_status"] == WITHIN for s in result["per_seed"])
    assert "I50 = " in describe(result) and "3 seeds" in describe(result)


def test_a_curve_that_never_generalises_is_beyond_the_grid_not_extrapolated():
    rng = np.random.default_rng(2)
    flat = observations(GRID, 3, 50, 0.02, rng, floor=0.0, ceiling=0.01, slope=1, midpoint_i=64)
    result = analyse_transition(flat, replicates=50)
    assert result["i50"] is None and result["i50_status"] == BEYOND
    assert result["i50_ci"] == [None, None] and result["i50_ci_status"] == [BEYOND, BEYOND]
    assert set(result["share_generalising"].values()) == {0.0}
    assert {s["i50_status"] for s in result["per_seed"]} == {BEYOND}
    assert "beyond the grid" in describe(result)
    # a curve that rises but plateaus below 0.5 never reaches the threshold either
    plateau = [curve(i, 0.0, 0.4, 2.0, 100) for i in GRID]
    assert fit_logistic(GRID, plateau).crossing(0.5, (4, 4096)) == (None, BEYOND)
    # one already generalising at the smallest I is below the grid
    high = [curve(i, 0.9, 1.0, 2.0, 100) for i in GRID]
    assert fit_logistic(GRID, high).crossing(0.5, (4, 4096)) == (None, BELOW)


def test_a_step_past_the_largest_i_is_beyond_the_grid():
    fit = LogisticFit(floor=0.0, ceiling=1.0, slope=2.0, midpoint=math.log2(10_000))
    assert fit.crossing(0.5, (4, 4096)) == (None, BEYOND)
    assert fit.crossing(0.5, (4, 20_000))[1] == WITHIN


def test_the_bootstrap_is_deterministic_and_follows_its_seed():
    rng = np.random.default_rng(3)
    found = observations(GRID[:8], 3, 30, 0.2, rng, floor=0, ceiling=1, slope=1.5, midpoint_i=60)
    first = analyse_transition(found, replicates=60)
    again = analyse_transition(found, replicates=60)
    assert first == again
    other = analyse_transition(found, replicates=60, bootstrap_seed=7)
    assert other["i50"] == first["i50"]  # the estimate does not depend on the bootstrap
    assert other["i50_ci"] != first["i50_ci"]


def test_a_one_sided_grid_warns_that_i50_is_biased():
    rng = np.random.default_rng(4)
    shape = {"floor": 0.0, "ceiling": 1.0, "slope": 2.0, "midpoint_i": 40}
    one_sided = observations([2, 4, 8, 16, 32, 64], 3, 0, 0, rng, **shape)
    result = analyse_transition(one_sided, replicates=50)
    assert result["i50"] == pytest.approx(40, rel=0.05)
    assert any("1 above" in w and "biased" in w for w in result["warnings"])
    both_sides = observations([4, 8, 16, 32, 64, 128, 256], 3, 0, 0, rng, **shape)
    assert not any("biased" in w for w in analyse_transition(both_sides, replicates=50)["warnings"])


def test_few_seeds_few_points_and_seed_only_resampling_are_reported():
    two_points = [Observation(0, 10, 0.0), Observation(0, 100, 1.0)]
    result = analyse_transition(two_points)
    assert result["i50"] is None and result["i50_status"] == "too_few_grid_points"
    assert "no logistic fit" in describe(result)
    no_rules = [
        Observation(seed, i, curve(i, 0, 1, 2, 100) + 0.02 * seed)
        for seed in range(2)
        for i in GRID
    ]
    result = analyse_transition(no_rules, replicates=40)
    assert result["bootstrap"]["resampled"] == "seeds"
    assert any("only 2 seed(s)" in w for w in result["warnings"])


def test_batched_bootstrap_fits_are_the_fits_scipy_makes_one_by_one():
    """fit_replicates against fit_logistic replicate by replicate, from the same start. On a
    smooth rise and on a flat floor they are the same fit; on a step sharper than the grid the
    crossing between two grid points is barely identified, and the batched fit is never a
    worse least-squares fit than scipy's (sometimes a better one)."""
    rng = np.random.default_rng(5)
    for slope, ceiling, same in [(2.0, 0.95, True), (1.0, 0.02, True), (40.0, 1.0, False)]:
        found = observations(GRID, 4, 40, 0.2, rng, floor=0.0, ceiling=ceiling, slope=slope,
                             midpoint_i=150)  # fmt: skip
        pooled = fit_logistic([o.instructions for o in found], [o.accuracy for o in found])
        _, xs, ys = transition._resample(found, np.random.default_rng(6), 60)
        batched = transition.fit_replicates(xs, ys, pooled)
        for x, y, fit in zip(xs, ys, batched, strict=True):
            alone = fit_logistic(x, y, start=pooled)
            cost = [float(((f.predict(x) - y) ** 2).sum()) for f in (fit, alone)]
            assert cost[0] <= cost[1] * (1 + 1e-6) + 1e-12
            if same:
                ours, theirs = fit.crossing(0.5, (4, 4096)), alone.crossing(0.5, (4, 4096))
                assert ours[1] == theirs[1]
                if ours[0] is not None:
                    assert math.log2(ours[0]) == pytest.approx(math.log2(theirs[0]), abs=1e-5)


def test_the_few_seeds_correction_widens_the_interval_by_the_t_factor():
    """Each bootstrap I50 moves away from the estimate by t(k-1)/z * sqrt(k/(k-1)) doublings
    per doubling: 2.689 for 3 seeds, 1.216 for 10 (Student's t and normal quantiles)."""
    rng = np.random.default_rng(8)
    for seeds, factor in ((3, 2.6885), (10, 1.2158)):
        found = observations(GRID, seeds, 50, 0.25, rng, floor=0.0, ceiling=0.97, slope=2.0,
                             midpoint_i=150)  # fmt: skip
        plain = analyse_transition(found, replicates=200)
        wide = analyse_transition(found, replicates=200, few_seeds_correction=True)
        assert wide["i50"] == plain["i50"] and wide["i50_ci"] == plain["i50_ci_corrected"]
        assert f"widened for {seeds} seeds" in describe(plain)
        centre = math.log2(plain["i50"])
        for bound in (0, 1):
            stretched = (math.log2(wide["i50_ci"][bound]) - centre) / (
                math.log2(plain["i50_ci"][bound]) - centre
            )
            assert stretched == pytest.approx(factor, rel=1e-3)


def test_a_widened_bound_past_the_grid_is_off_the_grid_not_extrapolated():
    rng = np.random.default_rng(10)
    found = observations(GRID[:6], 2, 50, 0.25, rng, floor=0.0, ceiling=0.97, slope=2.0,
                         midpoint_i=60)  # fmt: skip
    wide = analyse_transition(found, replicates=200, few_seeds_correction=True)
    assert wide["i50_status"] == WITHIN
    assert wide["i50_ci"][1] is None and wide["i50_ci_status"][1] == BEYOND  # 2 seeds: x 9.2
    assert analyse_transition(found, replicates=200)["i50_ci"][1] is not None
