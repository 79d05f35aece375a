"""A `Report` as HTML: the verdict table and kernel heatmaps, inline styles only.

This is the Jupyter view of a report (`Report._repr_html_`): notebook front ends may
drop `<style>`, so every style is inline. The full page (`circuitdsl.render.html`)
reuses these pieces around the diagram.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from circuitdsl.language.ir import Circuit, Claim
from circuitdsl.report.style import (
    STATUS_COLOR,
    STATUS_GLYPH,
    format_number,
    kernel_scale,
    weight_hex,
)

if TYPE_CHECKING:  # the model imports this module for its Jupyter view
    from circuitdsl.report.model import ClaimResult, Report

UNCHECKED = "#6e7781"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def kernel_svg(
    kernel: Sequence[Sequence[float]], *, cell: int | None = None, scale: float | None = None
) -> str:
    """A 2-D kernel as an inline `<svg>` heatmap (row 0 at the top), red + / blue −.

    Each `<rect>` has a `<title>` with its weight, so hovering shows the number.
    `scale` saturates the colours (default: the kernel's largest |weight|).
    """
    rows = [list(r) for r in kernel]
    n_cols = max((len(r) for r in rows), default=0)
    if not rows or not n_cols:
        return ""
    if scale is None:
        scale = kernel_scale([rows])
    if cell is None:
        cell = max(3, min(14, 84 // max(n_cols, len(rows))))
    w, h = n_cols * cell, len(rows) * cell
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="kernel" width="{w + 2}" '
        f'height="{h + 2}" viewBox="-1 -1 {w + 2} {h + 2}" role="img">'
    ]
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            out.append(
                f'<rect x="{c * cell}" y="{r * cell}" width="{cell}" height="{cell}" '
                f'fill="{weight_hex(v, scale)}"><title>[{r},{c}] {v:.4g}</title></rect>'
            )
    out.append(f'<rect x="0" y="0" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    out.append("</svg>")
    return "".join(out)


# ---- claims table -------------------------------------------------------------------


def _status_badge(status: str | None) -> str:
    if status is None:
        colour, text = UNCHECKED, "not checked"
    else:
        colour = STATUS_COLOR.get(status, UNCHECKED)
        text = f"{STATUS_GLYPH.get(status, '?')} {status}"
    return (
        f'<span style="display:inline-block;min-width:4.5em;padding:1px 6px;border-radius:3px;'
        f'color:white;background:{colour};font-weight:600;text-align:center">{_e(text)}</span>'
    )


def _measured(result: ClaimResult | None) -> str:
    if result is None or not result.measured:
        return ""
    return ", ".join(
        f"{_e(k)} = {_e(format_number(v) if isinstance(v, (int, float)) else v)}"
        for k, v in result.measured.items()
    )


def _expected(claim: Claim | None, result: ClaimResult | None) -> str:
    if result is not None and result.expected:
        return ", ".join(f"{_e(k)} {_e(v)}" for k, v in result.expected.items())
    if claim is not None and claim.thresholds:
        return ", ".join(f"{_e(t.stat)} {_e(t)}" for t in claim.thresholds)
    return ""


def _rows(
    circuit: Circuit | None, report: Report | None
) -> list[tuple[str, Claim | None, ClaimResult | None]]:
    """(claim id, claim, result) in spec order, then results the circuit lacks."""
    results = {r.id: r for r in report.claims} if report else {}
    rows: list[tuple[str, Claim | None, ClaimResult | None]] = []
    seen: set[str] = set()
    for claim in circuit.claims if circuit else ():
        rows.append((claim.id, claim, results.get(claim.id)))
        seen.add(claim.id)
    for r in report.claims if report else ():
        if r.id not in seen:
            rows.append((r.id, None, r))
    return rows


# Claim ids and paths are long unbroken words (`early_curve[92]->curve[342].excites`);
# without this they push the table off the page.
_BREAK = "overflow-wrap:anywhere;word-break:break-word"


def _claims_table(
    rows: Sequence[tuple[str, Claim | None, ClaimResult | None]],
    *,
    link_line: Mapping[str, int] | None = None,
    thumbnails: bool = True,
) -> str:
    cell = "padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top;text-align:left"
    names = ["verdict", "claim id", "claim", "measured", "expected", "kernel", "source"]
    if not thumbnails:
        names.remove("kernel")
    head = "".join(f'<th style="{cell};background:#f3f3f3">{h}</th>' for h in names)
    body = []
    for i, (cid, claim, result) in enumerate(rows):
        status = result.status if result else None
        text = claim.text if claim else (result.text if result else "")
        where = result.source if result and result.source else ""
        if claim is not None and claim.span is not None:
            where = claim.span.location
        src = _e(where)
        if link_line is not None and cid in link_line:
            src = f'<a href="#L{link_line[cid]}">{src}</a>'
        thumb = ""
        if thumbnails and result is not None and result.kernels:
            key = next(iter(result.kernels))
            thumb = kernel_svg(result.kernels[key], cell=6)
        detail = (
            f'<div style="color:#666;font-size:90%">{_e(result.detail)}</div>'
            if result is not None and result.detail
            else ""
        )
        tint = {"fail": "background:#fff0f0", "error": "background:#fff8e5"}.get(status or "", "")
        body.append(
            f'<tr id="c{i}" class="claim st-{status or "none"}" style="{tint}">'
            f'<td style="{cell}">{_status_badge(status)}</td>'
            f'<td style="{cell};font-family:monospace;{_BREAK};max-width:18em">{_e(cid)}</td>'
            f'<td style="{cell};min-width:14em">{_e(" ".join(text.split()))}{detail}</td>'
            f'<td style="{cell};font-family:monospace;max-width:16em">{_measured(result)}</td>'
            f'<td style="{cell};font-family:monospace">{_expected(claim, result)}</td>'
            + (f'<td style="{cell}">{thumb}</td>' if thumbnails else "")
            + f'<td style="{cell};font-family:monospace;{_BREAK};max-width:16em">{src}</td></tr>'
        )
    return (
        '<table class="claims" style="border-collapse:collapse;font-size:13px">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _summary_line(report: Report) -> str:
    s = report.summary
    parts = [
        f'<b style="color:{STATUS_COLOR["pass"]}">{s["pass"]} passed</b>',
        f'<b style="color:{STATUS_COLOR["fail"]}">{s["fail"]} failed</b>',
        f'<b style="color:{STATUS_COLOR["error"]}">{s["error"]} errors</b>',
    ]
    model = _e(report.model) + (f" ({_e(report.weights)})" if report.weights else "")
    return f"{_e(report.spec)} on model {model}: " + ", ".join(parts)


def report_table_html(report: Report) -> str:
    """A `Report` as an HTML table with inline styles, for Jupyter (`_repr_html_`)."""
    rows = _rows(None, report)
    return (
        '<div class="circuitdsl-report" style="font-family:sans-serif">'
        f'<p style="margin:4px 0">{_summary_line(report)}</p>'
        f"{aggregates_html(report)}{_claims_table(rows)}</div>"
    )


def aggregates_html(report: Report) -> str:
    """The quantified lines' verdicts against the null, as a small table (shown first)."""
    if not report.aggregates:
        return ""
    cells = []
    for a in report.aggregates:
        color = STATUS_COLOR.get(a.status, UNCHECKED)
        cells.append(
            f'<tr><td style="color:{color};font-weight:bold">{_e(a.status)}</td>'
            f"<td>{a.passed}/{a.of}</td><td>{format_number(a.base_rate)}</td>"
            f"<td>{format_number(a.p_value)} (alpha {a.alpha:g})</td>"
            f"<td><code>{_e(a.text)}</code></td><td>{_e(a.source)}</td></tr>"
        )
    return (
        '<table class="aggregates" style="border-collapse:collapse;margin:4px 0">'
        "<tr><th>line</th><th>passed</th><th>base rate</th><th>p</th><th>text</th>"
        "<th>source</th></tr>" + "".join(cells) + "</table>"
    )
