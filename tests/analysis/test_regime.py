"""Every result says what it is: its regime beside the paper's, and a verdict in our words."""

from __future__ import annotations

import json

from synthetic_results import INSTRUCTIONS, e1_rows, write_rows

from rewritelab.analysis.regime import (
    ANALOGUE,
    NOT_REPRODUCED,
    NOT_TESTED,
    PAPER_REGIME,
    REPRODUCED,
    Regime,
    regime_of,
    regime_table,
    vocabulary_verdict,
)
from rewritelab.analysis.report import write_report
from rewritelab.analysis.results_page import write_results_page


def single_letter(instructions: int) -> dict:
    lengths = {"pattern_length": [1, 1], "replacement_length": [1, 1], "input_length": [6, 6]}
    return {"train": {"instructions": instructions, **lengths}, "test": {"instructions": 100}}


def test_rule_space_and_coverage_are_counted_from_the_recorded_configs():
    rows = [{"config": {"dataset": single_letter(i)}} for i in (2, 512)]
    regime = regime_of(rows)
    assert regime.rule_space == 26 * 25  # x != y, one letter each
    assert regime.instructions == (2, 512) and regime.coverage == 512 / 650
    assert not regime.paper_kind
    rows = [{"config": e1_rows(grid=(1024,), seeds=1)[0]["config"]}]
    two = regime_of(rows)
    assert two.rule_space == 676 * 676 - 676 and two.paper_kind
    assert regime_of([{"config": {}}]) is None


def test_the_paper_regime_is_of_its_own_kind():
    patterns = sum(26**n for n in range(1, 21))
    assert PAPER_REGIME.rule_space == patterns * patterns - patterns
    assert PAPER_REGIME.paper_kind


def test_verdicts_follow_the_finding_and_the_regime():
    paper_kind = Regime((2, 2), (2, 2), (6, 10), 26, 456_300, (16, 1024))
    simple = Regime((1, 1), (1, 1), (6, 6), 26, 650, (2, 512))
    fixed_length = Regime((2, 2), (2, 2), (8, 8), 26, 456_300, (16, 1024))
    crowded = Regime((2, 2), (2, 2), (6, 10), 26, 456_300, (16, 100_000))
    assert vocabulary_verdict("reproduced", paper_kind) == REPRODUCED
    for regime in (simple, fixed_length, crowded, None):
        assert vocabulary_verdict("reproduced", regime) == ANALOGUE
        assert vocabulary_verdict("partly", regime) == ANALOGUE
    assert vocabulary_verdict("partly", paper_kind) == NOT_REPRODUCED
    assert vocabulary_verdict("not reproduced", simple) == NOT_REPRODUCED
    assert vocabulary_verdict("not judged", paper_kind) == NOT_TESTED


def test_regime_table_sets_the_regime_beside_the_papers():
    table = "\n".join(regime_table(Regime((1, 1), (1, 1), (6, 6), 26, 650, (2, 512))))
    assert "| rule space | 4.3e+56 | 650 |" in table
    assert "| \\|z\\| (input) | ≤ 50 | 6 |" in table
    assert "78.77%" in table and "simplified (not of the paper's kind)" in table


def test_report_and_results_page_carry_the_regime_and_the_verdict(tmp_path):
    write_rows(tmp_path / "r.sqlite", e1_rows())
    write_report(tmp_path / "r.sqlite", tmp_path / "results" / "e1")
    report = (tmp_path / "results" / "e1" / "report.md").read_text()
    assert "verdict: **reproduced** (finding reproduced:" in report
    assert "| rule space | 4.3e+56 | 456,300 |" in report
    summary = json.loads((tmp_path / "results" / "e1" / "summary.json").read_text())
    assert summary["analysis"]["e1/cpu"]["regime"]["paper_kind"] is True
    page = write_results_page(tmp_path / "results", tmp_path / "results" / "README.md")
    text = page.read_text()
    assert "| **reproduced** |" in text and "456,300 rules" in text
    assert "qualitative analogue on a simplified task" in text  # the vocabulary, defined

    simplified = e1_rows(grid=(4, 16, 64, 128, 256, 512))
    for row in simplified:
        row["config"] = {"dataset": single_letter(row["factors"][INSTRUCTIONS])}
    write_rows(tmp_path / "s.sqlite", simplified)
    write_report(tmp_path / "s.sqlite", tmp_path / "simple" / "e1")
    report = (tmp_path / "simple" / "e1" / "report.md").read_text()
    assert "verdict: **qualitative analogue on a simplified task**" in report
