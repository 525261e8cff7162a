"""The adaptive transition search (`adaptive_search`) on a real sweep: each round's points run
through the sweep runner with any executor and are read back from the results database,
where each round is recorded with its points' ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rewritelab.analysis.adaptive_search import Round, SearchSettings, search
from rewritelab.analysis.transition import Observation
from rewritelab.core.errors import RewritelabError
from rewritelab.core.paper import INSTRUCTIONS

if TYPE_CHECKING:
    from rewritelab.sweep.database import ResultsDatabase
    from rewritelab.sweep.experiment import Experiment, Point


def instruction_range(experiment: Experiment) -> tuple[int, int, dict[str, Any]]:
    """The smallest and largest instruction count of the experiment's grid, and the other
    factors' values, which must be one each: the search follows one curve."""
    counts = experiment.grid.get(INSTRUCTIONS)
    if not counts or len(counts) < 2 or not all(isinstance(c, int) for c in counts):
        raise RewritelabError(f"{experiment.source}: an adaptive search needs at least two "
                              f"instruction counts in the grid ({INSTRUCTIONS})")  # fmt: skip
    others = {name: values for name, values in experiment.grid.items() if name != INSTRUCTIONS}
    for name, values in others.items():
        if len(values) != 1:
            raise RewritelabError(f"{experiment.source}: an adaptive search follows one curve, "
                                  f"but grid factor {name!r} has {len(values)} values")  # fmt: skip
    return min(counts), max(counts), {name: values[0] for name, values in others.items()}


def run_adaptive_sweep(
    experiment: Experiment, database: ResultsDatabase, settings: SearchSettings,
    run_points: Callable[[list[Point]], Any],
) -> list[Round]:  # fmt: skip
    """The search on a real sweep: `run_points(points)` runs each round's points into
    `database` (`sweep.runner.run_sweep` with `points=`, on any executor); they are read back
    from it, and each round is recorded there with its points' ids. Returns every round."""
    from rewritelab.analysis.kinds import KINDS
    from rewritelab.analysis.report_transitions import fitted_accuracy, transition_observations

    low, high, others = instruction_range(experiment)

    def point(level: int, seed: int) -> Point:
        return experiment.point_at({INSTRUCTIONS: level, **others}, seed)

    def observe(planned: list[tuple[int, int]]) -> list[Observation]:
        points = [point(level, seed) for level, seed in planned]
        run_points(points)
        ids = {p.point_id for p in points}
        rows = [r for r in database.rows() if r["point_id"] in ids and r["status"] == "done"]
        accuracy = fitted_accuracy(KINDS[experiment.kind].noop_split, rows)
        return transition_observations(rows, "final", accuracy) if rows else []

    def record(found: Round) -> None:
        decision = found.to_dict()
        for addition in decision["additions"]:
            addition["point_id"] = point(addition["instructions"], addition["seed"]).point_id
        database.record_round(experiment.name, experiment.preset, found.number, decision)

    return search(low, high, settings, observe, record)
