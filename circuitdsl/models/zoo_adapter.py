"""Adapters for the shipped models (`circuitdsl.zoo`): `load_model("curvenet")`.

The zoo owns architectures and weights; this module only wraps a loaded zoo module in
a `TracedAdapter` traced at the model's own input size, and turns the zoo's loading
errors into diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from circuitdsl.language.diagnostics import (
    E_WEIGHTS_CORRUPT,
    E_WEIGHTS_MISSING,
    Diagnostic,
    DiagnosticError,
)
from circuitdsl.models.base import ModelAdapter, TracedAdapter


def build(name: str, weights: Path | None) -> ModelAdapter:
    """The adapter of zoo model `name` (shipped weights unless `weights` is given)."""
    from circuitdsl.zoo import get_zoo_entry, load_zoo_model

    entry = get_zoo_entry(name)
    try:
        if weights is not None and Path(weights).suffix != ".safetensors":
            # A user's own file (`.pth`, `.pt`): the one checked reader of weight files,
            # pickle-free, with the same diagnostics as any other model's weights.
            from circuitdsl.models.checkpoint import load_state_dict_into

            module = entry.factory()
            load_state_dict_into(module, weights, model_name=name, allow_missing_head=False)
            module = module.eval()
        else:
            module = load_zoo_model(name, weights)
    except FileNotFoundError as exc:
        raise DiagnosticError([Diagnostic(E_WEIGHTS_MISSING, str(exc))]) from None
    except ValueError as exc:
        raise DiagnosticError([Diagnostic(E_WEIGHTS_CORRUPT, str(exc))]) from None
    path = Path(weights) if weights is not None else entry.weights_path()
    return TracedAdapter(
        name,
        module,
        weights_path=str(path),
        example_input=torch.zeros(1, *entry.input_size),
    )


def zoo_factories() -> dict[str, Callable[[Path | None], ModelAdapter]]:
    """A `load_model` factory for every shipped model name (the registry registers them)."""
    from circuitdsl.zoo import ZOO

    def factory(zoo_name: str) -> Callable[[Path | None], ModelAdapter]:
        return lambda weights: build(zoo_name, weights)

    return {zoo_name: factory(zoo_name) for zoo_name in ZOO}
