"""Glue for the CLI and the Python API: load a model, bind a circuit, check it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from circuitdsl.language.diagnostics import E_NO_MODEL, Diagnostic, DiagnosticError
from circuitdsl.language.ir import Circuit
from circuitdsl.report.model import Report


def check_spec(
    circuit: Circuit,
    model_name: Any = None,
    weights: str | Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    device: str = "cpu",
    program: Any = None,
    control: str | None = None,
) -> Report:
    """Load the model, bind `circuit` to it and measure every claim.

    `model_name` is a model name for `load_model` (default: the spec's `model` line),
    or an already loaded `ModelAdapter`, or a `BoundCircuit`. Raises
    `DiagnosticError` for a missing / unknown model, unreadable weights or a spec that
    does not fit the model (the CLI exits 2 on those); problems with single claims
    become `error` results instead.

    `device` ("cpu" or "cuda") is where activation claims run the model. With the parsed
    `program` (`circuitdsl.language.loader.Program`) the features declared by behaviour (`top K of
    LAYER by S`) are chosen on the model first (`circuitdsl.measure.select`) and the spec is
    compiled again with them; the report lists the choices.

    `control` ("null", "negated", "shuffled") checks the spec on a control version of the
    weights (`circuitdsl.check.controls`); the report says so and gives the false-pass rate.
    """
    from circuitdsl.check.engine import check
    from circuitdsl.models.bind import bind

    model = model_name if model_name is not None else circuit.model
    if model is None or model == "":
        raise DiagnosticError(
            [
                Diagnostic(
                    E_NO_MODEL,
                    "the spec names no model and none was given",
                    help="add `model inceptionv1` to the spec or pass --model NAME",
                )
            ]
        )
    if isinstance(model, str):
        from circuitdsl.models.base import load_model

        adapter = load_model(model, weights)
        bound = None
    elif callable(getattr(model, "block", None)) and hasattr(model, "adapter"):
        bound = model  # already bound
        adapter = model.adapter
    else:
        adapter = model
        bound = None
    selections: tuple[str, ...] = ()
    if program is not None:
        from circuitdsl.measure.select import has_selectors, materialise

        if has_selectors(program):
            from circuitdsl.language.compile import compile_circuit
            from circuitdsl.language.resolve import resolve

            concrete, chosen = materialise(program, adapter, device=device)
            circuit = compile_circuit(resolve(concrete))
            selections = tuple(c.text() for c in chosen)
            bound = None  # the circuit changed: bind it afresh
    if bound is None:
        bound = bind(circuit, adapter)
    report = check(circuit, bound, progress=progress, device=device, control=control)
    name = model if isinstance(model, str) else getattr(adapter, "name", report.model)
    wpath = getattr(adapter, "weights_path", None)
    if weights is not None:
        wpath = str(weights)
    return dataclasses.replace(report, model=str(name), weights=wpath, selections=selections)
