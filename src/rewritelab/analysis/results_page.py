"""One page for every experiment: the paper's claim, our result with its interval, the verdict.

`write_results_page(results_dir, out)` reads `<results_dir>/<experiment>/summary.json` (as
written by `rewritelab report`) and writes one Markdown page with a row per experiment and
preset: the paper's claim, our measurement (with the I50 interval where a transition was
fitted), the verdict, the command, the wall time and links to every figure. Replicates (two
directories with the same experiment and preset, e.g. on two machines) are told apart by
their directory names. Every summary's points are judged here by today's criteria
(`rewritelab.core.paper.CRITERIA`, printed under the table), so a criterion added after a run
reaches its row too; the I50s come from the transitions in the summary's "analysis" where
the report fitted them, and so does the count of runs that mastered their training rules (and
of those redrawn) where the report counted them. The command and wall time come from the
summary's "run" entry, when the run recorded them. A directory with a `NOTES.md` (the
write-up beside the report) gets a link to it; one with notes but no summary (an experiment
measured and not run, say) gets a row of its own, "not run", whose result is the notes' title.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from rewritelab.analysis.regime import VOCABULARY, Regime, regime_line, vocabulary_verdict
from rewritelab.analysis.report_transitions import measured_line
from rewritelab.core.atomic_files import write_text_atomic
from rewritelab.core.errors import RewritelabError
from rewritelab.core.paper import CRITERIA, claim, experiment_kind, judge

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
NOTES = "NOTES.md"
NOT_RUN = "not run"


def read_summaries(results_dir: Path) -> list[tuple[Path, dict]]:
    """(directory, summary) of each experiment directory holding a summary.json, by name."""
    if not results_dir.is_dir():
        raise RewritelabError(f"{results_dir} is not a directory of experiment results")
    found = []
    for path in sorted(results_dir.glob("*/summary.json")):
        try:
            found.append((path.parent, json.loads(path.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RewritelabError(f"{path} is not valid JSON: {error}") from None
    if not found:
        raise RewritelabError(f"no <experiment>/summary.json under {results_dir}")
    return found


def unrun_rows(results_dir: Path) -> list[dict]:
    """A "not run" row for each experiment directory with notes but no summary.json."""
    rows = []
    for notes in sorted(results_dir.glob(f"*/{NOTES}")):
        if (notes.parent / "summary.json").is_file():
            continue
        title = notes.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
        kind = experiment_kind(notes.parent.name)
        rows.append({
            "experiment": notes.parent.name, "kind": kind, "claim": claim(kind),
            "measured": title, "verdict": NOT_RUN, "regime": "–", "command": None,
            "wall": "–",
            "directory": notes.parent, "figures": [],
        })  # fmt: skip
    return rows


def _wall_time(seconds) -> str:
    if not isinstance(seconds, int | float):
        return "–"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def experiment_rows(directory: Path, summary: dict) -> list[dict]:
    """One row per "experiment/preset" in a summary: claim, result, verdict, run, figures."""
    run = summary.get("run") or {}
    rows = []
    for key, entries in summary.items():
        if "/" not in key or not isinstance(entries, list):
            continue  # "analysis", "run" and anything else that is not a point list
        name = key.split("/", 1)[0]
        analysis = (summary.get("analysis") or {}).get(key) or {}
        kind = analysis.get("kind") or experiment_kind(name)
        finding, basis = judge(kind, entries)
        regime = Regime.from_dict(analysis.get("regime"))
        verdict = vocabulary_verdict(finding, regime)
        measured = measured_line(basis, analysis.get("transitions") or {})
        measured += _mastery_note(analysis.get("mastery"))
        figures = analysis.get("figures") or sorted(
            p.name for p in directory.iterdir() if p.suffix in FIGURE_SUFFIXES
        )
        rows.append({
            "experiment": key, "kind": kind, "claim": claim(kind), "measured": measured,
            "verdict": verdict, "finding": finding, "regime": regime_line(regime),
            "command": run.get("command"),
            "wall": _wall_time(run.get("wall_s")), "directory": directory,
            "figures": [directory / f for f in figures],
        })  # fmt: skip
    return rows


def _mastery_note(mastery: dict | None) -> str:
    """'; 35 of 36 runs mastered (2 redrawn)' from a report's mastery counts (none in older
    summaries)."""
    if not mastery:
        return ""
    redrawn = f" ({mastery['redrawn']} redrawn)" if mastery.get("redrawn") else ""
    return f"; {mastery['mastered']} of {mastery['runs']} runs mastered{redrawn}"


def _verdict_cell(row: dict) -> str:
    """The verdict, and the finding it rests on where the two words differ."""
    finding = row.get("finding")
    if finding is None or finding == row["verdict"]:
        return f"**{row['verdict']}**"
    return f"**{row['verdict']}** (finding: {finding})"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _link(path: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(path, page_dir)).as_posix()


def rows_with_points(results_dir: str | Path) -> list[tuple[dict, list[dict]]]:
    """Every row of the page with its summary's points (none for a "not run" row): what the
    interactive page (`results_html`) draws."""
    results_dir = Path(results_dir)
    found = []
    for directory, summary in read_summaries(results_dir):
        for row in experiment_rows(directory, summary):
            points = summary.get(row["experiment"], [])
            found.append((row, [p for p in points if isinstance(p, dict) and "factors" in p]))
    return found + [(row, []) for row in unrun_rows(results_dir)]


def write_results_page(results_dir: str | Path, out: str | Path) -> Path:
    """Write the results page to `out` and return its path."""
    results_dir, out = Path(results_dir), Path(out)
    rows = [row for d, s in read_summaries(results_dir) for row in experiment_rows(d, s)]
    rows = sorted(rows + unrun_rows(results_dir), key=lambda row: row["experiment"])
    page_dir = out.parent.resolve()
    repeated = Counter(row["experiment"] for row in rows)  # a replicate: named by its directory
    lines = [
        "# Results",
        "",
        f"One row per experiment under `{results_dir}`; accuracies are seed means, intervals "
        "are 95% bootstrap intervals (see each report). Verdict criteria are listed below.",
        "",
        "| experiment | paper's claim | our result | regime | verdict | command | wall time "
        "| figures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        directory = row["directory"].resolve()
        notes = directory / NOTES
        label = row["experiment"]
        if repeated[label] > 1:
            label += f" ({directory.name})"
        name = (f"[{label}]({_link(directory / 'report.md', page_dir)})"
                if row["verdict"] != NOT_RUN else label)  # fmt: skip
        if notes.is_file():
            name += f" ([notes]({_link(notes, page_dir)}))"
        figures = ", ".join(f"[{f.name}]({_link(f.resolve(), page_dir)})" for f in row["figures"])
        command = f"`{row['command']}`" if row["command"] else "–"
        cells = [name, row["claim"], row["measured"], row["regime"],
                 _verdict_cell(row), command, row["wall"], figures or "–"]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Verdicts", "", VOCABULARY, "", "## Criteria of the findings", ""]
    for kind in sorted({row["kind"] for row in rows if row["verdict"] != NOT_RUN}):
        lines.append(f"- {kind}: {CRITERIA.get(kind, 'not judged: no criterion for this kind')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, "\n".join(lines) + "\n")
    return out
