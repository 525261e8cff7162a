"""The adaptive transition search on synthetic outcomes: where it adds runs, when it stops,
that it is deterministic and resumable, and how often its interval holds the true I50."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from rewritelab.analysis.adaptive_search import (
    BUDGET_SPENT,
    CONVERGED,
    OFF_GRID,
    SearchSettings,
    coarse_grid,
    search,
    search_settings,
)
from rewritelab.analysis.search_simulation import SyntheticCurve, coverage, draw_curve, simulate
from rewritelab.core.errors import RewritelabError

FAST = SearchSettings(replicates=100)  # the fewest replicates allowed, else the defaults


def test_the_coarse_grid_doubles_from_the_smallest_count_and_ends_on_the_largest():
    assert coarse_grid(16, 1024, 1.0) == [16, 32, 64, 128, 256, 512, 1024]
    assert coarse_grid(16, 1024, 2.0) == [16, 64, 256, 1024]
    assert coarse_grid(64, 384, 1.0) == [64, 128, 256, 384]
    assert coarse_grid(2, 3, 0.25) == [2, 3]  # 2 * 2^0.25 rounds to 2: no repeated count
    with pytest.raises(RewritelabError, match="range of instruction counts"):
        coarse_grid(64, 64, 1.0)


def test_the_same_outcomes_give_the_same_points_and_every_point_has_a_reason():
    first, again = (simulate(3, 16, 1024, FAST) for _ in range(2))
    assert [r.to_dict() for r in first.rounds] == [r.to_dict() for r in again.rounds]
    other = simulate(4, 16, 1024, FAST)
    assert [r.to_dict() for r in other.rounds] != [r.to_dict() for r in first.rounds]
    runs = [(a.instructions, a.seed) for r in first.rounds for a in r.additions]
    assert len(runs) == len(set(runs)) == first.runs  # no run twice
    seeds_at = Counter(level for level, _ in runs)
    for level, count in seeds_at.items():  # each count's seeds are 0, 1, 2, ... in order
        assert sorted(seed for lv, seed in runs if lv == level) == list(range(count))
    assert {a.reason for a in first.rounds[0].additions} == {"coarse grid (1 doublings apart)"}
    assert {(a.instructions, a.seed) for a in first.rounds[0].additions} == {
        (level, seed) for level in coarse_grid(16, 1024, 1.0) for seed in (0, 1)
    }
    later = [a for r in first.rounds[1:] for a in r.additions]
    assert later and all(
        a.reason.startswith(("new count in the widest gap", "one more seed")) for a in later
    )


def test_new_counts_fall_inside_the_interval_they_were_added_for():
    result = simulate(3, 16, 1024, FAST)
    added = 0
    for decided in result.rounds[1:]:  # a round's additions follow from its own fit
        low, high = decided.i50_ci
        for addition in decided.additions:
            if gap := re.match(r"new count in the widest gap (\d+)-(\d+)", addition.reason):
                added += 1
                a, b = int(gap[1]), int(gap[2])
                assert a < addition.instructions < b
                assert addition.instructions == round(math.sqrt(a * b))
                # the gap's ends are the counts around the interval: it overlaps the gap
                assert a <= (high or math.inf) and b >= (low or 0)
    assert added  # the search did add counts


def test_a_search_stops_converged_only_when_its_interval_is_narrow_and_well_seeded():
    for simulation in range(4):
        result = simulate(simulation, 16, 1024, FAST)
        last = result.rounds[-1]
        assert last.stop is not None and last.additions == ()
        assert all(r.stop is None for r in result.rounds[:-1])
        if last.stop == CONVERGED:
            assert last.width_doublings <= FAST.target_width
            planned = Counter(a.instructions for r in result.rounds for a in r.additions)
            low, high = last.i50_ci
            inside = [level for level in planned if low <= level <= high]
            assert all(planned[level] >= FAST.min_seeds for level in inside)


def test_the_budget_caps_the_runs():
    tight = SearchSettings(replicates=100, budget=18, target_width=0.05)
    result = simulate(1, 16, 1024, tight)
    assert result.runs == 18 and result.rounds[-1].stop == BUDGET_SPENT


def test_a_transition_beyond_the_range_stops_off_the_grid_without_extrapolating():
    never = SyntheticCurve(midpoint=14.0, slope=3.0, ceiling=0.95, seed_spread=0.1)

    def observe(planned):
        return [never.observe(0, level, seed) for level, seed in planned]

    rounds = search(16, 1024, FAST, observe)
    assert len(rounds) == 2 and rounds[-1].stop.startswith(OFF_GRID)
    assert "beyond the grid" in rounds[-1].stop and rounds[-1].i50 is None


def test_a_search_cut_short_resumes_to_the_same_rounds_running_only_the_missing_runs():
    curve = draw_curve(2, 16, 1024)
    ran: list[tuple[int, int]] = []

    def observe(planned):
        ran.extend(run for run in planned if run not in ran)  # a results database's memory
        return [curve.observe(2, level, seed) for level, seed in planned]

    whole = search(16, 1024, FAST, observe)
    runs_whole = list(ran)

    class Killed(Exception):
        pass

    ran.clear()
    calls = []

    def killed_in_round_3(planned):
        calls.append(len(planned))
        if len(calls) == 3:
            raise Killed
        return observe(planned)

    with pytest.raises(Killed):
        search(16, 1024, FAST, killed_in_round_3)
    done_before = len(ran)
    resumed = search(16, 1024, FAST, observe)
    assert [r.to_dict() for r in resumed] == [r.to_dict() for r in whole]
    assert ran == runs_whole and 0 < done_before < len(ran)  # nothing ran twice


def test_bad_settings_are_named_in_one_line():
    assert search_settings({}, "e1.toml") == SearchSettings()
    assert search_settings({"budget": 30}, "e1.toml").budget == 30
    cases = [
        ({"budgett": 3}, "unknown key 'budgett' in adaptive"),
        ({"budget": 0}, "adaptive.budget must be an integer >= 1, got 0"),
        ({"start_seeds": True}, "adaptive.start_seeds must be an integer"),
        ({"target_width": -1}, "adaptive.target_width must be a number > 0"),
        ({"min_gap": "0.3"}, "adaptive.min_gap must be a number > 0"),
        ({"start_seeds": 4, "min_seeds": 3}, "start_seeds <= min_seeds <= max_seeds"),
        ({"replicates": 10}, "adaptive.replicates must be an integer >= 100"),
    ]
    for table, message in cases:
        with pytest.raises(RewritelabError, match=message):
            search_settings(table, "e1.toml")
    with pytest.raises(RewritelabError, match="adaptive must be a table"):
        search_settings([1], "e1.toml")


COVERAGE_SEARCHES = 200


def test_the_reported_interval_holds_the_true_i50_in_at_least_90_percent_of_200_searches():
    """The search's 95% interval, over 200 synthetic curves (I50 anywhere in 23..724, slopes
    1.5-6 per doubling, seeds shifted by 0.05-0.3 doublings), with the test's 100 bootstrap
    replicates; benchmarks/bench_sweep.py measures it with the default 1,000."""
    searches = [simulate(s, 16, 1024, FAST) for s in range(COVERAGE_SEARCHES)]
    measured = coverage(searches)
    print(f"coverage {measured['coverage']:.3f} over {measured['searches']} searches, "
          f"{measured['mean_runs']:.1f} runs each, stops {measured['stops']}")  # fmt: skip
    assert measured["searches"] == COVERAGE_SEARCHES
    assert measured["coverage"] >= 0.90
