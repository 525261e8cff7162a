"""The report's transition: I50 per line of an experiment, fitted at the final evaluation and
at each run's best training step, and the lines that describe it."""

from __future__ import annotations

from collections import defaultdict

from rewritelab.analysis.figures import (
    line_label,
    plot_curves,  # noqa: F401  (re-exported for existing callers)
)
from rewritelab.core.paper import (
    INSTRUCTIONS,
    NO_CRITERION,
)

# Kinds whose figure splits unseen accuracy into no-op and has-op inputs (the table always does;
# with several lines, the split makes other figures unreadable).


def _history(row: dict) -> list[dict]:
    """The run's accuracies at each evaluation point: stored with its metrics by newer sweeps,
    else read from its run directory's `metrics.jsonl` while that still exists."""
    stored = (row.get("metrics") or {}).get("history")
    if stored is not None:
        return stored
    if not row.get("run_dir"):
        return []
    from rewritelab.core.run_log import training_history

    return training_history(row["run_dir"])


# The accuracy a transition is fitted on, its per-rule breakdown, and its name in reports.
FITTED = {
    "unseen_accuracy": ("unseen_by_instruction", "unseen accuracy"),
    "unseen_has_op_accuracy": (
        "unseen_by_has_op_instruction",
        "unseen accuracy on inputs that hold x (has-op)",
    ),
}


def fitted_accuracy(noop_split: bool, rows: list[dict]) -> str:
    """What the transition is fitted on: has-op accuracy where the test set mixes in no-ops
    to split them (E2: half of it), since only inputs that hold x need the rule and no-ops
    lift overall accuracy to near their share whatever I is (for kinds with `noop_split`); else
    unseen accuracy."""
    done = [row.get("metrics") or {} for row in rows if row["status"] == "done"]
    split = bool(done) and all(
        m.get("unseen_noop_accuracy") is not None and m.get("unseen_has_op_accuracy") is not None
        for m in done
    )
    return "unseen_has_op_accuracy" if noop_split and split else "unseen_accuracy"


def _step_accuracy(row: dict, which: str, accuracy: str) -> float | None:
    """`accuracy` of a run at its best or last logged evaluation point."""
    logged = [h[accuracy] for h in _history(row) if h.get(accuracy) is not None]
    if not logged:
        return None
    return max(logged) if which == "best_step" else logged[-1]


def transition_observations(rows: list[dict], which: str, accuracy: str):
    """One Observation of `accuracy` per finished run of a line: the final full evaluation
    (with per-rule accuracies where stored) or a step from the training history (None if any
    run lacks it)."""
    from rewritelab.analysis.transition import Observation

    found = []
    for row in rows:
        metrics = row.get("metrics") or {}
        instructions = row["factors"][INSTRUCTIONS]
        if which == "final":
            by_rule = metrics.get(FITTED[accuracy][0])
            rules = tuple(by_rule.values()) if by_rule else None
            found.append(Observation(row["seed"], instructions, metrics[accuracy], rules))
            continue
        value = _step_accuracy(row, which, accuracy)
        if value is None:
            return None
        found.append(Observation(row["seed"], instructions, value))
    return found


def line_transitions(rows: list[dict], accuracy: str = "unseen_accuracy") -> dict[str, dict]:
    """Per line (setting of the other factors), the transition of `accuracy` at the final
    evaluation, at each run's best training step and at its last logged step (the last two
    on the training evaluation subset, and only where every run's history holds it)."""
    from rewritelab.analysis.transition import analyse_transition

    lines: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        metrics = row.get("metrics") or {}
        if row["status"] == "done" and metrics.get(accuracy) is not None:
            lines[line_label(row["factors"], INSTRUCTIONS)].append(row)
    transitions = {}
    for label, members in lines.items():
        transitions[label] = {}
        for which in ("final", "best_step", "final_step"):
            observations = transition_observations(members, which, accuracy)
            if observations:
                analysis = analyse_transition(observations)
                transitions[label][which] = analysis | {"accuracy": accuracy}
    return transitions


def transition_lines(transitions: dict[str, dict]) -> list[str]:
    """The report's transition paragraph: I50 with intervals, share of seeds generalising."""
    from rewritelab.analysis.transition import describe

    names = {
        "final": "final evaluation",
        "best_step": "best training step",
        "final_step": "last training step",
    }
    lines = []
    for label, analyses in transitions.items():
        fitted = FITTED[next(iter(analyses.values()))["accuracy"]][1]
        lines.append(f"**Transition ({label})**, {fitted} crossing 0.5:")
        lines.append("")
        for which, analysis in analyses.items():
            lines.append(f"- {names[which]}: {describe(analysis)}")
            lines += [f"  - warning: {w}" for w in analysis.get("warnings", [])]
        final = analyses.get("final")
        if final:
            shares = ", ".join(
                f"I = {i}: {share:.0%}" for i, share in final["share_generalising"].items()
            )
            lines.append(f"- share of seeds with unseen ≥ {final['generalise_at']}: {shares}")
        if "best_step" in analyses:
            lines.append(
                "- best/last step use the training-time evaluation subset; the best step is a "
                "maximum over evaluation points, so it leans optimistic"
            )
        lines.append("")
    return lines


def _fitted_i50(final: dict) -> str:
    """I50 with its interval, named `has-op I50` when fitted on has-op accuracy."""
    from rewritelab.analysis.transition import describe_i50

    text = describe_i50(final)
    overall = final.get("accuracy", "unseen_accuracy") == "unseen_accuracy"  # older: overall
    return text if overall else text.replace("I50", "has-op I50", 1)


def measured_line(basis: str, transitions: dict[str, dict]) -> str:
    """One line for the results page: the verdict's numbers and the I50 of each line (only
    the I50s when no criterion judged the experiment)."""
    fitted = {k: t["final"] for k, t in transitions.items() if "i50_ci" in t.get("final", {})}
    if not fitted:
        return basis
    if list(fitted) == ["all"]:
        return f"{basis}; {_fitted_i50(fitted['all'])}"
    i50s = "; ".join(f"{label}: {_fitted_i50(final)}" for label, final in fitted.items())
    return i50s if basis == NO_CRITERION else f"{basis}; {i50s}"
