"""The results page as one self-contained HTML file: every experiment, its figure with hover
values, the regime and the verdict, seeds, and filters by factor; nothing loaded from the
network.

It shows the rows of the Markdown page with their points (`results_page.rows_with_points`).
Each experiment gets an inline SVG of unseen (filled) and seen (hollow) accuracy against its
first factor (log scale for instruction counts), one colour per combination of the other
factors; hovering a point shows its values (an SVG `<title>`). Under it, a table of its
points. A select per factor keeps the points and rows of one value; the page's own filters
keep experiments by verdict and by name.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from rewritelab.core.atomic_files import write_text_atomic

WIDTH, HEIGHT, MARGIN = 420, 220, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
STYLE = """body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}
section{border-top:1px solid #ccc;padding:.5em 0}section.hidden,tr.hidden,g.hidden{display:none}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee}
.verdict{font-weight:bold}svg text{font-size:11px}"""
SCRIPT = """function apply(){
 const v=document.getElementById('verdict').value,q=document.getElementById('name').value;
 document.querySelectorAll('section').forEach(s=>{s.classList.toggle('hidden',
  (v&&s.dataset.verdict!==v)||(q&&!s.dataset.name.includes(q)));});
 document.querySelectorAll('section').forEach(s=>{
  const keep={};
  s.querySelectorAll('select.factor').forEach(f=>{if(f.value)keep[f.dataset.factor]=f.value;});
  s.querySelectorAll('[data-factors]').forEach(e=>{const fs=JSON.parse(e.dataset.factors);
   e.classList.toggle('hidden',
    Object.entries(keep).some(([k,x])=>JSON.stringify(fs[k])!==x));});});}
document.querySelectorAll('select,input').forEach(e=>e.addEventListener('input',apply));"""


def write_results_html(rows: list[tuple[dict, list[dict]]], results_dir: str, out: str | Path):
    """Write the interactive page of `rows` (each a results-page row and its points, as
    `results_page.rows_with_points` gives them) to `out`; return its path."""
    out = Path(out)
    sections = [_section(row, points) for row, points in rows]
    verdicts = sorted({s[0] for s in sections})
    options = "".join(f"<option>{html.escape(v)}</option>" for v in verdicts)
    body = "\n".join(text for _, text in sorted(sections, key=lambda s: s[1]))
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>rewritelab results"
        f"</title><style>{STYLE}</style></head><body><h1>Results</h1>"
        f"<p>Every experiment under <code>{html.escape(str(results_dir))}</code>: accuracies are "
        "seed means; hover a point for its values.</p><p>verdict <select id=verdict>"
        f"<option value=''>all</option>{options}</select> name <input id=name></p>"
        f"{body}<script>{SCRIPT}</script></body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, page)
    return out


def _section(row: dict, entries: list[dict]) -> tuple[str, str]:
    """(verdict, the experiment's <section>)."""
    name, verdict = row["experiment"], row["verdict"]
    label = f"{name} ({row['directory'].name})" if entries else name
    facts = "".join(
        f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (("paper's claim", row["claim"]), ("our result", row["measured"]),
                     ("regime", row["regime"]), ("command", row["command"] or "–"),
                     ("wall time", row["wall"]))
    )  # fmt: skip
    content = (
        f"<h2>{html.escape(label)}</h2><p class=verdict>verdict: {html.escape(verdict)}</p>"
        f"<table>{facts}</table>{_filters(entries)}{_chart(entries)}{_points_table(entries)}"
    )
    attributes = f"data-name='{html.escape(label)}' data-verdict='{html.escape(verdict)}'"
    return verdict, f"<section {attributes}>{content}</section>"


def _factor_values(entries: list[dict]) -> dict[str, list]:
    values: dict[str, list] = {}
    for entry in entries:
        for factor, value in entry["factors"].items():
            if value not in values.setdefault(factor, []):
                values[factor].append(value)
    return values


def _filters(entries: list[dict]) -> str:
    selects = []
    for factor, values in _factor_values(entries).items():
        if len(values) > 1:
            options = "".join(
                f"<option value='{html.escape(json.dumps(v, ensure_ascii=False))}'>"
                f"{html.escape(str(v))}</option>"
                for v in values
            )
            selects.append(
                f"{html.escape(factor)} <select class=factor data-factor='{html.escape(factor)}'>"
                f"<option value=''>all</option>{options}</select>"
            )
    return f"<p>{' '.join(selects)}</p>" if selects else ""


def _chart(entries: list[dict]) -> str:
    """An inline SVG: accuracy against the first factor, a colour per other-factor setting."""
    if not entries:
        return ""
    factor = next(iter(entries[0]["factors"]))
    values = _factor_values(entries)[factor]
    numeric = all(isinstance(v, int | float) and v > 0 for v in values)
    order = sorted(values) if numeric else values

    def x_of(value) -> float:
        if numeric and len(order) > 1:
            low, high = math.log2(order[0]), math.log2(order[-1])
            share = (math.log2(value) - low) / (high - low) if high > low else 0.5
        else:
            share = (order.index(value) + 0.5) / len(order)
        return MARGIN + share * (WIDTH - 2 * MARGIN)

    series = sorted({_others(e, factor) for e in entries})
    marks = []
    for entry in entries:
        colour = COLOURS[series.index(_others(entry, factor)) % len(COLOURS)]
        x = x_of(entry["factors"][factor])
        tip = html.escape(_tooltip(entry))
        dots = []
        for metric, fill in (("unseen_accuracy", colour), ("seen_accuracy", "white")):
            if isinstance(entry.get(metric), int | float):
                y = HEIGHT - MARGIN - entry[metric] * (HEIGHT - 2 * MARGIN)
                dots.append(f"<circle cx={x:.1f} cy={y:.1f} r=4 fill='{fill}' "
                            f"stroke='{colour}'><title>{tip}</title></circle>")  # fmt: skip
        factors = html.escape(json.dumps(entry["factors"], ensure_ascii=False))
        marks.append(f"<g data-factors='{factors}'>{''.join(dots)}</g>")
    ticks = "".join(
        f"<text x={x_of(v):.1f} y={HEIGHT - MARGIN + 14} text-anchor=middle>"
        f"{html.escape(str(v))}</text>"
        for v in order
    )
    axes = (
        f"<line x1={MARGIN} y1={HEIGHT - MARGIN} x2={WIDTH - MARGIN} y2={HEIGHT - MARGIN} "
        f"stroke=black /><line x1={MARGIN} y1={MARGIN} x2={MARGIN} y2={HEIGHT - MARGIN} "
        f"stroke=black /><text x=4 y={MARGIN}>1.0</text><text x=4 y={HEIGHT - MARGIN}>0.0</text>"
        f"<text x={WIDTH / 2} y={HEIGHT - 4} text-anchor=middle>{html.escape(factor)}</text>"
    )
    legend = "".join(
        f"<text x={WIDTH - MARGIN} y={14 + 13 * i} text-anchor=end "
        f"fill='{COLOURS[i % len(COLOURS)]}'>{html.escape(label or 'all points')}</text>"
        for i, label in enumerate(series)
    )
    return (f"<svg width={WIDTH} height={HEIGHT} role=img aria-label='accuracy against "
            f"{html.escape(factor)}'>{axes}{ticks}{legend}{''.join(marks)}</svg>")  # fmt: skip


def _others(entry: dict, factor: str) -> str:
    return ", ".join(f"{k} = {v}" for k, v in entry["factors"].items() if k != factor)


def _tooltip(entry: dict) -> str:
    factors = ", ".join(f"{k} = {v}" for k, v in entry["factors"].items())
    accuracies = ", ".join(
        f"{name} {entry[metric]:.3f}"
        for name, metric in (("unseen", "unseen_accuracy"), ("seen", "seen_accuracy"))
        if isinstance(entry.get(metric), int | float)
    )
    return f"{factors}: {accuracies} ({entry.get('seeds', '?')} seeds)"


def _points_table(entries: list[dict]) -> str:
    if not entries:
        return ""
    rows = "".join(
        f"<tr data-factors='{html.escape(json.dumps(e['factors'], ensure_ascii=False))}'>"
        f"<td>{html.escape(_tooltip(e))}</td></tr>"
        for e in entries
    )
    return f"<table class=points>{rows}</table>"
