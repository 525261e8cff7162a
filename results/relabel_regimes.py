"""Label the results committed before reports carried their regime (issue #31, 2026-12-07).

For each `summary.json` under results/cpu and results/cpu-xeon, the regime of its experiment
and preset (taken from experiments/NAME.toml; E1's old `cpu` preset is now
`cpu-single-letter`) is written into the summary's analysis, the finding the report judged is
kept under "finding", the verdict becomes the vocabulary's (`rewritelab.analysis.regime`), and the
regime table is appended to report.md. Numbers are not touched. Run once from the repo root:

    python results/relabel_regimes.py
"""

from __future__ import annotations

import json
from pathlib import Path

from rewritelab.analysis.regime import regime_of, regime_table, vocabulary_verdict
from rewritelab.core.errors import RewritelabError
from rewritelab.sweep.experiment import load_experiment

RENAMED = {("e1", "cpu"): "cpu-single-letter"}  # presets renamed when the regime moved
MARK = "## Regime (labelled 2026-12-07)"


def relabel(summary_path: Path) -> str:
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    lines = []
    for key, analysis in (summary.get("analysis") or {}).items():
        name, preset = key.split("/", 1)
        preset = RENAMED.get((name, preset), preset)
        try:
            experiment = load_experiment(Path("experiments") / f"{name}.toml", preset)
        except RewritelabError as error:
            return f"{summary_path}: skipped ({error})"
        rows = [{"config": {"dataset": point.dataset}} for point in experiment.points()]
        regime = regime_of(rows)
        finding = analysis.get("finding", analysis.get("verdict", "not judged"))
        analysis.update(finding=finding, verdict=vocabulary_verdict(finding, regime))
        analysis["regime"] = regime and regime.to_dict()
        lines += [f"- {key}: verdict **{analysis['verdict']}** (finding {finding})", ""]
        lines += regime_table(regime) if regime else ["(algorithm task: no rule space)"]
    summary_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    report = summary_path.with_name("report.md")
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    if MARK not in text:
        report.write_text(text.rstrip("\n") + f"\n\n{MARK}\n\n" + "\n".join(lines) + "\n")
    return f"{summary_path}: {', '.join(a['verdict'] for a in summary['analysis'].values())}"


def main() -> None:
    for path in sorted(Path("results").glob("cpu*/*/summary.json")):
        print(relabel(path))


if __name__ == "__main__":
    main()
