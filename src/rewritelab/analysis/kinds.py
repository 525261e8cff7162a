"""The experiment kinds: what the report draws and computes for each (`KINDS`).

An experiment file names its `kind` (required; `rewritelab.core.paper.KIND_NAMES` lists the
known ones, each with the paper's claim and criterion there). Here each kind gets its analysis:
its figure, an extra table, whether the report fits where the instruction count switches
generalisation on, the factor its paper figure puts on the x axis, and whether its test set
mixes in no-ops to split accuracy by them. A new kind is one entry in `PAPER` (its claim) and
one here (its analysis); a test keeps the two registries equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rewritelab.analysis.figures import (
    FigureData,
    curves_figure,
    e1_figure,
    e2_figure,
    e3_figure,
    e4_figure,
    e5_figure,
    e7_figure,
    transition_figure,
)
from rewritelab.core.paper import INSTRUCTIONS, PAPER


@dataclass(frozen=True)
class Kind:
    """The report's analysis of one experiment kind."""

    figure: Callable = curves_figure  # FigureData -> matplotlib figure
    table: tuple[str, Callable[[list[dict]], str]] | None = None  # caption, entries -> markdown
    transition: bool = False  # fit where I switches on (when I is the x axis)
    x_factor: str | None = None  # the paper figure's own x axis, when every point has it
    noop_split: bool = False  # fit has-op accuracy when the test set splits no-ops out


def e5_table(entries: list[dict]) -> str:
    """Our unseen accuracy per (occurrences, instructions), then the paper's Table 1.

    Two tables, not one: a scaled-down run has its own occurrence counts and instruction counts,
    which seldom coincide with the paper's."""
    rows = list(dict.fromkeys(str(e["factors"].get("occurrences")) for e in entries))
    columns = sorted({e["factors"].get(INSTRUCTIONS) for e in entries}, reverse=True)
    ours = {(str(e["factors"].get("occurrences")), e["factors"].get(INSTRUCTIONS)): e
            for e in entries}  # fmt: skip
    lines = ["Ours (mean ± s.e. over seeds):", "", _grid_header("occurrences", columns)]
    for row in rows:
        cells = [ours.get((row, column)) for column in columns]
        lines.append(f"| {row} | " + " | ".join(
            f"{e['unseen_accuracy']:.2f} ± {e['unseen_accuracy_stderr']:.2f}" if e else "–"
            for e in cells) + " |")  # fmt: skip
    reference = PAPER["e5"]
    lines += ["", "The paper's (one run each):", "",
              _grid_header("occurrences", reference["table1_instructions"])]  # fmt: skip
    for row, values in reference["table1"].items():
        lines.append(f"| {row} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def _grid_header(row_name: str, columns: list) -> str:
    """A markdown header row with one column per instruction count."""
    return (f"| {row_name} \\ instructions | " + " | ".join(f"I={c}" for c in columns) + " |\n"
            + "|---|" + "---|" * len(columns))  # fmt: skip


KINDS = {
    "generic": Kind(noop_split=True),
    "e0": Kind(transition_figure, transition=True),
    "e1": Kind(e1_figure, transition=True),
    "e2": Kind(e2_figure, transition=True, noop_split=True),
    "e3": Kind(e3_figure),
    "e4": Kind(e4_figure, x_factor="spread"),
    "e5": Kind(
        e5_figure,
        table=(
            "Unseen accuracy by occurrences of x in training inputs, beside the paper's Table 1:",
            e5_table,
        ),
        transition=True,
    ),
    "e6": Kind(transition=True),  # where I is a number, not a label
    "e7": Kind(e7_figure, transition=True),
}


def draw(data: FigureData):
    """The figure for the data's experiment kind."""
    return KINDS[data.kind].figure(data)
