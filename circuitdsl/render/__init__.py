"""Rendering and export: Distill-style Graphviz diagrams and a self-contained HTML report.

* `to_dot(circuit, report=None)`: deterministic DOT text (no Graphviz needed);
* `render(circuit, out_path, report=None)`: `.dot`, `.svg`, `.png`, `.pdf`, `.html`;
* `to_html(circuit, report=None, source_text=None)`: the one-file report page;
* `circuit_svg(circuit, report=None)`: the diagram as an `<svg>` element (Jupyter);
* `report_table_html(report)`: a report's verdict table (`Report._repr_html_`).
"""

from circuitdsl.render.dot import kernel_table, layer_order, to_dot
from circuitdsl.render.graphviz_out import FORMATS, dot_available, run_dot
from circuitdsl.render.html import circuit_svg, kernel_svg, report_table_html, to_html
from circuitdsl.render.output import render

__all__ = [
    "FORMATS",
    "circuit_svg",
    "dot_available",
    "kernel_svg",
    "kernel_table",
    "layer_order",
    "render",
    "report_table_html",
    "run_dot",
    "to_dot",
    "to_html",
]
