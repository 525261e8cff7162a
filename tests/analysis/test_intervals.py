"""Wilson intervals: the textbook values, never empty at 0 or 1, symmetric, and pooled over
a point's seeds in the report table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewritelab.analysis.intervals import pooled_wilson, wilson_interval
from rewritelab.analysis.report import aggregate, markdown_table


@pytest.mark.parametrize("successes, n, expected", [
    (0, 10, (0.0, 0.2775)),  # Wald gives (0, 0) here
    (5, 10, (0.2366, 0.7634)),
    (10, 10, (0.7225, 1.0)),
    (81, 263, (0.2553, 0.3662)),
])  # fmt: skip
def test_wilson_matches_the_textbook_values(successes, n, expected):
    assert wilson_interval(successes, n) == pytest.approx(expected, abs=1e-4)


@given(n=st.integers(1, 10_000), data=st.data())
def test_wilson_holds_its_proportion_and_mirrors(n, data):
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0 and high - low > 0
    mirrored = wilson_interval(n - k, n)
    assert (low, high) == pytest.approx((1 - mirrored[1], 1 - mirrored[0]), abs=1e-12)


def test_the_report_pools_seeds_examples_into_one_interval():
    rows = [{"status": "done", "factors": {"i": 8}, "seed": s, "elapsed_s": 1.0, "config": {},
             "metrics": {"unseen_accuracy": a, "unseen_examples": 100, "seen_accuracy": 1.0}}
            for s, a in enumerate((0.2, 0.4))]  # fmt: skip
    entry = aggregate(rows)[0]
    assert entry["unseen_accuracy_wilson95"] == pytest.approx(wilson_interval(60, 200))
    assert "seen_accuracy_wilson95" not in entry  # no count of seen examples: no interval
    assert pooled_wilson([r["metrics"] for r in rows], "seen") is None
    low, high = wilson_interval(60, 200)
    assert f"| {low:.3f} – {high:.3f} | 2 |" in markdown_table([entry])
