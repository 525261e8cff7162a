"""Figures and tables from a results database: seed means with standard errors, per experiment.

`write_report(database, out_dir)` groups the finished points of each (experiment, preset) by
their full resolved config (seeds aside; points of an edited experiment file never count as
extra seeds of the old one: they get a `config` column), averages over seeds (mean, standard
error, seed count), draws the figure that suits the experiment's kind (PNG and PDF), and
writes `report.md` with the tables, the figures and the run metadata. E1 figures mark the
paper's thresholds; the E5 table sits beside the paper's Table 1. Only matplotlib is needed
(the `report` extra).
"""

from __future__ import annotations

import copy
import json
import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rewritelab.errors import RewritelabError
from rewritelab.sweep.database import ResultsDatabase

INSTRUCTIONS = "dataset.train.instructions"
PAPER_E1 = "paper: ≈0 below 300 instructions, sharp rise near 400, high from 1,000 on"
PAPER_TABLE1 = {  # training occurrences -> accuracy at 2000, 1000, 500, 200 instructions
    "1": [0.71, 0.41, 0.00, 0.00],
    "10": [0.88, 0.71, 0.00, 0.00],
    "20": [0.73, 0.28, 0.07, 0.00],
    "mix": [0.94, 0.94, 0.62, 0.00],
}
METRICS = ("unseen_accuracy", "seen_accuracy", "unseen_noop_accuracy", "unseen_has_op_accuracy")


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def config_id(row: dict) -> str:
    """A short hash of a row's full resolved config with the seeds left out: rows that share it
    differ only by seed, and only such rows are averaged together."""
    from rewritelab.sweep.experiment import content_hash

    config = copy.deepcopy(row.get("config") or {})
    config.pop("seed", None)
    for section in ("dataset", "train"):
        if isinstance(config.get(section), dict):
            config[section].pop("seed", None)
    return content_hash(config, 8)


def distinguish_configs(rows: list[dict]) -> list[dict]:
    """The rows, with a `config` factor added where one factor setting ran under several
    configs (an experiment file edited between sweeps), so they are never averaged together."""
    configs: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        configs[json.dumps(row["factors"], sort_keys=True)].add(config_id(row))
    if all(len(found) == 1 for found in configs.values()):
        return rows
    return [{**row, "factors": {**row["factors"], "config": config_id(row)}} for row in rows]


def aggregate(rows: list[dict]) -> list[dict]:
    """One entry per distinct full config (seeds aside): seed count and mean/stderr of each
    metric."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        if row["status"] == "done":
            groups[(json.dumps(row["factors"], sort_keys=True), config_id(row))].append(row)
    summary = []
    for (key, _config), members in groups.items():
        entry: dict[str, Any] = {"factors": json.loads(key), "seeds": len(members)}
        for metric in METRICS:
            values = [m["metrics"][metric] for m in members if m["metrics"].get(metric) is not None]
            if values:
                entry[metric], entry[f"{metric}_stderr"] = mean_and_stderr(values)
        entry["elapsed_s"] = sum(m["elapsed_s"] or 0 for m in members)
        summary.append(entry)
    first_seen: dict[tuple[str, str], int] = {}
    for row in rows:  # rows come in the grid's order
        for key, value in row["factors"].items():
            first_seen.setdefault((key, str(value)), len(first_seen))
    return sorted(summary, key=lambda e: _sort_key(e["factors"], first_seen))


def _sort_key(factors: dict, first_seen: dict) -> tuple:
    """Numbers in increasing order; labels in the order the grid declared them."""
    return tuple(
        (0, v) if isinstance(v, int | float) else (1, first_seen[(k, str(v))])
        for k, v in factors.items()
    )


def transition_point(entries: list[dict], threshold: float = 0.5) -> float | None:
    """Instruction count where unseen accuracy first crosses `threshold` (log interpolation)."""
    curve = sorted((e["factors"][INSTRUCTIONS], e["unseen_accuracy"]) for e in entries)
    for (i0, a0), (i1, a1) in zip(curve, curve[1:], strict=False):
        if a0 < threshold <= a1:
            fraction = (threshold - a0) / (a1 - a0)
            return math.exp(math.log(i0) + fraction * (math.log(i1) - math.log(i0)))
    return None


def _line_label(factors: dict, x_factor: str) -> str:
    others = {k: v for k, v in factors.items() if k != x_factor}
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in others.items()) or "all"


def seed_crossings(rows: list[dict], threshold: float = 0.5) -> dict[str, list[float | None]]:
    """Per line (setting of the non-instruction factors), the crossing of each seed's curve."""
    curves: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in rows:
        if row["status"] == "done":
            entry = {"factors": row["factors"], "unseen_accuracy": row["unseen_accuracy"]}
            curves[(_line_label(row["factors"], INSTRUCTIONS), row["seed"])].append(entry)
    crossings: dict[str, list[float | None]] = defaultdict(list)
    for (label, _seed), entries in sorted(curves.items()):
        crossings[label].append(transition_point(entries, threshold))
    return crossings


def transition_summary(entries: list[dict], crossings: list[float | None]) -> str:
    """Where the mean curve crosses 0.5, the seeds' spread, and the width from 0.2 to 0.8."""
    found = [c for c in crossings if c is not None]
    if not found:
        return f"not crossed in the grid ({len(crossings)} seeds)"
    mean, stderr = mean_and_stderr(found)
    text = f"I = {mean:.0f} ± {stderr:.0f} over {len(found)} of {len(crossings)} seeds"
    low, high = transition_point(entries, 0.2), transition_point(entries, 0.8)
    if low and high:
        text += f"; 0.2 -> 0.8 spans {math.log10(high / low):.2f} decades of I"
    return text


# ---------------------------------------------------------------- figures


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


def _series(entries: list[dict], x_factor: str) -> dict[str, list[dict]]:
    """Entries split into lines: one per setting of the factors other than `x_factor`."""
    lines: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        lines[_line_label(entry["factors"], x_factor)].append(entry)
    return lines


def plot_curves(entries: list[dict], x_factor: str, title: str, metrics: tuple[str, ...]):
    """Accuracy against a numeric factor (log axis), one line per other setting, error bars."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    for label, members in _series(entries, x_factor).items():
        if all(isinstance(e["factors"][x_factor], int | float) for e in members):
            members = sorted(members, key=lambda e: e["factors"][x_factor])
        xs = [e["factors"][x_factor] for e in members]
        for metric in metrics:
            if not all(metric in e for e in members):
                continue
            name = metric.replace("_accuracy", "").replace("_", " ")
            axis.errorbar(
                xs, [e[metric] for e in members], yerr=[e[f"{metric}_stderr"] for e in members],
                marker="o", markersize=3, capsize=2, linewidth=1,
                linestyle="--" if metric == "seen_accuracy" else "-",
                label=f"{name} ({label})" if label != "all" else name,
            )  # fmt: skip
    if all(isinstance(e["factors"][x_factor], int | float) for e in entries):
        axis.set_xscale("log")
    axis.set_xlabel(x_factor.rsplit(".", 1)[-1].replace("_", " "))
    axis.set_ylabel("exact-match accuracy")
    axis.set_ylim(-0.03, 1.03)
    axis.set_title(title, fontsize=9)
    return figure, axis


def mark_paper_thresholds(axis) -> None:
    """Shade where the paper reports no generalisation and mark its 300 / 400 / 1,000."""
    axis.axvspan(axis.get_xlim()[0], 300, color="0.9", zorder=0, label="paper: ≈0 (I < 300)")
    axis.axvline(400, color="0.5", linestyle=":", linewidth=1, label="paper: sharp rise ≈ 400")
    axis.axvline(1000, color="0.3", linestyle="-.", linewidth=1, label="paper: high from 1,000")


def save_figure(figure, out_dir: Path, name: str) -> list[str]:
    """Save as PNG and PDF; return the file names."""
    figure.tight_layout()
    files = []
    for suffix in ("png", "pdf"):
        figure.savefig(out_dir / f"{name}.{suffix}")
        files.append(f"{name}.{suffix}")
    _pyplot().close(figure)
    return files


# ---------------------------------------------------------------- tables and report


def markdown_table(entries: list[dict]) -> str:
    """Factor columns, then mean ± stderr of each metric and the seed count."""
    if not entries:
        return "_no finished points_\n"
    factors = list(entries[0]["factors"])
    metrics = [m for m in METRICS if any(m in e for e in entries)]
    header = [f.rsplit(".", 1)[-1] for f in factors] + [m.replace("_", " ") for m in metrics]
    lines = ["| " + " | ".join(header + ["seeds"]) + " |", "|" + "---|" * (len(header) + 1)]
    for e in entries:
        cells = [str(e["factors"][f]) for f in factors]
        cells += [f"{e[m]:.3f} ± {e[f'{m}_stderr']:.3f}" if m in e else "–" for m in metrics]
        lines.append("| " + " | ".join(cells + [str(e["seeds"])]) + " |")
    return "\n".join(lines) + "\n"


def e5_table(entries: list[dict]) -> str:
    """Our unseen accuracy per (occurrences, instructions) beside the paper's Table 1."""
    columns = [2000, 1000, 500, 200]
    ours = {
        (str(e["factors"].get("occurrences")), e["factors"].get(INSTRUCTIONS)): e for e in entries
    }
    lines = ["| occurrences | " + " | ".join(f"I={c} ours / paper" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]  # fmt: skip
    for row, paper in PAPER_TABLE1.items():
        cells = []
        for column, reference in zip(columns, paper, strict=True):
            entry = ours.get((row, column))
            cells.append(
                f"{entry['unseen_accuracy']:.2f} / {reference:.2f}"
                if entry
                else f"– / {reference:.2f}"
            )
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def x_axis_factor(entries: list[dict]) -> str | None:
    """The instruction count when every point has one, else the first factor (categorical)."""
    if not entries or not entries[0]["factors"]:
        return None
    if all(isinstance(e["factors"].get(INSTRUCTIONS), int) for e in entries):
        return INSTRUCTIONS
    return next(iter(entries[0]["factors"]))


def experiment_section(name: str, preset: str, rows: list[dict], out_dir: Path) -> list[str]:
    """The report section of one experiment/preset: summary, figure, tables, failures."""
    rows = distinguish_configs(rows)
    entries = aggregate(rows)
    failed = [r for r in rows if r["status"] == "failed"]
    done = [r for r in rows if r["status"] == "done"]
    lines = [f"## {name} (preset `{preset}`)", ""]
    lines.append(
        f"{len(done)} points done, {len(failed)} failed, "
        f"{sum(1 for r in rows if r['status'] in ('pending', 'running'))} unfinished; "
        f"compute time {sum(r['elapsed_s'] or 0 for r in done) / 60:.1f} min; "
        f"devices: {', '.join(sorted({r['device'] or '?' for r in done})) or '–'}."
    )
    lines.append("")
    x_factor = x_axis_factor(entries)
    if x_factor is not None:
        metrics = ("unseen_accuracy", "seen_accuracy")
        if any("unseen_noop_accuracy" in e for e in entries):  # split only where no-ops exist
            metrics += ("unseen_noop_accuracy", "unseen_has_op_accuracy")
        figure, axis = plot_curves(entries, x_factor, f"{name} ({preset})", metrics)
        if x_factor == INSTRUCTIONS and name.lower().startswith(("e0", "e1")):
            mark_paper_thresholds(axis)
            crossings = seed_crossings(rows)
            for label, members in _series(entries, INSTRUCTIONS).items():
                summary = transition_summary(members, crossings[label])
                lines.append(f"- unseen accuracy crosses 0.5 ({label}): {summary}")
            lines += [f"- {PAPER_E1}", ""]
        axis.legend(fontsize=6, frameon=False, loc="best")
        files = save_figure(figure, out_dir, f"{name}-{preset}")
        lines += [f"![{name}]({files[0]}) ([PDF]({files[1]}))", ""]
    lines.append(markdown_table(entries))
    if name.lower().startswith("e5") and entries:
        lines += [
            "Beside the paper's Table 1 (unseen accuracy, ours / paper):",
            "",
            e5_table(entries),
        ]
    for row in failed:
        lines.append(f"- failed: {row['factors']} seed {row['seed']}: `{row['error']}`")
    return lines


def check_rows(rows: list[dict], where: str | Path) -> None:
    """Refuse rows a report cannot use: factors that are not a table, or a finished point
    whose metrics are not numbers."""
    for row in rows:
        if not isinstance(row["factors"], dict):
            raise RewritelabError(f"{where}: point {row['point_id']} has invalid factors")
        if row["status"] != "done":
            continue
        metrics = row["metrics"]
        valid = isinstance(metrics, dict) and all(
            metrics.get(m) is None
            or (isinstance(metrics[m], int | float) and not isinstance(metrics[m], bool)
                and math.isfinite(metrics[m]))
            for m in METRICS
        )  # fmt: skip
        if not valid:
            raise RewritelabError(f"{where}: point {row['point_id']} has invalid metrics")


def write_report(database_path: str | Path, out_dir: str | Path) -> Path:
    """Write figures, `summary.json` and `report.md` for every experiment in the database."""
    database = ResultsDatabase(database_path, readonly=True)
    try:
        rows = database.rows()
    finally:
        database.close()
    if not rows:
        raise RewritelabError(f"{database_path} holds no results")
    check_rows(rows, database_path)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RewritelabError(f"cannot create report directory {out_dir}: {error}") from None
    by_experiment: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_experiment[(row["experiment"], row["preset"])].append(row)
    created = f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}"
    lines = [
        "# rewritelab results",
        "",
        f"Generated {created} from `{database_path}`; accuracies: seed means ± standard error.",
        "",
    ]
    summary = {}
    for (name, preset), members in sorted(by_experiment.items()):
        lines += experiment_section(name, preset, members, out_dir) + [""]
        summary[f"{name}/{preset}"] = aggregate(distinguish_configs(members))
    versions = sorted({json.dumps(r["versions"], sort_keys=True) for r in rows if r["versions"]})
    lines += ["## Run metadata", ""] + [f"- versions: `{v}`" for v in versions]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
