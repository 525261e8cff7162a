"""Figures and tables from a results database: seed means with standard errors, per experiment.

`write_report(database, out_dir)` groups the finished points of each (experiment, preset) by
their full resolved config (seeds aside; points of an edited experiment file never count as
extra seeds of the old one: they get a `config` column), averages over seeds (mean, standard
error, seed count), draws the figure that suits the experiment's kind (PNG and PDF, see
`rewritelab.analysis.figures`), fits the transition where the x axis is the instruction count
(`rewritelab.analysis.transition`: I50 with a bootstrap interval, at the final evaluation
and at each run's best training step), judges the paper's claim (`rewritelab.core.paper`), and
writes `report.md` and `summary.json`. What each experiment kind gets is `KINDS`
(`rewritelab.analysis.kinds`); the kind is the one the sweep recorded. Needs matplotlib and
scipy (the `report` extra).
"""

from __future__ import annotations

import copy
import json
import math
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rewritelab.analysis.adaptive_search import search_lines
from rewritelab.analysis.figures import (
    FigureData,
    line_label,
    plot_curves,  # noqa: F401  (re-exported for existing callers)
    save_figure,
)
from rewritelab.analysis.intervals import pooled_wilson
from rewritelab.analysis.kinds import KINDS, draw
from rewritelab.analysis.regime import (
    regime_of,
    regime_table,
    vocabulary_verdict,
)
from rewritelab.analysis.report_transitions import (
    fitted_accuracy,
    line_transitions,
    measured_line,
    transition_lines,
)
from rewritelab.core.atomic_files import write_text_atomic
from rewritelab.core.errors import RewritelabError
from rewritelab.core.paper import (
    INSTRUCTIONS,
    MASTERED,
    PLATEAU_LOSS,
    claim,
    experiment_kind,
    judge,
)
from rewritelab.sweep.database import ResultsDatabase, current_rows
from rewritelab.sweep.experiment import PLAIN_NAME

METRICS = ("unseen_accuracy", "seen_accuracy", "unseen_noop_accuracy", "unseen_has_op_accuracy")
WILSON = ("unseen_accuracy", "seen_accuracy")  # with a pooled Wilson interval where counted


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
        for split in ("unseen", "seen"):
            interval = pooled_wilson([m["metrics"] for m in members], split)
            if interval is not None:
                entry[f"{split}_accuracy_wilson95"] = list(interval)
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


# ---------------------------------------------------------------- the transition, fitted


# ---------------------------------------------------------------- tables and report


def markdown_table(entries: list[dict]) -> str:
    """Factor columns, then mean ± stderr (over seeds) of each metric, the 95% Wilson
    interval over the test examples of unseen and seen accuracy where the runs counted
    their examples, and the seed count."""
    if not entries:
        return "_no finished points_\n"
    factors = list(entries[0]["factors"])
    metrics = [m for m in METRICS if any(m in e for e in entries)]
    intervals = [f"{m}_wilson95" for m in WILSON if any(f"{m}_wilson95" in e for e in entries)]
    header = [f.rsplit(".", 1)[-1] for f in factors] + [m.replace("_", " ") for m in metrics]
    header += [f"{m.split('_')[0]} 95% (Wilson)" for m in intervals]
    lines = ["| " + " | ".join(header + ["seeds"]) + " |", "|" + "---|" * (len(header) + 1)]
    for e in entries:
        cells = [str(e["factors"][f]) for f in factors]
        cells += [f"{e[m]:.3f} ± {e[f'{m}_stderr']:.3f}" if m in e else "–" for m in metrics]
        cells += [f"{e[i][0]:.3f} – {e[i][1]:.3f}" if i in e else "–" for i in intervals]
        lines.append("| " + " | ".join(cells + [str(e["seeds"])]) + " |")
    return "\n".join(lines) + "\n"


def x_axis_factor(entries: list[dict], kind: str = "generic") -> str | None:
    """The kind's own x factor (E4: the spread, as the paper's Fig. 4) when every point has it,
    else the instruction count when it varies, else the first factor that varies (a grid at
    one I, like a mastery check, is drawn against what it compares), else the first factor."""
    if not entries or not entries[0]["factors"]:
        return None
    own = KINDS[kind].x_factor
    if own and all(own in e["factors"] for e in entries):
        return own

    def varies(factor: str) -> bool:
        levels = {json.dumps(e["factors"].get(factor), sort_keys=True) for e in entries}
        return len(levels) > 1

    counted = all(isinstance(e["factors"].get(INSTRUCTIONS), int) for e in entries)
    if counted and varies(INSTRUCTIONS):
        return INSTRUCTIONS
    factors = list(entries[0]["factors"])
    return next((factor for factor in factors if varies(factor)), factors[0])


def kind_of(name: str, rows: list[dict]) -> str:
    """The experiment's kind as its sweep recorded it; for databases written before the kind
    was recorded (results schema < 3), read from the experiment's name (`e1-dense` -> `e1`)."""
    recorded = {row.get("kind") for row in rows} - {None}
    if len(recorded) > 1:
        raise RewritelabError(f"experiment {name!r} was recorded under several kinds: "
                              f"{', '.join(sorted(recorded))}")  # fmt: skip
    kind = recorded.pop() if recorded else experiment_kind(name)
    if kind not in KINDS:
        raise RewritelabError(f"experiment {name!r} has unknown kind {str(kind)[:40]!r}")
    return kind


def build_section(
    name: str, preset: str, rows: list[dict], out_dir: Path, superseded: int = 0,
    search: list[dict] | None = None,
) -> tuple[list, dict]:  # fmt: skip
    """The report section of one experiment/preset and its analysis for `summary.json`:
    summary line, figure, transition, the adaptive search's rounds (`search`, if it ran),
    tables, paper claim and verdict, failures. `superseded`: how many older rows of its points
    were left out (`current_rows`)."""
    kind = kind_of(name, rows)
    rows = distinguish_configs(rows)
    entries = aggregate(rows)
    failed = [r for r in rows if r["status"] == "failed"]
    done = [r for r in rows if r["status"] == "done"]
    compute_s = sum(r["elapsed_s"] or 0 for r in done)
    lines = [f"## {name} (preset `{preset}`)", ""]
    lines.append(
        f"{len(done)} points done, {len(failed)} failed, "
        f"{sum(1 for r in rows if r['status'] in ('pending', 'running'))} unfinished; "
        + (
            f"{superseded} superseded rows left out (an older failed or edited run of a point "
            "that later succeeded); "
            if superseded
            else ""
        )
        + f"compute time {compute_s / 60:.1f} min; "
        f"devices: {', '.join(sorted({_device(r) for r in done})) or '–'}."
    )
    lines.append("")
    analysis: dict[str, Any] = {"kind": kind, "compute_s": compute_s, "figures": [],
                                "superseded_rows": superseded}  # fmt: skip
    x_factor = x_axis_factor(entries, kind)
    transitions = {}
    if x_factor == INSTRUCTIONS and KINDS[kind].transition:
        transitions = line_transitions(rows, fitted_accuracy(KINDS[kind].noop_split, rows))
        analysis["transitions"] = transitions
    if x_factor is not None:
        metrics = ("unseen_accuracy", "seen_accuracy")
        if KINDS[kind].noop_split and any("unseen_noop_accuracy" in e for e in entries):
            metrics += ("unseen_noop_accuracy", "unseen_has_op_accuracy")
        data = FigureData(f"{name} ({preset})", kind, x_factor, entries, done, metrics, transitions)
        files = save_figure(draw(data), out_dir, f"{name}-{preset}")
        analysis["figures"] = files
        lines += [f"![{name}]({files[0]}) ([PDF]({files[1]}))", ""]
    lines += transition_lines(transitions)
    if search:
        lines += search_lines(search)
        analysis["search"] = search
    lines.append(markdown_table(entries))
    if KINDS[kind].table and entries:
        caption, table = KINDS[kind].table
        lines += [caption, "", table(entries)]
    finding, basis = judge(kind, entries)
    regime = regime_of(done or rows)
    verdict = vocabulary_verdict(finding, regime)
    analysis.update(claim=claim(kind), verdict=verdict, finding=finding, verdict_basis=basis)
    analysis["regime"] = regime and regime.to_dict()
    analysis["measured"] = measured_line(basis, transitions)
    lines += [f"- paper: {claim(kind)}", f"- verdict: **{verdict}** (finding {finding}: {basis})"]
    if regime is not None:
        lines += [""] + regime_table(regime) + [""]
    mastery, analysis["mastery"] = mastery_lines(done)
    lines += mastery + [""]
    for row in failed:
        lines.append(f"- failed: {row['factors']} seed {row['seed']}: `{row['error']}`")
    return lines, analysis


def _device(row: dict) -> str:
    """'cpu (fp32)': the device and, where the run logged it, the precision it computed in."""
    precision = ((row.get("metrics") or {}).get("final_train") or {}).get("precision")
    return (row["device"] or "?") + (f" ({precision})" if precision else "")


def mastery_lines(done: list[dict]) -> tuple[list[str], dict]:
    """Which runs mastered their own training rules (seen accuracy ≥ MASTERED), which did not,
    and which were kept from a redraw after a first draw that ended on the optimisation
    plateau (`redraw_unmastered`): report lines and their counts."""
    unmastered = [r for r in done if (r["seen_accuracy"] or 0.0) < MASTERED]
    redrawn = [r for r in done if r["metrics"].get("redrawn")]
    line = f"- mastered (seen ≥ {MASTERED}): {len(done) - len(unmastered)} of {len(done)} runs"
    if unmastered:
        line += "; not: " + "; ".join(
            f"{_run_name(r)} (seen {r['seen_accuracy']:.3f})" for r in unmastered
        )
    lines = [line]
    if redrawn:
        draws = [
            f"{_run_name(r)} (seen "
            + " → ".join(f"{d['seen_accuracy']:.2f}" for d in r["metrics"]["redrawn"])
            + f" → {r['seen_accuracy']:.2f})"
            for r in redrawn
        ]
        lines.append(
            f"- redrawn: {len(redrawn)} run(s) ended their first draw on the optimisation "
            f"plateau (seen < {MASTERED}, final training loss ≥ {PLATEAU_LOSS}) and were "
            f"trained again from a fresh one (same data, new initial weights and batch order): "
            + "; ".join(draws)
        )
    lines += stopping_lines(done)
    counts = {"runs": len(done), "mastered": len(done) - len(unmastered), "redrawn": len(redrawn)}
    return lines, counts


def stopping_lines(done: list[dict]) -> list[str]:
    """How long runs that stop once they master their training examples
    (`stop_at_train_accuracy`, which logs `train_accuracy`) trained: a report line, none when
    no run measured its training accuracy."""
    finals = [r["metrics"].get("final_train", {}) for r in done]
    epochs = sorted(f["epoch"] for f in finals if "train_accuracy" in f and "epoch" in f)
    if not epochs:
        return []
    return [
        f"- trained until mastered (`stop_at_train_accuracy`: the first epoch whose exact match "
        f"on a sample of training examples reaches it, or the last): {_epochs(epochs[0])}-"
        f"{_epochs(epochs[-1])} epochs, median {_epochs(statistics.median(epochs))}, in "
        f"{len(epochs)} runs"
    ]


def _epochs(value: float) -> str:
    """An epoch count to two decimals at most (evaluations a fraction of an epoch apart)."""
    return f"{round(value, 2):g}"


def _run_name(row: dict) -> str:
    return f"{line_label(row['factors'], '')} seed {row['seed']}"


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


def write_report(database_path: str | Path, out_dir: str | Path, run: dict | None = None) -> Path:
    """Write figures, `summary.json` and `report.md` for every experiment in the database.

    `summary.json` holds, per "experiment/preset", the seed means; under "analysis", per
    experiment, its kind, figures, transitions, the paper's claim and the verdict; and under
    "run" the given `run` facts (e.g. {"command": ..., "wall_s": ...}) for the results page.
    """
    database = ResultsDatabase(database_path, readonly=True)
    try:
        rows = database.rows()
        searches = database.search_rounds()
    finally:
        database.close()
    if not rows:
        raise RewritelabError(f"{database_path} holds no results")
    check_rows(rows, database_path)
    rows, superseded = current_rows(rows)
    dropped = Counter((row["experiment"], row["preset"]) for row in superseded)
    by_experiment: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        for what in ("experiment", "preset"):  # each becomes part of a file name
            if not isinstance(row[what], str) or not PLAIN_NAME.fullmatch(row[what]):
                raise RewritelabError(
                    f"{database_path}: {what} name {str(row[what])[:80]!r} is not a plain "
                    "identifier (letters, digits, _ and -): refusing to make a path of it"
                )
        by_experiment[(row["experiment"], row["preset"])].append(row)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RewritelabError(f"cannot create report directory {out_dir}: {error}") from None
    created = f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}"
    lines = [
        "# rewritelab results",
        "",
        f"Generated {created} from `{database_path}`; accuracies: seed means ± standard error.",
        "",
    ]
    summary: dict[str, Any] = {}
    analyses = {}
    for (name, preset), members in sorted(by_experiment.items()):
        section, analyses[f"{name}/{preset}"] = build_section(
            name, preset, members, out_dir, dropped[(name, preset)], searches.get((name, preset))
        )
        lines += section + [""]
        summary[f"{name}/{preset}"] = aggregate(distinguish_configs(members))
    summary["analysis"] = analyses
    if run:
        summary["run"] = run
    versions = sorted({json.dumps(r["versions"], sort_keys=True) for r in rows if r["versions"]})
    lines += ["## Run metadata", ""] + [f"- versions: `{v}`" for v in versions]
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    report = out_dir / "report.md"
    write_text_atomic(report, "\n".join(lines) + "\n")
    return report
