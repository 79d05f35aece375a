"""Any `nn.Module`: a Python factory (`package.module:function`) plus a checkpoint.

Layers are the module's dotted paths (`features.3`, `block2.conv`). The factory is
called with no arguments; if the module has an `input_shape` attribute (C, H, W) it
sets the size of the example input used to trace shapes, otherwise (3, 224, 224).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from circuitdsl.language.diagnostics import (
    E_MODEL_FACTORY,
    E_WEIGHTS_MISSING,
    Diagnostic,
    DiagnosticError,
)
from circuitdsl.models.base import ModelAdapter, TracedAdapter
from circuitdsl.models.checkpoint import load_state_dict_into


def _fail(message: str, help: str | None = None) -> DiagnosticError:
    return DiagnosticError([Diagnostic(E_MODEL_FACTORY, message, help=help)])


def import_factory(spec: str) -> object:
    """The object named by `package.module:attribute` (E214 when it cannot be found)."""
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise _fail(
            f"`{spec}` is not a model factory reference",
            help="write it as `package.module:function`, e.g. `mymodels.nets:small_cnn`",
        )
    try:
        mod = importlib.import_module(mod_name)
    except Exception as exc:  # an import can fail in any way the imported code likes
        raise _fail(
            f"cannot import module `{mod_name}` for model `{spec}`: {type(exc).__name__}: {exc}",
            help="check the module name and that it is importable (on PYTHONPATH)",
        ) from None
    obj: object = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(mod) if not n.startswith("_")]
            from circuitdsl.language.diagnostics import did_you_mean

            raise _fail(
                f"module `{mod_name}` has no attribute `{attr}`",
                help=did_you_mean(part, names) or f"it defines {', '.join(names[:10])}",
            )
        obj = getattr(obj, part)
    return obj


def build(spec: str, weights: Path | None, *, allow_random: bool = False) -> ModelAdapter:
    """The adapter for a factory `spec`, with weights from the checkpoint `weights`."""
    factory = import_factory(spec)
    if isinstance(factory, nn.Module):
        module = factory
    elif callable(factory):
        try:
            module = factory()
        except Exception as exc:
            raise _fail(
                f"calling the model factory `{spec}` failed: {type(exc).__name__}: {exc}",
                help="the factory must take no arguments and return an `nn.Module`",
            ) from None
    else:
        raise _fail(f"`{spec}` is neither an `nn.Module` nor a callable that returns one")
    if not isinstance(module, nn.Module):
        raise _fail(
            f"the model factory `{spec}` returned {type(module).__name__}, not an `nn.Module`"
        )
    if weights is not None:
        load_state_dict_into(module, weights, model_name=spec)
    elif not allow_random:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_WEIGHTS_MISSING,
                    f"model `{spec}` needs a weight file",
                    help="pass `--weights FILE` with a state dict saved by"
                    " `torch.save(model.state_dict(), FILE)` or as safetensors",
                )
            ]
        )
    shape = tuple(getattr(module, "input_shape", (3, 224, 224)))
    return TracedAdapter(
        spec,
        module.eval(),
        weights_path=str(weights) if weights is not None else None,
        example_input=torch.zeros(1, *shape),
    )
