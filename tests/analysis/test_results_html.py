"""The interactive results page, opened in a real headless browser (Debian's chromium driven by
playwright): it loads with no console error, its figures render with hover values, and the
filters change what is shown. The committed `results/index.html` is what one command makes of
`results/cpu`, and opens the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt install chromium)"),
]
COUNT = "dataset.train.instructions"


def _point(factors: dict, unseen: float, seen: float = 0.99) -> dict:
    return {"factors": factors, "seeds": 3, "unseen_accuracy": unseen, "seen_accuracy": seen}


def _results(tmp_path: Path) -> Path:
    """Two experiments' summaries: E1 over three instruction counts, E4 over two spreads."""
    results = tmp_path / "results"
    e1 = [_point({COUNT: n}, unseen) for n, unseen in ((16, 0.0), (256, 0.75), (1024, 0.96))]
    e4 = [_point({COUNT: n, "spread": s}, u) for n in (512, 2048)
          for s, u in (("uniform", 0.9), ("0.03", 0.33))]  # fmt: skip
    for name, entries in (("e1", e1), ("e4", e4)):
        (results / name).mkdir(parents=True)
        summary = {f"{name}/cpu": entries, "run": {"command": f"rewritelab reproduce {name}",
                                                    "wall_s": 600}}  # fmt: skip
        (results / name / "summary.json").write_text(json.dumps(summary))
    return results


def _open(page_path: Path):
    """(playwright, browser, page, errors) with the page loaded from a file:// URL."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_path.resolve().as_uri())
    return playwright, browser, page, errors


def _visible(page, selector: str) -> int:
    return sum(1 for element in page.locator(selector).all() if element.is_visible())


def test_the_page_renders_hovers_and_filters_in_chromium(tmp_path, capsys):
    pytest.importorskip("playwright")
    out = tmp_path / "index.html"
    code, _, err = run_cli(["results-page", str(_results(tmp_path)), "--out", str(out)], capsys)
    assert code == 0, err
    playwright, browser, page, errors = _open(out)
    try:
        assert page.locator("section").count() == 2 and page.locator("svg").count() == 2
        circle = page.locator("section[data-name^='e1'] svg circle").first
        box = circle.bounding_box()
        assert box is not None and box["width"] > 0  # drawn, on screen
        tips = page.locator("section[data-name^='e1'] svg circle title").all_text_contents()
        assert "dataset.train.instructions = 256: unseen 0.750, seen 0.990 (3 seeds)" in tips
        e4 = "section[data-name^='e4']"
        assert _visible(page, f"{e4} svg g") == 4 and _visible(page, f"{e4} tr[data-factors]") == 4
        page.select_option(f"{e4} select[data-factor='spread']", label="uniform")
        assert _visible(page, f"{e4} svg g") == 2 and _visible(page, f"{e4} tr[data-factors]") == 2
        page.fill("#name", "e1")
        assert _visible(page, "section") == 1
        assert errors == []
    finally:
        browser.close()
        playwright.stop()


def test_the_committed_page_is_current_and_opens_without_errors(tmp_path, capsys, monkeypatch):
    pytest.importorskip("playwright")
    monkeypatch.chdir(ROOT)  # the page names the results folder as given: relative
    fresh = tmp_path / "index.html"
    assert run_cli(["results-page", "results/cpu", "--out", str(fresh)], capsys)[0] == 0
    committed = ROOT / "results" / "index.html"
    assert committed.read_text() == fresh.read_text(), (
        "results/index.html is stale: rewritelab results-page results/cpu --out results/index.html"
    )
    playwright, browser, page, errors = _open(committed)
    try:
        summaries = list((ROOT / "results" / "cpu").glob("*/summary.json"))
        assert page.locator("section").count() >= len(summaries)
        assert page.locator("svg circle").count() > 0 and errors == []
    finally:
        browser.close()
        playwright.stop()
