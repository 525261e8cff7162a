"""Report analysis on synthetic results: transitions, best vs final step, figures, results page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_results import INSTRUCTIONS, e1_rows, logistic, synthetic_row, write_rows

from rewritelab.analysis import transition
from rewritelab.analysis.figures import FigureData
from rewritelab.analysis.kinds import draw, e5_table
from rewritelab.analysis.report import aggregate, build_section, write_report
from rewritelab.analysis.report_transitions import line_transitions
from rewritelab.cli.main import main
from rewritelab.core.paper import PAPER, REPRODUCED, experiment_kind, judge
from rewritelab.sweep.runner import headline_metrics, training_history


@pytest.fixture(autouse=True)
def few_replicates(monkeypatch):
    monkeypatch.setattr(transition, "BOOTSTRAP_REPLICATES", 60)


def test_headline_metrics_keep_per_rule_accuracies_and_runs_keep_their_history(tmp_path):
    def split(accuracies):
        by_rule = {str(i): {"accuracy": a} for i, a in enumerate(accuracies)}
        overall = {"accuracy": 0.5, "stderr": 0.1, "examples": 4}
        return {"overall": overall, "by_noop": {}, "by_occurrences": {},
                "by_pattern_length": {}, "by_instruction": by_rule}  # fmt: skip

    metrics = headline_metrics(split([0.0, 1.0, 0.25]), split([1.0]), {"step": 3})
    assert metrics["unseen_by_instruction"] == {"0": 0.0, "1": 1.0, "2": 0.25}
    lines = [{"step": 10, "epoch": 0.5, "train_loss": 1.0, "unseen_accuracy": 0.2},
             {"step": 20, "epoch": 1.0, "seen_accuracy": 0.9, "unseen_accuracy": 0.1}]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert training_history(tmp_path) == [
        {"step": 10, "epoch": 0.5, "unseen_accuracy": 0.2},
        {"step": 20, "epoch": 1.0, "seen_accuracy": 0.9, "unseen_accuracy": 0.1},
    ]
    assert training_history(tmp_path / "gone") == []


def test_best_step_transition_comes_before_the_final_one_and_reads_run_dirs(tmp_path):
    rows = e1_rows()
    transitions = line_transitions(rows)["all"]
    final, best, last = transitions["final"], transitions["best_step"], transitions["final_step"]
    assert final["bootstrap"]["resampled"] == "seeds and test rules"
    assert best["bootstrap"]["resampled"] == "seeds"
    # the synthetic histories peak 0.05 above the final accuracy: the best step crosses earlier
    assert best["i50"] < last["i50"]
    assert 150 < final["i50"] < 300  # seeds switch on around I = 200
    # without a stored history, the run directory's metrics.jsonl is read
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 5, "unseen_accuracy": 0.7}\n'
                                           '{"step": 9, "unseen_accuracy": 0.6}\n')  # fmt: skip
    for row in rows:
        del row["metrics"]["history"]
        row["run_dir"] = str(run_dir)
    from_disk = line_transitions(rows)["all"]
    assert from_disk["best_step"]["share_generalising"] == {i: 1.0 for i in final["grid"]}
    for row in rows:
        row["run_dir"] = str(tmp_path / "deleted")
    assert set(line_transitions(rows)["all"]) == {"final"}  # no history: final only


def test_report_summary_states_transition_claim_and_verdict(tmp_path):
    write_rows(tmp_path / "r.sqlite", e1_rows())
    run = {"command": "rewritelab reproduce e1 --preset cpu", "wall_s": 61}
    report = write_report(tmp_path / "r.sqlite", tmp_path / "out", run=run)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["seeds"] for e in summary["e1/cpu"]] == [3] * 7
    analysis = summary["analysis"]["e1/cpu"]
    assert analysis["kind"] == "e1" and analysis["verdict"] == REPRODUCED
    assert analysis["figures"] == ["e1-cpu.png", "e1-cpu.pdf"]
    assert set(analysis["transitions"]["all"]) == {"final", "best_step", "final_step"}
    assert "I50 = " in analysis["measured"] and summary["run"] == run
    text = report.read_text()
    assert "best training step: I50 = " in text and "share of seeds with unseen ≥ 0.5" in text
    assert f"paper: {PAPER['e1']['claim']}" in text and "verdict: **reproduced**" in text


def test_e1_figure_shows_seeds_fit_interval_and_the_papers_marks():
    rows = e1_rows(seeds=2)
    entries = aggregate(rows)
    transitions = line_transitions(rows)
    figure = draw(FigureData("e1", "e1", INSTRUCTIONS, entries, rows, transitions=transitions))
    axis = figure.axes[0]
    labels = axis.get_legend_handles_labels()[1]
    assert {"unseen rules", "seen rules", "logistic fit (unseen rules)"} <= set(labels)
    assert any(label.startswith("I50 ") and "95% CI" in label for label in labels)
    assert sum(label.startswith("paper:") for label in labels) == 3
    seed_lines = [line for line in axis.lines if line.get_label() == "_seed"]
    assert len(seed_lines) == 2 * 2  # two seeds, unseen and seen
    assert max(line.get_alpha() for line in seed_lines) < 0.5  # faint
    unseen = axis.lines[0]  # the first error-bar line: seed means of unseen accuracy
    assert list(unseen.get_ydata()) == pytest.approx([e["unseen_accuracy"] for e in entries])
    assert axis.get_xscale() == "log" and "instructions" in axis.get_xlabel()


@pytest.mark.parametrize(
    "kind, label, span",
    [("e2", "paper: generalises from I ≈ 400–500", (400, 500)),
     ("e3", "paper: no transfer to k < 3 for I ≤ 500", (None, 500)),
     ("e0", None, None)],
)  # fmt: skip
def test_e2_and_e3_figures_shade_where_the_paper_puts_its_instruction_counts(kind, label, span):
    rows = e1_rows(grid=(64, 128, 256, 1024), seeds=2)
    transitions = line_transitions(rows)
    figure = draw(FigureData(kind, kind, INSTRUCTIONS, aggregate(rows), rows,
                             transitions=transitions))  # fmt: skip
    axis = figure.axes[0]
    bands = [p for p in axis.patches if p.get_label().startswith("paper:")]
    if label is None:  # E0 is not in the paper: nothing to mark
        assert bands == []
        return
    (band,) = bands
    assert band.get_label() == label and label in axis.get_legend_handles_labels()[1]
    low, high = span
    xs = band.get_x(), band.get_x() + band.get_width()
    assert xs[1] == pytest.approx(high) and (low is None or xs[0] == pytest.approx(low))
    assert axis.get_xlim()[0] < 64 < 1024 < axis.get_xlim()[1]  # the grid stays in view


def test_the_i50_bars_of_several_lines_are_staggered_about_the_threshold():
    rows = []
    for variant, i50 in (("default", 100.0), ("2 layers", 110.0), ("24 epochs", 120.0)):
        for row in e1_rows(i50=i50, seeds=2):
            row["experiment"] = "e0"
            row["factors"] = {**row["factors"], "variant": variant}
            row["point_id"] += variant
            rows.append(row)
    transitions = line_transitions(rows)
    figure = draw(FigureData("e0", "e0", INSTRUCTIONS, aggregate(rows), rows, ("unseen_accuracy",),
                             transitions))  # fmt: skip
    bars = [c for c in figure.axes[0].containers if c.get_label() == "_i50"]
    heights = sorted(float(bar.lines[0].get_ydata()[0]) for bar in bars)
    assert heights == pytest.approx([0.475, 0.5, 0.525])  # one line each, centred on 0.5
    centres = sorted(float(bar.lines[0].get_xdata()[0]) for bar in bars)
    fitted = sorted(t["final"]["i50"] for t in transitions.values())
    assert centres == pytest.approx(fitted)  # each bar still sits at its line's I50


def test_e5_figure_marks_table_1_beside_ours():
    rows = []
    for seed in range(2):
        for occurrences in ("1", "mix"):
            for instructions in (200, 500, 1000, 2000):
                unseen = logistic(instructions, 0, 0.9, 3, 700)
                rows.append(synthetic_row("e5", "cpu", seed, {INSTRUCTIONS: instructions,
                            "occurrences": occurrences}, unseen, 1.0, 0, None, False))  # fmt: skip
    figure = draw(FigureData("e5", "e5", INSTRUCTIONS, aggregate(rows), rows, ("unseen_accuracy",)))
    marks = {line.get_label(): list(line.get_ydata()) for line in figure.axes[0].lines}
    assert marks["paper Table 1 (occurrences=mix)"] == PAPER["e5"]["table1"]["mix"]
    assert marks["paper Table 1 (occurrences=1)"] == PAPER["e5"]["table1"]["1"]


def test_e7_figure_counts_algorithms_not_rules():
    rows = [synthetic_row("e7", "cpu", seed, {INSTRUCTIONS: i, "train.target": target},
                          0.5, 1.0, 0, None, False)
            for seed in (0, 1) for i in (8, 64) for target in ("step", "final")]  # fmt: skip
    figure = draw(FigureData("e7", "e7", INSTRUCTIONS, aggregate(rows), rows))
    axis = figure.axes[0]
    assert axis.get_xlabel() == "training algorithms (log scale)"
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert "unseen algorithms" in legend and "seen algorithms" in legend
    assert not any("rules" in text or "instructions" in text for text in legend)


def test_e5_table_gives_our_grid_and_the_papers_table_1():
    rows = [synthetic_row("e5", "cpu", seed, {INSTRUCTIONS: instructions, "occurrences": occ},
                          unseen, 1.0, 0, None, False)
            for seed, shift in ((0, 0.0), (1, 0.2))
            for occ, instructions, unseen in (("1", 256, 0.1), ("mix", 256, 0.5), ("1", 512, 0.7))
            for unseen in (unseen + shift,)]  # fmt: skip
    table = e5_table(aggregate(rows))
    ours, papers = table.split("The paper's")
    lines = {line.split(" | ")[0]: line for line in ours.splitlines() if line.startswith("| ")}
    assert "I=512 | I=256" in lines["| occurrences \\ instructions"]
    assert lines["| 1"] == "| 1 | 0.80 ± 0.10 | 0.20 ± 0.10 |"  # seeds 0.7/0.9 and 0.1/0.3
    assert lines["| mix"] == "| mix | – | 0.60 ± 0.10 |"  # no point at I = 512
    assert "| mix | 0.94 | 0.94 | 0.62 | 0.00 |" in papers


@pytest.mark.parametrize("name, split", [("e2", True), ("e7", False)])
def test_only_the_no_op_experiment_splits_its_figure_by_no_op_inputs(
    tmp_path, monkeypatch, name, split
):
    from rewritelab.analysis import report

    drawn = []
    monkeypatch.setattr(report, "draw", lambda data: drawn.append(data) or draw(data))
    rows = [synthetic_row(name, "cpu", seed, {INSTRUCTIONS: i}, 0.5, 1.0, 0, None, False)
            for seed in (0, 1) for i in (8, 64)]  # fmt: skip
    for row in rows:
        row["metrics"].update(unseen_noop_accuracy=0.9, unseen_has_op_accuracy=0.4)
    report.build_section(name, "cpu", rows, tmp_path)
    (data,) = drawn
    assert ("unseen_noop_accuracy" in data.metrics) is split
    assert data.metrics[:2] == ("unseen_accuracy", "seen_accuracy")


def e2_rows(i50: float, noop: float = 0.95, logged_has_op: bool = True) -> list[dict]:
    """E2-like runs: a test set half of no-ops (right at `noop`), and on inputs that hold x a
    logistic switching on at `i50`; overall unseen accuracy is the mean of the two halves.
    Their histories log has-op accuracy if `logged_has_op` (as runs before it did not)."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(3):
        for instructions in (8, 32, 64, 128, 256, 512, 2048):
            has_op = np.clip(rng.normal(logistic(instructions, 0.0, 1.0, 2.0, i50), 0.05, 40), 0, 1)
            overall = (noop + has_op.mean()) / 2
            row = synthetic_row("e2", "cpu", seed, {INSTRUCTIONS: instructions}, overall, 1.0,
                                0, rng, history=False)  # fmt: skip
            row["metrics"].update(
                unseen_noop_accuracy=noop,
                unseen_has_op_accuracy=float(has_op.mean()),
                unseen_by_has_op_instruction={str(i): float(a) for i, a in enumerate(has_op)},
            )
            logged = {"step": 100, "unseen_accuracy": overall}
            if logged_has_op:
                logged["unseen_has_op_accuracy"] = float(has_op.mean())
            row["metrics"]["history"] = [logged]
            rows.append(row)
    return rows


def test_the_no_op_experiment_fits_its_transition_on_inputs_that_hold_x(tmp_path):
    rows = e2_rows(i50=128.0)
    lines, analysis = build_section("e2", "cpu", rows, tmp_path)
    fits = analysis["transitions"]["all"]
    assert {fit["accuracy"] for fit in fits.values()} == {"unseen_has_op_accuracy"}
    assert 100 < fits["final"]["i50"] < 165  # where the has-op half switches on
    assert fits["final"]["bootstrap"]["resampled"] == "seeds and test rules"
    assert 100 < fits["best_step"]["i50"] < 165
    # overall accuracy starts at ~0.48 (the no-op half): it crosses 0.5 as has-op leaves 0
    assert line_transitions(rows)["all"]["final"]["i50"] < 64  # the has-op one: 128
    assert any("on inputs that hold x (has-op) crossing 0.5" in line for line in lines)
    assert analysis["measured"].count("has-op I50 = ") == 1
    metrics = ("unseen_accuracy", "seen_accuracy", "unseen_noop_accuracy", "unseen_has_op_accuracy")
    for row in rows[::2]:  # a second line, so that the fits share one legend key
        row["factors"] = {**row["factors"], "noop": 0.3}
    two_lines = line_transitions(rows, "unseen_has_op_accuracy")
    figure = draw(FigureData("e2", "e2", INSTRUCTIONS, aggregate(rows), rows, metrics, two_lines))
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "logistic fit (unseen, inputs with x), I50 ± CI" in labels
    # histories from before has-op accuracy was logged: the final evaluation alone
    _, analysis = build_section("e2", "cpu", e2_rows(i50=128.0, logged_has_op=False), tmp_path)
    assert set(analysis["transitions"]["all"]) == {"final"}


@pytest.mark.parametrize("name", ["e7", "e0"])  # one line per target / per varied setting
def test_an_unjudged_experiment_states_the_i50_of_each_line_for_the_results_page(tmp_path, name):
    rows = []
    for target, i50 in (("step", 30.0), ("final", 300.0)):
        for row in e1_rows(i50=i50, seeds=2):
            row["experiment"] = name
            row["factors"] = {**row["factors"], "train.target": target}
            row["point_id"] += target
            rows.append(row)
    _, analysis = build_section(name, "cpu", rows, tmp_path)
    assert analysis["verdict"] == "not tested" and analysis["finding"] == "not judged"
    step, final = analysis["measured"].split("; ")
    assert step.startswith("target=step: I50 = ") and final.startswith("target=final: I50 = ")
    fitted = [float(part.split("I50 = ")[1].split(" ")[0]) for part in (step, final)]
    assert 15 < fitted[0] < 60 and 150 < fitted[1] < 600  # near the synthetic 30 and 300


def test_kinds_and_verdict_criteria():
    assert [experiment_kind(n) for n in ("e1", "E5", "e1-dense", "e2_cpu", "mine")] == [
        "e1", "e5", "e1", "e2", "generic",
    ]  # fmt: skip

    def entry(instructions, unseen, seen=1.0):
        return {"factors": {INSTRUCTIONS: instructions}, "unseen_accuracy": unseen,
                "seen_accuracy": seen}  # fmt: skip

    assert judge("e1", [entry(10, 0.05), entry(1000, 0.95)])[0] == "reproduced"
    assert judge("e1", [entry(10, 0.05), entry(1000, 0.95, seen=0.8)])[0] == "partly"
    assert judge("e1", [entry(10, 0.2), entry(1000, 0.4)])[0] == "not reproduced"
    assert judge("e6", [entry(10, 0.2)])[0] == "not judged"  # one I, no halving
    # E2 judges inputs that hold x: the no-op half of a share lifts its overall accuracy
    shares = [entry(512, 0.98) | {"factors": {INSTRUCTIONS: 512, "noop": n}} for n in (1, 3)]
    assert judge("e2", shares)[0] == "reproduced"  # no split stored: overall accuracy
    shares[1]["unseen_has_op_accuracy"], shares[0]["unseen_has_op_accuracy"] = 0.84, 0.99
    verdict, facts = judge("e2", shares)
    assert verdict == "partly" and "has-op unseen 0.84–0.99" in facts


def test_e3_e4_e5_verdicts_need_every_point_mastered():
    def point(factor, label, unseen, seen=1.0, instructions=512):
        return {"factors": {INSTRUCTIONS: instructions, factor: label},
                "unseen_accuracy": unseen, "seen_accuracy": seen}  # fmt: skip

    families = [point("family", f, a) for f, a in [("mix", 0.6), ("repeated", 0.1)]]
    assert judge("e3", families) == ("reproduced", "best unseen: mixture 0.60, single family "
                                     "0.10; seen ≥ 1.00")  # fmt: skip
    families[1]["seen_accuracy"] = 0.7  # the single family failed to learn its own rules
    assert judge("e3", families) == ("partly", "best unseen: mixture 0.60, single family "
                                     "0.10; seen ≥ 0.70")  # fmt: skip

    spreads = [point("spread", s, a, instructions=i) for i, s, a in [
        (512, "uniform", 1.0), (512, "0.03", 0.92),  # flat at the large I
        (256, "uniform", 0.98), (256, "0.5", 0.97), (256, "0.1", 0.6), (256, "0.03", 0.5),
    ]]  # fmt: skip
    verdict, facts = judge("e4", spreads)  # drop: 0.98 - (0.6 + 0.5) / 2 = 0.43
    assert verdict == "reproduced"
    assert facts == (
        "min unseen at I = 512: 0.92; drop uniform → α ≤ 0.1 at I = 256: 0.43; seen ≥ 1.00"
    )
    spreads[-1]["seen_accuracy"] = 0.8  # a skewed spread leaves rare rules unlearnt
    assert judge("e4", spreads)[0] == "partly"
    spreads[4]["unseen_accuracy"] = spreads[5]["unseen_accuracy"] = 0.9  # no drop either
    assert judge("e4", spreads)[0] == "partly"  # flat only

    counts = [point("occurrences", c, a) for c, a in [("1", 1.0), ("4", 0.3), ("mix", 0.98)]]
    expected = "I = 512: mix 0.98 vs best single 1.00; seen ≥ 1.00"
    assert judge("e5", counts) == ("reproduced", expected)
    counts[2]["seen_accuracy"] = 0.67  # our first E5 cpu run: the mix not learnt in 12 epochs
    assert judge("e5", counts)[0] == "partly"
    counts[2]["unseen_accuracy"] = 0.18
    assert judge("e5", counts)[0] == "not reproduced"
    unstored = [{k: v for k, v in c.items() if k != "seen_accuracy"} for c in counts]
    assert judge("e5", unstored)[1].endswith("; seen not stored")


def e6_point(data, unseen, init=None, instructions=None):
    """An E6 summary point; `init` and `instructions` are factors only where given."""
    factors = {"data": data} | ({"init": init} if init else {})
    factors |= {INSTRUCTIONS: instructions} if instructions else {}
    return {"factors": factors, "seeds": 3, "unseen_accuracy": unseen, "seen_accuracy": 1.0}


def test_e6_is_judged_on_the_findings_its_grid_holds():
    # `cpu`: starts against I given as data labels; every pretrained start must rise
    starts = [e6_point(f"I={i}", acc, init) for i, init, acc in [
        (32, "scratch", 0.0), (512, "scratch", 0.4),  # scratch is no part of the claim
        (32, "pretrained, full", 0.0), (512, "pretrained, full", 1.0),
        (32, "pretrained, LoRA", 0.1), (512, "pretrained, LoRA", 0.95)]]  # fmt: skip
    verdict, facts = judge("e6", starts)
    assert verdict == "reproduced" and "halving: not in this grid" in facts
    assert "pretrained, LoRA 0.10 → 0.95" in facts and "scratch" not in facts
    starts[-1]["seen_accuracy"] = 0.9  # LoRA's top point not mastered: the rise is not found
    assert judge("e6", starts)[0] == "not reproduced"
    starts[-1]["seen_accuracy"] = 1.0
    starts[4]["unseen_accuracy"] = 0.7  # high at the top, but 0.25 above I = 32: no rise
    assert judge("e6", starts)[0] == "not reproduced"

    # `cpu-halving`: I as a number, the data whole or halved, one (pretrained) start
    def halving(uniform, uneven):
        cells = {"whole": (0.4, 1.0), "halved uniformly": uniform, "halved unevenly": uneven}
        return [
            e6_point(data, acc, instructions=i)
            for data, accs in cells.items()
            for i, acc in zip((128, 512), accs, strict=True)
        ]

    verdict, facts = judge("e6", halving(uniform=(0.35, 0.98), uneven=(0.1, 0.97)))
    assert verdict == "reproduced"  # rises 0.40 → 1.00, uniform -0.05 / -0.02, uneven -0.30
    assert "uniformly -0.05 / -0.02 (does not hurt: found)" in facts
    assert "unevenly -0.30 / -0.03 (hurts: found)" in facts
    verdict, facts = judge("e6", halving(uniform=(0.35, 0.98), uneven=(0.8, 0.97)))
    assert verdict == "partly" and "(hurts: not found)" in facts  # our CPU result
    assert judge("e6", halving(uniform=(0.2, 0.98), uneven=(0.8, 0.97)))[0] == "partly"  # 1 of 3
    # the paper's labels carry I and the halving in one data label
    paper = [e6_point(label, acc, "pretrained") for label, acc in [
        ("I=500", 0.1), ("I=9000", 0.95), ("I=9000 halved uniformly", 0.93),
        ("I=9000 halved unevenly", 0.6)]]  # fmt: skip
    verdict, facts = judge("e6", paper)
    assert verdict == "reproduced" and "halved − whole at I = 9000" in facts
    scratch = [e6_point("I=32", 0.0, "scratch"), e6_point("I=512", 1.0, "scratch")]
    assert judge("e6", scratch)[0] == "not judged"  # the claim is about a pretrained model


def test_results_page_through_the_cli(tmp_path, capsys):
    results = tmp_path / "results" / "cpu"
    rows = e1_rows(seeds=2)
    rows[3]["metrics"]["redrawn"] = [{"seen_accuracy": 0.31, "unseen_accuracy": 0.0}]
    write_rows(tmp_path / "r.sqlite", rows)
    run = {"command": "rewritelab reproduce e1 --preset cpu", "wall_s": 551}
    write_report(tmp_path / "r.sqlite", results / "e1", run=run)
    legacy = results / "e5"  # a summary from before the analysis existed: judged on the page
    legacy.mkdir()
    points = [{"factors": {INSTRUCTIONS: i, "occurrences": occ}, "seeds": 2, "unseen_accuracy": a}
              for i, occ, a in [(500, "1", 0.3), (500, "mix", 0.6), (2000, "1", 0.5),
                                (2000, "mix", 0.95)]]  # fmt: skip
    (legacy / "summary.json").write_text(json.dumps({"e5/cpu": points}))
    (legacy / "e5-cpu.png").write_bytes(b"png")
    (legacy / "NOTES.md").write_text("# E5 notes\n")
    judged_later = results / "e6"  # reported before E6 had a criterion: judged on the page
    judged_later.mkdir()
    points = [e6_point(f"I={i}", a, "pretrained, full") for i, a in ((32, 0.0), (512, 1.0))]
    stored = {"kind": "e6", "verdict": "not judged", "measured": "no automatic criterion"}
    summary = {"e6/cpu": points, "analysis": {"e6/cpu": stored}}
    (judged_later / "summary.json").write_text(json.dumps(summary))
    (results / "e3").mkdir()  # measured, not run: notes only
    (results / "e3" / "NOTES.md").write_text("# E3: too slow to train here\n\nwhy\n")
    page = tmp_path / "results" / "README.md"
    assert main(["results-page", str(results), "--out", str(page)]) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    rows = [line for line in page.read_text().splitlines() if line.startswith("| [e")]
    assert len(rows) == 3
    e1, e5, e6 = rows
    # recorded without its regime, a finding that holds is called an analogue, never more
    assert "**qualitative analogue on a simplified task** (finding: reproduced)" in e6
    assert "pretrained, full 0.00 → 1.00" in e6
    (e3,) = [line for line in page.read_text().splitlines() if line.startswith("| e3 ")]
    assert "E3: too slow to train here" in e3 and "**not run**" in e3
    assert "([notes](cpu/e3/NOTES.md))" in e3 and "report.md" not in e3
    assert "([notes](cpu/e5/NOTES.md))" in e5 and "notes" not in e1
    assert "[e1/cpu](cpu/e1/report.md)" in e1 and "**reproduced**" in e1
    assert "`rewritelab reproduce e1 --preset cpu`" in e1 and "9 min 11 s" in e1
    assert "[e1-cpu.png](cpu/e1/e1-cpu.png)" in e1 and "I50 = " in e1
    assert "; 14 of 14 runs mastered (1 redrawn)" in e1 and "runs mastered" not in e5
    report = (results / "e1" / "report.md").read_text()
    assert "- mastered (seen ≥ 0.95): 14 of 14 runs\n" in report
    assert "instructions=128 seed 0 (seen 0.31 → 0.99)" in report
    assert "(finding: partly)" in e5 and "[e5-cpu.png](cpu/e5/e5-cpu.png)" in e5
    assert "mix 0.95 vs best single 0.50; seen not stored" in e5  # mastery cannot be shown
    assert "- e5: reproduced if the mix" in page.read_text()
    assert main(["results-page", str(tmp_path / "none"), "--out", str(page)]) == 2
    assert "is not a directory" in capsys.readouterr().err

    # A replicate of e1/cpu (another machine): both rows name their directories.
    write_report(tmp_path / "r.sqlite", results / "e1-replicate", run=run)
    assert main(["results-page", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    assert "[e1/cpu (e1)](cpu/e1/report.md)" in text
    assert "[e1/cpu (e1-replicate)](cpu/e1-replicate/report.md)" in text
    assert "[e5/cpu](cpu/e5/report.md)" in text  # alone: the plain name


def test_a_runs_history_is_read_without_torch():
    """Reports read run histories where only the `report` extra is installed."""
    import subprocess
    import sys

    code = "import sys, rewritelab.core.run_log; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_the_report_says_how_long_runs_that_stop_at_mastery_trained():
    from rewritelab.analysis.report import mastery_lines

    rows = e1_rows(seeds=1)  # 7 runs
    assert not any("trained until mastered" in line for line in mastery_lines(rows)[0])
    for row, epoch in zip(rows, [3.0, 8.0, 5.0, 4.0, 6.0, 5.0, 7.0], strict=True):
        row["metrics"]["final_train"] = {"epoch": epoch, "train_accuracy": 0.98}
    lines, counts = mastery_lines(rows)
    assert "3-8 epochs, median 5, in 7 runs" in lines[-1]
    assert counts["runs"] == len(rows)
