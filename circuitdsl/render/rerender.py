"""The circuit a report was measured on, rebuilt without a model.

A spec whose features are declared by behaviour (`top K of LAYER by S`) compiles to
families with no members until a model chooses them; the report records the choices
(`Report.selection_data`). Drawing the report therefore needs the spec compiled with those
choices, or every family shows "0 members" and its claims are missing. This module
rebuilds that circuit from the spec and the report, so `circ render --report
report.json` draws a check again without measuring anything.
"""

from __future__ import annotations

from typing import Any

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError
from circuitdsl.language.ir import Circuit
from circuitdsl.report.model import Report


def circuit_for_report(spec: Any, report: Report | None) -> Circuit:
    """`spec` (a `circuitdsl.api.Spec`) compiled with the channels `report` chose."""
    from circuitdsl.measure.select import apply_selections, has_selectors, selections_from_data

    circuit: Circuit = spec.circuit
    if report is None or not has_selectors(spec.program):
        return circuit
    if not report.selection_data:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"`{spec.circuit.path}` chooses features by behaviour, but the report "
                    "does not record the choices",
                    help="check the spec again with this version (`circ check SPEC -o "
                    "report.json`)",
                )
            ]
        )
    from circuitdsl.language.compile import compile_circuit
    from circuitdsl.language.resolve import resolve

    chosen = selections_from_data(list(report.selection_data))
    return compile_circuit(resolve(apply_selections(spec.program, chosen)))
