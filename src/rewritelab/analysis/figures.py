"""Report figures: accuracy curves with seed error bars, the fitted transition, the paper's marks.

Every figure shows seed means ± standard error, with each seed's own curve drawn faintly
behind them, so a reader sees both the average and how much seeds disagree. Each experiment
kind names its figure function in `rewritelab.analysis.kinds.KINDS`. E1-style
figures add the pooled logistic fit and the I50 interval; E1 and E5 add the paper's numbers
(from `rewritelab.core.paper`). Only matplotlib is needed (the `report` extra).
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewritelab.analysis.transition import LogisticFit, describe_i50
from rewritelab.core.atomic_files import write_bytes_atomic
from rewritelab.core.errors import RewritelabError
from rewritelab.core.paper import INSTRUCTIONS, PAPER

AXIS_LABELS = {
    INSTRUCTIONS: "training instructions I (log scale)",
    "dataset.train.noop_share": "no-op share of training inputs",
    "spread": "spread of training examples over instructions (uniform, or power law α)",
}
METRIC_NAMES = {
    "unseen_accuracy": "unseen rules",
    "seen_accuracy": "seen rules",
    "unseen_noop_accuracy": "unseen, no-op inputs",
    "unseen_has_op_accuracy": "unseen, inputs with x",
}
LINESTYLES = {"seen_accuracy": "--", "unseen_noop_accuracy": ":", "unseen_has_op_accuracy": "-."}
FIT_STYLE = (0, (4, 1, 1, 1, 1, 1))  # dash-dot-dot: apart from every metric's style
I50_BAR_STEP = 0.025  # vertical spacing of the I50 interval bars of several lines


@dataclass(frozen=True)
class FigureData:
    """What a figure function draws from: seed means, the runs behind them, fitted transitions."""

    title: str
    kind: str
    x_factor: str
    entries: list[dict]
    rows: list[dict] = field(default_factory=list)
    metrics: tuple[str, ...] = ("unseen_accuracy", "seen_accuracy")
    transitions: dict[str, dict] = field(default_factory=dict)  # line label -> analysis


def line_label(factors: dict, x_factor: str) -> str:
    """The setting of the factors other than the x axis ('all' when there are none)."""
    others = {k: v for k, v in factors.items() if k != x_factor}
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in others.items()) or "all"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RewritelabError("reports need matplotlib: pip install 'rewritelab[report]'") from None
    plt.rcParams.update({"figure.dpi": 150, "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})  # fmt: skip
    return plt


def _is_numeric(entries: list[dict], x_factor: str) -> bool:
    return all(isinstance(e["factors"][x_factor], int | float) for e in entries)


def _series(entries: list[dict], x_factor: str) -> dict[str, list[dict]]:
    """Entries split into lines, numeric x in increasing order."""
    lines: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        lines[line_label(entry["factors"], x_factor)].append(entry)
    if _is_numeric(entries, x_factor):
        for members in lines.values():
            members.sort(key=lambda e: e["factors"][x_factor])
    return lines


def _colours(labels: list[str], metrics: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """One colour per metric when there is one line, else one per line (metrics by style)."""
    cycle = [f"C{i % 10}" for i in range(max(len(labels), len(metrics)))]
    if len(labels) == 1:
        return {(labels[0], m): cycle[i] for i, m in enumerate(metrics)}
    return {(label, m): cycle[i] for i, label in enumerate(labels) for m in metrics}


def plot_curves(
    entries: list[dict],
    x_factor: str,
    title: str,
    metrics: tuple[str, ...],
    rows: list[dict] | None = None,
):
    """Accuracy against a factor (log axis when numeric): mean ± standard error over seeds per
    line and metric, and with `rows`, each seed's curve faintly in the same colour."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    series = _series(entries, x_factor)
    colours = _colours(list(series), metrics)
    drawn = [m for m in metrics if any(m in e for e in entries)]
    keyed = len(series) > 1 and len(drawn) > 1  # legend: lines by colour, metrics by style
    for label, members in series.items():
        for metric in metrics:
            if not all(metric in e for e in members):
                continue
            name = METRIC_NAMES.get(metric, metric.replace("_", " "))
            if keyed:
                name = "_" + name
            axis.errorbar(
                [e["factors"][x_factor] for e in members], [e[metric] for e in members],
                yerr=[e[f"{metric}_stderr"] for e in members], color=colours[(label, metric)],
                marker="o", markersize=3.5, capsize=3, linewidth=1.4,
                linestyle=LINESTYLES.get(metric, "-"),
                label=f"{name} ({label})" if label != "all" else name,
            )  # fmt: skip
    for metric in metrics if rows else ():
        _seed_lines(axis, rows, x_factor, metric, colours, _is_numeric(entries, x_factor))
    if keyed:
        for label in series:
            axis.plot([], [], color=colours[(label, drawn[0])], linewidth=2, label=label)
        for metric in drawn:
            axis.plot([], [], color="0.3", linestyle=LINESTYLES.get(metric, "-"),
                      label=METRIC_NAMES.get(metric, metric))  # fmt: skip
    _style_axes(axis, entries, x_factor, title)
    return figure, axis


def _seed_lines(axis, rows, x_factor, metric, colours, numeric: bool) -> None:
    """Each seed's own curve of `metric`, thin and faint (markers only on a categorical axis)."""
    curves: dict[tuple[str, int], list[tuple]] = defaultdict(list)
    for row in rows:
        value = (row.get("metrics") or {}).get(metric)
        if row["status"] == "done" and value is not None:
            label = line_label(row["factors"], x_factor)
            curves[(label, row["seed"])].append((row["factors"][x_factor], value))
    for (label, _seed), points in curves.items():
        if (label, metric) not in colours:
            continue
        if numeric:
            points.sort()
        xs, ys = zip(*points, strict=True)
        axis.plot(xs, ys, color=colours[(label, metric)], alpha=0.3, linewidth=0.7,
                  linestyle=LINESTYLES.get(metric, "-") if numeric else "none",
                  marker="." if not numeric else None, markersize=3, label="_seed")  # fmt: skip


def _style_axes(axis, entries: list[dict], x_factor: str, title: str) -> None:
    if _is_numeric(entries, x_factor):
        levels = sorted({e["factors"][x_factor] for e in entries})
        if x_factor == INSTRUCTIONS and len(levels) > 1:
            axis.set_xscale("log")
        if len(levels) <= 12:  # the grid's own values as ticks, as plain numbers
            axis.set_xticks(levels, [f"{v:g}" for v in levels])
            axis.minorticks_off()
    else:
        tick_labels = axis.get_xticklabels()
        axis.tick_params(axis="x", labelrotation=20)
        for label in tick_labels:
            label.set_horizontalalignment("right")
    axis.set_xlabel(AXIS_LABELS.get(x_factor, x_factor.rsplit(".", 1)[-1].replace("_", " ")))
    axis.set_ylabel("exact-match accuracy (mean ± s.e. over seeds)")
    axis.set_ylim(-0.03, 1.03)
    axis.grid(axis="y", color="0.92", linewidth=0.6)
    axis.set_title(title, fontsize=10)


# ---------------------------------------------------------------- figure functions by kind


def curves_figure(data: FigureData):
    """Any experiment: its metrics against the x factor, one line per other setting."""
    figure, axis = plot_curves(data.entries, data.x_factor, data.title, data.metrics, data.rows)
    _legend(axis)
    return figure


def transition_figure(data: FigureData, paper_marks=None):
    """Unseen and seen accuracy against I, with each line's fitted logistic and its I50
    interval: a shaded band for a single line, otherwise a horizontal bar per line about the
    threshold, the bars staggered by I50_BAR_STEP so that overlapping intervals stay legible;
    `paper_marks(axis)` draws the paper's reference marks behind them."""
    figure, axis = plot_curves(data.entries, data.x_factor, data.title, data.metrics, data.rows)
    if paper_marks and data.x_factor == INSTRUCTIONS:
        paper_marks(axis)
    series = _series(data.entries, data.x_factor)
    colours = _colours(list(series), data.metrics)
    levels = sorted({e["factors"][data.x_factor] for e in data.entries})
    analyses = [(label, data.transitions.get(label, {}).get("final")) for label in series]
    analyses = [(label, analysis) for label, analysis in analyses if analysis and "fit" in analysis]
    for row, (label, analysis) in enumerate(analyses):
        colour = colours[(label, analysis["accuracy"])]
        offset = I50_BAR_STEP * (row - (len(analyses) - 1) / 2)
        draw_transition(axis, analysis, levels, colour, band=len(series) == 1, offset=offset)
    fitted = {analysis["accuracy"] for _, analysis in analyses}
    if len(series) > 1:  # one key for every line's fit and I50 marker
        for accuracy in sorted(fitted):
            name = f"logistic fit ({METRIC_NAMES[accuracy]}), I50 ± CI"
            axis.plot([], [], color="0.3", linewidth=0.9, linestyle=FIT_STYLE, marker="D",
                      markersize=4, label=name)  # fmt: skip
    _legend(axis)
    return figure


def _shade(axis, low: float, high: float, shade: str, label: str) -> None:
    """A grey band behind the data from x = low to high: a range the paper reports."""
    axis.axvspan(low, high, color=shade, zorder=0, linewidth=0, label=label)


def e1_figure(data: FigureData):
    return transition_figure(data, mark_paper_thresholds)


def e2_figure(data: FigureData):
    """E2's transitions, with the instruction counts from which the paper generalises shaded."""

    def marks(axis) -> None:
        low, high = PAPER["e2"]["generalises_from"]
        _shade(axis, low, high, "0.88", f"paper: generalises from I ≈ {low}–{high}")

    return transition_figure(data, marks)


def e3_figure(data: FigureData):
    """E3's curves, with the instruction counts at which the paper never transfers shaded."""
    figure, axis = plot_curves(data.entries, data.x_factor, data.title, data.metrics, data.rows)
    if data.x_factor == INSTRUCTIONS:
        left, right = axis.get_xlim()
        up_to = PAPER["e3"]["none_up_to"]
        _shade(axis, left, up_to, "0.94", f"paper: no transfer to k < 3 for I ≤ {up_to}")
        axis.set_xlim(left, right)
    _legend(axis)
    return figure


def draw_transition(
    axis, analysis: dict, levels: list[int], colour: str, band: bool, offset: float = 0.0
) -> None:
    """The pooled logistic over the grid, I50 and its bootstrap interval (as a bar `offset`
    above the threshold where not a band)."""
    fit = LogisticFit(**analysis["fit"])
    xs = np.geomspace(levels[0], levels[-1], 200)
    fitted = METRIC_NAMES[analysis["accuracy"]]
    axis.plot(xs, fit.predict(xs), color=colour, linewidth=0.9, alpha=0.8, linestyle=FIT_STYLE,
              label=f"logistic fit ({fitted})" if band else "_fit")  # fmt: skip
    low, high = analysis["i50_ci"]
    low, high = low or levels[0], high or levels[-1]  # off the grid: drawn to the grid's edge
    i50, threshold = analysis["i50"], analysis["threshold"]
    if band:
        axis.axvspan(low, high, color=colour, alpha=0.25, zorder=0.5, linewidth=0,
                     label=f"I50 {describe_i50(analysis).removeprefix('I50 = ')}")  # fmt: skip
        if i50 is not None:
            axis.axvline(i50, color=colour, linewidth=0.8, label="_i50")
    elif i50 is not None:
        axis.errorbar([i50], [threshold + offset], xerr=[[i50 - low], [high - i50]], color=colour,
                      marker="D", markersize=4, capsize=3, linewidth=1, label="_i50")  # fmt: skip


def mark_paper_thresholds(axis) -> None:
    """Shade where the paper reports no generalisation and mark its 300 / 400 / 1,000."""
    reference = PAPER["e1"]
    left = min(axis.get_xlim()[0], reference["zero_below"] / 2)
    _shade(
        axis, left, reference["zero_below"], "0.94", f"paper: ≈ 0 for I < {reference['zero_below']}"
    )
    axis.axvline(reference["step_near"], color="0.45", linestyle=":", linewidth=1.2,
                 label=f"paper: sharp step ≈ {reference['step_near']}")  # fmt: skip
    axis.axvline(reference["high_from"], color="0.2", linestyle="-.", linewidth=1.0,
                 label=f"paper: high from I ≥ {reference['high_from']:,}")  # fmt: skip


def e5_figure(data: FigureData):
    """Unseen and seen accuracy against I per occurrence count, with Table 1's values as open
    marks and the paper's instruction counts among the ticks."""
    metrics = ("unseen_accuracy", "seen_accuracy")
    figure, axis = plot_curves(data.entries, data.x_factor, data.title, metrics, data.rows)
    series = _series(data.entries, data.x_factor)
    colours = _colours(list(series), metrics)
    reference = PAPER["e5"]
    for label in series:
        occurrences = label.removeprefix("occurrences=")
        if data.x_factor == INSTRUCTIONS and occurrences in reference["table1"]:
            axis.plot(reference["table1_instructions"], reference["table1"][occurrences],
                      linestyle="none", marker="s", markerfacecolor="none", markersize=6,
                      color=colours[(label, "unseen_accuracy")],
                      label=f"paper Table 1 ({label})")  # fmt: skip
    if data.x_factor == INSTRUCTIONS:
        ours = list(axis.get_xticks())  # the paper's counts join them unless one is close
        theirs = [c for c in reference["table1_instructions"]
                  if not any(0.85 < c / v < 1.15 for v in ours)]  # fmt: skip
        ticks = sorted({*ours, *theirs})
        axis.set_xticks(ticks, [f"{v:g}" for v in ticks])
        axis.minorticks_off()
    _legend(axis)
    return figure


def e4_figure(data: FigureData):
    """Accuracy against the spread (uniform, then power laws of falling α), with the paper's
    finding at I = 1k shaded behind: high down to α ≈ 0.2, a steep drop for α ≤ 0.1."""
    figure, axis = plot_curves(data.entries, data.x_factor, data.title, data.metrics, data.rows)
    if data.x_factor != INSTRUCTIONS:
        reference = PAPER["e4"]
        spreads = list(dict.fromkeys(e["factors"][data.x_factor] for e in data.entries))
        alphas = [_alpha(spread) for spread in spreads]  # categorical axis: position = index
        bands = [
            ([i for i, a in enumerate(alphas) if a is None or a >= reference["high_down_to"]],
             "0.95", f"paper, I = 1k: high down to α ≈ {reference['high_down_to']}"),
            ([i for i, a in enumerate(alphas) if a is not None and a <= reference["drop_from"]],
             "0.86", f"paper, I = 1k: steep drop for α ≤ {reference['drop_from']}"),
        ]  # fmt: skip
        for positions, shade, label in bands:
            if positions:
                _shade(axis, min(positions) - 0.45, max(positions) + 0.45, shade, label)
    _legend(axis)
    return figure


def _alpha(spread) -> float | None:
    """The power-law α a spread label names ('0.1'), None for 'uniform' or any other label."""
    try:
        return float(spread)
    except (TypeError, ValueError):
        return None


def _legend(axis) -> None:
    """Legend outside the axes on the right when long, so it never hides the data."""
    _, labels = axis.get_legend_handles_labels()
    if len(labels) > 6:
        width, height = axis.figure.get_size_inches()
        axis.figure.set_size_inches(max(width, 8.6), height)  # the plot keeps its width
        axis.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        axis.legend(fontsize=7, frameon=False, loc="best")


def e7_figure(data: FigureData):
    """Markov algorithms: the plain curves, with the axis and legend counting algorithms."""
    figure = curves_figure(data)
    axis = figure.axes[0]
    axis.set_xlabel("training algorithms (log scale)")
    for text in axis.get_legend().get_texts():
        text.set_text(text.get_text().replace(" rules", " algorithms"))
    return figure


def save_figure(figure, out_dir: Path, name: str) -> list[str]:
    """Save as PNG and PDF; return the file names."""
    figure.tight_layout()
    files = []
    for suffix in ("png", "pdf"):
        image = io.BytesIO()
        figure.savefig(image, format=suffix, bbox_inches="tight")
        write_bytes_atomic(out_dir / f"{name}.{suffix}", image.getvalue())
        files.append(f"{name}.{suffix}")
    _pyplot().close(figure)
    return files
