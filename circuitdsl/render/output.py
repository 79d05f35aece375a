"""Write a circuit diagram to a file, in the format its suffix names (DOT, SVG, PNG, PDF
or the HTML report page)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from circuitdsl.language.diagnostics import E_GRAPHVIZ, E_USAGE, Diagnostic, DiagnosticError
from circuitdsl.language.ir import Circuit
from circuitdsl.render.dot import to_dot
from circuitdsl.render.graphviz_out import FORMATS, INSTALL_HELP, _write, dot_available, run_dot
from circuitdsl.render.html import to_html
from circuitdsl.report.model import Report


def render(
    circuit: Circuit,
    out_path: str | Path,
    report: Report | None = None,
    *,
    source_text: str | None = None,
    layer_order: Sequence[str] | None = None,
    rankdir: str = "TB",
    node_images: Mapping[str, str | Path] | None = None,
) -> Path:
    """Draw `circuit` (with `report`'s verdicts and kernels, if given) into `out_path`.

    The format follows the suffix: `.dot`/`.gv` (DOT text, needs no Graphviz),
    `.svg`, `.png`, `.pdf`, or `.html` (a self-contained report page, see
    `circuitdsl.render.html.to_html`). If Graphviz is missing, the DOT text is
    still written beside the requested file (`x.svg` -> `x.dot`) before E302 is
    raised, so the user can render it elsewhere. Returns the path written.
    """
    out = Path(out_path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_USAGE,
                    f"cannot render to {out}: unknown output format {suffix or '(no suffix)'!r}",
                    help="use one of " + ", ".join(FORMATS),
                )
            ]
        )
    dot_text = to_dot(
        circuit, report, layer_order=layer_order, rankdir=rankdir, node_images=node_images
    )
    if suffix in (".dot", ".gv"):
        _write(out, dot_text.encode("utf-8"))
        return out

    if not dot_available():
        beside = out.with_suffix(".dot")
        _write(beside, dot_text.encode("utf-8"))
        raise DiagnosticError(
            [
                Diagnostic(
                    E_GRAPHVIZ,
                    f"cannot render {out}: Graphviz's `dot` program is not installed; "
                    f"wrote the diagram's DOT source to {beside} instead",
                    help=f"{INSTALL_HELP}; then `dot -T{suffix[1:]} {beside} -o {out}`"
                    if suffix != ".html"
                    else INSTALL_HELP,
                )
            ]
        )

    if suffix == ".html":
        page = to_html(
            circuit,
            report,
            source_text,
            layer_order=layer_order,
            rankdir=rankdir,
            node_images=node_images,
        )
        _write(out, page.encode("utf-8"))
        return out

    _write(out, run_dot(dot_text, suffix[1:]))
    return out
