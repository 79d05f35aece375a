"""Glue for the CLI and the Python API: load a model, bind a circuit, check it."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from circuitdsl.diagnostics import E_NO_MODEL, Diagnostic, DiagnosticError
from circuitdsl.ir import Circuit
from circuitdsl.report import Report


def check_spec(
    circuit: Circuit,
    model_name: Any = None,
    weights: str | Path | None = None,
    *,
    progress: Any = None,
    device: str = "cpu",
    program: Any = None,
) -> Report:
    """Load `model_name` (default: the spec's `model`), bind `circuit` to it, check it.

    `model_name` may also be a `ModelAdapter` that is already loaded.

    Raises `DiagnosticError` for a missing / unknown model or unreadable weights (the
    CLI exits 2 on those); claim-level problems become `error` results instead.
    `device` ("cpu" or "cuda") is where activation claims run the model. With the parsed
    `program` (`circuitdsl.loader.Program`) the features declared by behaviour (`top K of
    LAYER by S`) are chosen on this model first (`circuitdsl.select`) and the spec is
    compiled again with them; the report lists the choices.
    """
    from circuitdsl.check.engine import check

    name = model_name or circuit.model
    if not name:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_NO_MODEL,
                    "the spec names no model and none was given",
                    help="add `model inceptionv1` to the spec or pass --model",
                )
            ]
        )
    load_model = importlib.import_module("circuitdsl.models.base").load_model
    bind = importlib.import_module("circuitdsl.bind").bind
    if isinstance(name, str):
        adapter = load_model(name, weights=str(weights) if weights is not None else None)
    else:  # an adapter that is already loaded (the Python API, tests)
        adapter, name = name, name.name
    selections: tuple[str, ...] = ()
    if program is not None:
        from circuitdsl.select import has_selectors, materialise

        if has_selectors(program):
            from circuitdsl.compile import compile_circuit
            from circuitdsl.resolve import resolve

            concrete, chosen = materialise(program, adapter, device=device)
            circuit = compile_circuit(resolve(concrete))
            selections = tuple(c.text() for c in chosen)
    bound = bind(circuit, adapter)
    report = check(circuit, bound, progress=progress, device=device)
    if selections:
        report = dataclasses.replace(report, selections=selections)
    if report.model != name or (weights is not None and report.weights is None):
        report = dataclasses.replace(
            report,
            model=name,
            weights=str(weights) if weights is not None else report.weights,
        )
    return report
