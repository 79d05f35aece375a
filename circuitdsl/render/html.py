"""A self-contained HTML report: diagram, verdicts, kernels and the spec's source.

One file, no network: the diagram is Graphviz's SVG inlined (node images become
data URIs), styles are inline CSS, kernels are SVG `<rect>`s, and the only script
is a few lines that filter the claims table. It opens from a file, an e-mail or a
CI artifact exactly as it looked when it was written.

The claims table and kernel heatmaps come from `circuitdsl.report.html`, which is also
the Jupyter view of a `Report`.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.language.ir import Circuit, Claim
from circuitdsl.render.dot import to_dot
from circuitdsl.render.graphviz_out import INSTALL_HELP, dot_available, run_dot
from circuitdsl.report.html import (
    UNCHECKED,
    _claims_table,
    _e,
    _rows,
    _summary_line,
    kernel_svg,
    report_table_html,
)
from circuitdsl.report.model import ClaimResult, Report
from circuitdsl.report.style import (
    NEG_HEX,
    POS_HEX,
    STATUS_COLOR,
    STATUS_GLYPH,
    format_number,
    weight_hex,
)
from circuitdsl.version import __version__

__all__ = ["circuit_svg", "kernel_svg", "report_table_html", "to_html"]

# Quantified claims put dozens of claims on one source line; more links than this
# per line would bury the source text.
MAX_MARKS_PER_LINE = 3
# More kernel cards than this and the passing ones fold into a <details>.
MAX_OPEN_KERNELS = 48


# ---- SVG pieces ---------------------------------------------------------------------


def circuit_svg(
    circuit: Circuit,
    report: Report | None = None,
    *,
    layer_order: Sequence[str] | None = None,
    rankdir: str = "TB",
    node_images: Mapping[str, str | Path] | None = None,
    title: bool = True,
) -> str:
    """The circuit diagram as an inline-ready `<svg>` element (for `_repr_svg_` or HTML).

    Node images are embedded as data URIs so the SVG stands alone. Raises
    `DiagnosticError` E302 if Graphviz is not installed.
    """
    dot_text = to_dot(
        circuit,
        report,
        layer_order=layer_order,
        rankdir=rankdir,
        node_images=node_images,
        title=title,
    )
    svg = run_dot(dot_text, "svg").decode("utf-8")
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    return _inline_images(svg)


_IMAGE_HREF = re.compile(r'(<image\b[^>]*?xlink:href=")([^"]+)(")')


def _inline_images(svg: str) -> str:
    def swap(match: re.Match[str]) -> str:
        path = Path(html.unescape(match.group(2)))
        if not path.is_file():
            return match.group(0)
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{match.group(1)}data:{mime};base64,{data}{match.group(3)}"

    return _IMAGE_HREF.sub(swap, svg)


def _colour_bar() -> str:
    steps = [i / 5 - 1 for i in range(11)]
    rects = "".join(
        f'<rect x="{i * 14}" y="0" width="14" height="10" fill="{weight_hex(v, 1.0)}"/>'
        for i, v in enumerate(steps)
    )
    return (
        '<span class="bar">− <svg xmlns="http://www.w3.org/2000/svg" width="154" height="10" '
        f'viewBox="0 0 154 10">{rects}</svg> +</span>'
    )


# ---- the page -----------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #1f2328; background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { margin: 8px 0 4px; font-size: 26px; }
h2 { margin: 28px 0 8px; font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.desc { font-size: 16px; margin: 2px 0; }
.cite { color: #57606a; font-size: 13px; margin: 2px 0; }
.summary { margin: 10px 0; font-size: 14px; }
.diagram { overflow: auto; max-height: 85vh; border: 1px solid #e5e5e5; border-radius: 6px;
           padding: 8px; background: #fff; cursor: grab; }
.diagram.panning { cursor: grabbing; user-select: none; }
/* Graphviz's own size (100%): its smallest text, 8pt, is 10.7 px. A wide diagram scrolls
   (or is dragged) instead of shrinking its labels to a few pixels; `fit` shrinks it. */
.diagram svg { max-width: none; height: auto; }
.zoom { font-size: 13px; margin: 4px 0; }
.zoom button { font-size: 13px; min-width: 2.2em; }
.notice { background: #fff8e5; border: 1px solid #e6c96b; padding: 8px 12px; border-radius: 6px; }
.filters { font-size: 13px; margin: 4px 0 8px; }
table.claims tr:target { outline: 2px solid #0969da; }
.kernels { display: flex; flex-wrap: wrap; gap: 10px; }
.kcard { border: 1px solid #ddd; border-radius: 6px; padding: 6px 8px; font-size: 12px;
         width: 170px; }
.kcard.st-fail { border-color: #c00020; border-width: 2px; }
.kcard .edge { font-family: monospace; font-weight: 600; word-break: break-all; }
.kcard .kc { font-size: 11px; }
.kcard a { text-decoration: none; }
.legend { font-size: 12px; color: #57606a; margin: 4px 0 8px; }
.bar svg { vertical-align: middle; }
pre.source { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px;
             border: 1px solid #e5e5e5; border-radius: 6px; padding: 6px 0; overflow: auto;
             line-height: 1.45; margin: 0; }
.ln { display: block; padding: 0 10px 0 0; white-space: pre; }
.ln:target { background: #fff3b0 !important; }
.ln .no { display: inline-block; width: 3.5em; color: #8c959f; text-align: right;
          padding-right: 12px; text-decoration: none; user-select: none; }
.ln.st-pass { background: #e9f7ec; border-left: 4px solid #1a7f37; }
.ln.st-fail { background: #ffebe9; border-left: 4px solid #c00020; }
.ln.st-error { background: #fff8e5; border-left: 4px solid #9a6700; }
.ln.st-none { background: #f3f4f6; border-left: 4px solid #8c959f; }
.ln:not([class*="st-"]) { border-left: 4px solid transparent; }
.ln .marks { font-family: sans-serif; font-size: 11px; margin-left: 16px; }
.ln .marks a { margin-right: 6px; }
footer { margin-top: 32px; color: #8c959f; font-size: 12px; }
"""

# Hides passing rows on request; the page works without it.
_JS = """
(function () {
  var box = document.getElementById("only-failing");
  if (box) {
    box.addEventListener("change", function () {
      var rows = document.querySelectorAll("table.claims tr.claim");
      for (var i = 0; i < rows.length; i++) {
        var bad = rows[i].classList.contains("st-fail") || rows[i].classList.contains("st-error");
        rows[i].style.display = (box.checked && !bad) ? "none" : "";
      }
    });
  }
  // Zoom and pan the diagram: buttons set the scale (1 = Graphviz's size), dragging
  // scrolls the box.
  var pane = document.querySelector(".diagram");
  var svg = pane && pane.querySelector("svg");
  if (svg) {
    var w = svg.width.baseVal.value, h = svg.height.baseVal.value, zoom = 1;
    var label = document.getElementById("zoom-level");
    var set = function (z) {
      zoom = Math.max(0.1, Math.min(4, z));
      svg.style.width = (w * zoom) + "px";
      svg.style.height = (h * zoom) + "px";
      if (label) { label.textContent = Math.round(zoom * 100) + "%"; }
    };
    var buttons = document.querySelectorAll(".zoom button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (ev) {
        var how = ev.currentTarget.getAttribute("data-zoom");
        if (how === "in") { set(zoom * 1.25); }
        else if (how === "out") { set(zoom / 1.25); }
        else if (how === "fit") { set((pane.clientWidth - 16) / w); }
        else { set(1); }
      });
    }
    var drag = null;
    pane.addEventListener("mousedown", function (ev) {
      drag = [ev.clientX, ev.clientY, pane.scrollLeft, pane.scrollTop];
      pane.classList.add("panning");
    });
    window.addEventListener("mouseup", function () {
      drag = null;
      pane.classList.remove("panning");
    });
    pane.addEventListener("mousemove", function (ev) {
      if (!drag) { return; }
      pane.scrollLeft = drag[2] - (ev.clientX - drag[0]);
      pane.scrollTop = drag[3] - (ev.clientY - drag[1]);
    });
    set(1);
  }
  document.body.setAttribute("data-ready", "1");
})();
"""


def _read_source(circuit: Circuit) -> str | None:
    path = Path(circuit.path)
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def _worst(statuses: Sequence[str | None]) -> str:
    for s in ("fail", "error", "pass"):
        if s in statuses:
            return s
    return "none"


# Source colours by token class (Pygments' names), inline so the page needs no stylesheet
# beyond its own; GitHub-like.
_TOKEN_COLOURS = (
    ("Comment", "color:#6e7781;font-style:italic"),
    ("Literal.String", "color:#0a3069"),
    ("Literal.Number", "color:#0550ae"),
    ("Keyword.Declaration", "color:#8250df;font-weight:600"),
    ("Keyword", "color:#cf222e"),
    ("Name.Function", "color:#6639ba"),
    ("Name.Variable", "color:#953800"),
    ("Operator", "color:#cf222e"),
)


def _highlighted_lines(source: str) -> list[str] | None:
    """Each line of `source` as HTML with the `.circ` lexer's colours, or None without
    Pygments (an optional extra: the page is then plain)."""
    try:
        from pygments import lex

        from circuitdsl.render.lexer import CircLexer
    except ImportError:
        return None
    lines: list[str] = [""]
    for token, value in lex(source, CircLexer()):
        name = str(token).removeprefix("Token.")
        style = next((css for cls, css in _TOKEN_COLOURS if name.startswith(cls)), None)
        for i, part in enumerate(value.split("\n")):
            if i:
                lines.append("")
            if part:
                lines[-1] += f'<span style="{style}">{_e(part)}</span>' if style else _e(part)
    n = len(source.splitlines())
    return (lines + [""] * n)[:n]


def _source_block(
    source: str,
    path: str,
    rows: Sequence[tuple[str, Claim | None, ClaimResult | None]],
) -> tuple[str, dict[str, int]]:
    """The spec with claim lines marked; also each claim id's line for table links."""
    marks: dict[int, list[tuple[int, str, str | None]]] = {}
    link_line: dict[str, int] = {}
    for i, (cid, claim, result) in enumerate(rows):
        if claim is None or claim.span is None or claim.span.file != path:
            continue
        status = result.status if result else None
        link_line[cid] = claim.span.line
        lines = {claim.span.line}
        if claim.origin is not None and claim.origin.file == path:
            lines.add(claim.origin.line)
        for line in sorted(lines):
            marks.setdefault(line, []).append((i, cid, status))
    out = []
    painted = _highlighted_lines(source)
    for n, text in enumerate(source.splitlines(), start=1):
        here = marks.get(n, [])
        cls = "ln"
        tail = ""
        if here:
            cls += " st-" + _worst([s for _, _, s in here])
            links = [
                f'<a href="#c{i}" title="{_e(cid)}" style="color:'
                f'{STATUS_COLOR.get(s or "", UNCHECKED)}">{STATUS_GLYPH.get(s or "", "●")} '
                f"{_e(cid)}</a>"
                for i, cid, s in here[:MAX_MARKS_PER_LINE]
            ]
            if len(here) > MAX_MARKS_PER_LINE:
                failing = sum(s == "fail" for _, _, s in here)
                more = len(here) - MAX_MARKS_PER_LINE
                links.append(f"+{more} more" + (f" ({failing} failing in all)" if failing else ""))
            tail = f'<span class="marks">{"".join(links)}</span>'
        out.append(
            f'<span class="{cls}" id="L{n}"><a class="no" href="#L{n}">{n}</a>'
            f"{painted[n - 1] if painted else _e(text)}{tail}</span>"
        )
    return '<pre class="source">' + "".join(out) + "</pre>", link_line


def _kernel_gallery(rows: Sequence[tuple[str, Claim | None, ClaimResult | None]]) -> str:
    """One card per measured connection: the kernel and the claims checked on it."""
    cards: dict[str, tuple[list[list[float]], list[tuple[int, str, str]]]] = {}
    for i, (cid, _claim, result) in enumerate(rows):
        if result is None:
            continue
        for key, kernel in result.kernels.items():
            entry = cards.setdefault(key, (kernel, []))
            entry[1].append((i, cid, result.status))
    if not cards:
        return ""
    out = []
    for key, (kernel, uses) in cards.items():
        worst = _worst([s for _, _, s in uses])
        src, _, dst = key.partition("->")
        flat = [v for row in kernel for v in row]
        rng = f"min {format_number(min(flat))}, max {format_number(max(flat))}" if flat else ""
        claims = "".join(
            f'<div class="kc"><a href="#c{i}" style="color:{STATUS_COLOR.get(s, UNCHECKED)}">'
            f"{STATUS_GLYPH.get(s, '?')} {_e(cid)}</a></div>"
            for i, cid, s in uses[:4]
        )
        if len(uses) > 4:
            claims += f'<div class="kc">+{len(uses) - 4} more</div>'
        card = (
            f'<div class="kcard st-{worst}"><div class="edge">{_e(src)} → {_e(dst)}</div>'
            f'{kernel_svg(kernel)}<div class="kc">{_e(rng)}</div>{claims}</div>'
        )
        out.append((worst, card))
    if len(out) <= MAX_OPEN_KERNELS:
        return '<div class="kernels">' + "".join(card for _, card in out) + "</div>"
    # A 30x30 family claim measures 900 kernels: show the ones that need attention
    # and fold the rest away, so the page stays readable (they remain in the file).
    bad = [card for worst, card in out if worst in ("fail", "error")]
    rest = [card for worst, card in out if worst not in ("fail", "error")]
    return (
        f"<p>{len(bad)} of {len(out)} connections have a failing claim"
        + (":" if bad else ".")
        + "</p>"
        + ('<div class="kernels">' + "".join(bad) + "</div>" if bad else "")
        + f"<details><summary>the other {len(rest)} kernels</summary>"
        + '<div class="kernels">'
        + "".join(rest)
        + "</div></details>"
    )


def to_html(
    circuit: Circuit,
    report: Report | None = None,
    source_text: str | None = None,
    *,
    layer_order: Sequence[str] | None = None,
    rankdir: str = "TB",
    node_images: Mapping[str, str | Path] | None = None,
) -> str:
    """One self-contained HTML page for `circuit` and, if given, its `report`.

    Sections: the diagram (inline SVG), the claims with verdicts and measured vs
    expected numbers, the measured kernels as heatmaps, and the spec's source
    (`source_text`, or the file at `circuit.path`) with each claim's line marked and
    linked both ways. Without Graphviz the page still renders, with a notice and the
    DOT text in place of the diagram.
    """
    rows = _rows(circuit, report)
    source = source_text if source_text is not None else _read_source(circuit)
    link_line: dict[str, int] = {}
    source_html = '<p class="notice">The spec source is not available.</p>'
    if source is not None:
        source_html, link_line = _source_block(source, circuit.path, rows)

    if dot_available():
        try:
            diagram = circuit_svg(
                circuit,
                report,
                layer_order=layer_order,
                rankdir=rankdir,
                node_images=node_images,
                title=False,
            )
        except DiagnosticError as exc:
            diagram = f'<p class="notice">The diagram could not be drawn: {_e(exc)}</p>'
    else:
        dot_text = to_dot(
            circuit,
            report,
            layer_order=layer_order,
            rankdir=rankdir,
            node_images=node_images,
            title=False,
        )
        diagram = (
            '<p class="notice">Graphviz is not installed, so the diagram is not drawn '
            f"({_e(INSTALL_HELP)}). Its DOT source:</p>"
            f"<details><summary>DOT</summary><pre>{_e(dot_text)}</pre></details>"
        )

    head = [f"<h1>{_e(circuit.name)}</h1>"]
    if circuit.description:
        head.append(f'<p class="desc">{_e(circuit.description)}</p>')
    head += [f'<p class="cite">{_e(c)}</p>' for c in circuit.citations]
    if report is not None:
        head.append(f'<p class="summary">{_summary_line(report)}</p>')
        prov = report.provenance
        if prov:
            digest = prov.get("weights_sha256")
            parts = [
                str(prov.get("package", "")),
                f"torch {prov['torch']}" if prov.get("torch") else "",
                f"python {prov['python']}" if prov.get("python") else "",
                f"device {prov['device']}" if prov.get("device") else "",
                f"weights sha256 {str(digest)[:12]}…" if digest else "",
                str(prov.get("date", "")),
            ]
            head.append(
                '<p class="cite" title="provenance (the JSON report has it in full)">'
                + _e(" · ".join(x for x in parts if x))
                + "</p>"
            )
    else:
        model = f" for model {_e(circuit.model)}" if circuit.model else ""
        head.append(f'<p class="summary">Not checked yet{model}: no verdicts.</p>')

    legend = (
        f'<p class="legend">Edges: <b style="color:#e6550d">excites</b>, '
        f'<b style="color:#3182bd">inhibits</b>, <b style="color:#8c8c8c">other claims</b>; '
        f"✓ holds, ✗ fails (dashed edge). Weights: {_colour_bar()} "
        f"(blue {NEG_HEX} negative, red {POS_HEX} positive; each kernel scaled to its "
        "own largest |weight|, a family grid to its largest).</p>"
    )
    filters = (
        '<p class="filters"><label><input type="checkbox" id="only-failing"> '
        "show only failing claims</label></p>"
        if report is not None
        else ""
    )
    gallery = _kernel_gallery(rows)
    sections = [
        "<h2>Diagram</h2>",
        legend,
        (
            '<p class="zoom">Zoom: <button type="button" data-zoom="out">−</button> '
            '<button type="button" data-zoom="1">100%</button> '
            '<button type="button" data-zoom="in">+</button> '
            '<button type="button" data-zoom="fit">fit width</button> '
            '<span id="zoom-level">100%</span> · drag to pan</p>'
            if "<svg" in diagram
            else ""
        ),
        f'<div class="diagram">{diagram}</div>',
        f"<h2>Claims ({len(rows)})</h2>",
        filters,
        _claims_table(rows, link_line=link_line, thumbnails=False),
    ]
    if gallery:
        sections += ["<h2>Kernels</h2>", gallery]
    sections += [f"<h2>Spec: {_e(circuit.path)}</h2>", source_html]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(circuit.name)} · circuitdsl</title>"
        f"<style>{_CSS}</style></head><body><main>"
        + "".join(head)
        + "".join(sections)
        + f"<footer>Generated by circuitdsl {_e(__version__)}.</footer>"
        + f"</main><script>{_JS}</script></body></html>\n"
    )
