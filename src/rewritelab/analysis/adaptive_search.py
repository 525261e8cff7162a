"""Adaptive transition search: instruction counts placed where the transition is.

A dense grid spends most of its runs far from I50, where every seed scores about 0 or about
1. The search starts from a coarse doubling grid over the preset's range of instruction
counts with few seeds, fits the logistic (`analysis.transition`) and adds runs near I50,
round by round. The counts that inform the fit are those inside the 95% interval of I50
within `reach_doublings` of the estimate, and the nearest count on each side of it. To them:

- a new instruction count at the geometric middle of their widest gap, while that gap is
  wider than `min_gap` doublings, with as many seeds as the thinner of its two neighbours;
- otherwise one more seed at each of them that has the fewest.

It stops when the interval is at most `target_width` doublings wide and each of those counts
has `min_seeds` seeds (`converged`), when `budget` runs are planned (`budget spent`), when
I50 lies off the range (`off the grid`), or when nothing is left to add.

The interval is the report's seed-and-rule bootstrap, widened for few seeds
(`few_seeds_correction`): a percentile bootstrap over 3-5 seeds is too narrow, and a search
that stops on the interval's width would stop on its luckiest draws. `tests/analysis/
test_adaptive_search.py` measures the coverage on synthetic curves.

The budget counts runs, not core-minutes: a run's time varies with the machine's load, its
outcome (on a CPU) does not, so a budget in runs keeps the sequence of points a function of
the results alone. Every decision depends only on finished runs' results and the fixed
bootstrap seed: the same runs give the same points, and a killed search resumes by replaying
its rounds from the results database. Each round is recorded there with the reason for every
point it added (`ResultsDatabase.record_round`; `adaptive_sweep` runs it on a sweep), and
the report lists them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rewritelab.analysis.transition import OFF_GRID as OFF_GRID_NAMES
from rewritelab.analysis.transition import WITHIN, Observation, analyse_transition
from rewritelab.core.errors import RewritelabError

CONVERGED, BUDGET_SPENT, OFF_GRID, NOTHING_TO_ADD = (
    "converged", "budget spent", "off the grid", "nothing left to add",
)  # fmt: skip


@dataclass(frozen=True)
class SearchSettings:
    """How the search starts, what it adds and when it stops (an experiment's `[adaptive]`
    table; widths and gaps in doublings of I)."""

    start_seeds: int = 2  # seeds per count of the coarse grid
    step_doublings: float = 1.0  # spacing of the coarse grid
    target_width: float = 0.5  # stop once the 95% interval of I50 is this narrow
    min_seeds: int = 3  # ... and every count it spans has this many seeds
    max_seeds: int = 10  # seeds at one count, at most
    min_gap: float = 0.25  # no new count between two closer than this
    reach_doublings: float = 1.0  # runs go to counts this close to the I50 estimate
    budget: int = 60  # runs, at most
    replicates: int = 1000  # bootstrap replicates of each fit

    def validate(self, where: str) -> SearchSettings:
        counts = {"start_seeds": 1, "min_seeds": 1, "max_seeds": 1, "budget": 1, "replicates": 100}
        for name, least in counts.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise RewritelabError(f"{where}: adaptive.{name} must be an integer >= {least}, "
                                      f"got {value!r}")  # fmt: skip
        for name in ("step_doublings", "target_width", "min_gap", "reach_doublings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise RewritelabError(f"{where}: adaptive.{name} must be a number > 0 "
                                      f"(doublings), got {value!r}")  # fmt: skip
        if not self.start_seeds <= self.min_seeds <= self.max_seeds:
            raise RewritelabError(
                f"{where}: adaptive needs start_seeds <= min_seeds <= max_seeds, got "
                f"{self.start_seeds}, {self.min_seeds}, {self.max_seeds}"
            )
        return self


def search_settings(table: dict[str, Any], where: str) -> SearchSettings:
    """The settings of an `[adaptive]` table (defaults for keys it leaves out), validated."""
    if not isinstance(table, dict):
        raise RewritelabError(f"{where}: adaptive must be a table, got {table!r}")
    known = {f.name for f in fields(SearchSettings)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise RewritelabError(f"{where}: unknown key {unknown[0]!r} in adaptive "
                              f"(known: {', '.join(sorted(known))})")  # fmt: skip
    return SearchSettings(**table).validate(where)


@dataclass(frozen=True)
class Addition:
    """One run the search adds: an instruction count, a seed, and why."""

    instructions: int
    seed: int
    reason: str


@dataclass(frozen=True)
class Round:
    """One round: the fit it made of the runs so far and what it added, or why it stopped."""

    number: int
    runs: int  # runs planned before this round's additions
    i50: float | None
    i50_ci: tuple[float | None, float | None]
    width_doublings: float | None
    additions: tuple[Addition, ...] = ()
    stop: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coarse_grid(low: int, high: int, step_doublings: float) -> list[int]:
    """Instruction counts from `low` to `high`, `step_doublings` apart (rounded), `high` last."""
    if not 1 <= low < high:
        raise RewritelabError(f"adaptive search needs a range of instruction counts, "
                              f"got {low}..{high}")  # fmt: skip
    levels, k = [], 0
    while (level := round(low * 2 ** (k * step_doublings))) < high:
        if level not in levels:
            levels.append(level)
        k += 1
    return levels + [high]


def first_round(levels: list[int], settings: SearchSettings) -> Round:
    """Round 0: the coarse grid with `start_seeds` seeds at each count."""
    reason = f"coarse grid ({settings.step_doublings:g} doublings apart)"
    additions = tuple(
        Addition(level, seed, reason) for level in levels for seed in range(settings.start_seeds)
    )
    return Round(0, 0, None, (None, None), None, additions)


def _around(levels: list[int], i50: float, low: float, high: float, reach: float) -> list[int]:
    """The counts that carry the fit's information on I50: those inside its interval and
    within `reach` doublings of the estimate, and the nearest count on each side of it."""
    near = [c for c in levels if low <= c <= high and abs(math.log2(c / i50)) <= reach]
    below = [c for c in levels if c <= i50][-1:]
    above = [c for c in levels if c > i50][:1]
    return sorted(set(near + below + above))


def next_round(
    number: int, observations: list[Observation], planned: list[tuple[int, int]],
    settings: SearchSettings,
) -> Round:  # fmt: skip
    """Fit the runs observed so far and decide round `number`: the runs to add, or the stop."""
    analysis = analyse_transition(
        observations, replicates=settings.replicates, per_seed=False, few_seeds_correction=True
    )
    seeds_at = Counter(level for level, _ in planned)
    levels = sorted(seeds_at)
    i50, (low, high) = analysis.get("i50"), analysis.get("i50_ci", (None, None))
    width = math.log2(high / low) if low and high else None
    fitted = Round(number, len(planned), i50, (low, high), width)
    if analysis.get("i50_status") != WITHIN:
        status = analysis.get("i50_status")
        where = OFF_GRID_NAMES.get(status, "not fitted")
        return replace(fitted, stop=f"{OFF_GRID}: I50 is {where} of I = {levels[0]}..{levels[-1]}")
    spanned = _around(levels, i50, low or 0.0, high or math.inf, settings.reach_doublings)
    if width is not None and width <= settings.target_width:
        if min(seeds_at[level] for level in spanned) >= settings.min_seeds:
            return replace(fitted, stop=CONVERGED)
    if len(planned) >= settings.budget:
        return replace(fitted, stop=BUDGET_SPENT)
    interval = f"the I50 interval {_number(low)}-{_number(high)}"
    additions = _new_count(spanned, seeds_at, settings, interval) or _more_seeds(
        spanned, seeds_at, settings, interval
    )
    additions = additions[: settings.budget - len(planned)]
    if not additions:
        return replace(fitted, stop=NOTHING_TO_ADD)
    return replace(fitted, additions=tuple(additions))


def _number(value: float | None) -> str:
    return "off the grid" if value is None else f"{value:.0f}"


def _new_count(
    spanned: list[int], seeds_at: Counter, settings: SearchSettings, interval: str
) -> list[Addition]:
    """Runs at a new count in the widest gap the interval spans, if one is wider than
    `min_gap` and a whole number fits inside it."""
    gaps = [(math.log2(b / a), a, b) for a, b in zip(spanned, spanned[1:], strict=False)]
    if not gaps:
        return []
    gap, a, b = max(gaps)
    middle = round(math.sqrt(a * b))
    if gap <= settings.min_gap or not a < middle < b:
        return []
    reason = f"new count in the widest gap {a}-{b} ({gap:.2f} doublings) of {interval}"
    seeds = min(seeds_at[a], seeds_at[b])
    return [Addition(middle, seed, reason) for seed in range(seeds)]


def _more_seeds(
    spanned: list[int], seeds_at: Counter, settings: SearchSettings, interval: str
) -> list[Addition]:
    """One more seed at each count of the interval that has the fewest (below `max_seeds`)."""
    fewest = min(seeds_at[level] for level in spanned)
    if fewest >= settings.max_seeds:
        return []
    reason = f"one more seed where {interval} has the fewest ({fewest})"
    return [Addition(level, fewest, reason) for level in spanned if seeds_at[level] == fewest]


def search(
    low: int, high: int, settings: SearchSettings,
    observe: Callable[[list[tuple[int, int]]], list[Observation]],
    on_round: Callable[[Round], None] = lambda r: None,
) -> list[Round]:  # fmt: skip
    """Run the search over instruction counts `low`..`high`. `observe(planned)` makes sure
    every planned (instructions, seed) run has run and returns the observations of those that
    finished; `on_round` sees each round as it is decided. Returns every round, the last one
    with its reason to stop."""
    rounds = [first_round(coarse_grid(low, high, settings.step_doublings), settings)]
    planned: list[tuple[int, int]] = []
    while rounds[-1].stop is None:
        on_round(rounds[-1])
        planned += [(a.instructions, a.seed) for a in rounds[-1].additions]
        rounds.append(next_round(len(rounds), observe(planned), planned, settings))
    on_round(rounds[-1])
    return rounds


def search_lines(rounds: list[dict]) -> list[str]:
    """The report's account of an adaptive search: each round's fit, what it added and why."""
    last = rounds[-1]
    lines = [f"**Adaptive search**: {len(rounds)} rounds, {last['runs']} runs; "
             f"stopped: {last['stop'] or 'not yet (still running or interrupted)'}.", "",
             "| round | runs before | I50 | 95% CI (few-seeds corrected) | width (doublings) "
             "| added |", "|---|---|---|---|---|---|"]  # fmt: skip
    for found in rounds:
        low, high = found["i50_ci"]
        added = _added(found["additions"]) or found["stop"] or ""
        width = found["width_doublings"]
        lines.append(
            f"| {found['number']} | {found['runs']} | {_number(found['i50'])} | "
            f"{_number(low)} – {_number(high)} | {'–' if width is None else f'{width:.2f}'} "
            f"| {added} |"
        )
    return lines + [""]


def _added(additions: list[dict]) -> str:
    """'I = 91 seeds 0-2: new count in ...' per reason."""
    by_reason: dict[str, list[str]] = {}
    for a in additions:
        by_reason.setdefault(a["reason"], []).append(f"{a['instructions']}/{a['seed']}")
    return "; ".join(f"{', '.join(runs)} (I/seed): {reason}" for reason, runs in by_reason.items())
