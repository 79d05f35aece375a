"""Any `nn.Module`: a Python factory (`package.module:function`) plus a checkpoint.

Layers are the module's dotted paths (`features.3`, `block2.conv`). The factory is
called with no arguments; if the module has an `input_shape` attribute (C, H, W) it
sets the size of the example input used to trace shapes, otherwise (3, 224, 224).
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from pathlib import Path

import torch
from torch import nn

from circuitdsl.language.diagnostics import (
    E_MODEL_FACTORY,
    E_SPEC_FACTORY,
    E_WEIGHTS_MISSING,
    Diagnostic,
    DiagnosticError,
)
from circuitdsl.models.base import ModelAdapter, TracedAdapter
from circuitdsl.models.checkpoint import load_state_dict_into


def is_factory_reference(name: str) -> bool:
    """Whether model `name` is a Python factory (`package.module:function`), i.e. code."""
    return ":" in name and not name.startswith("torchvision:")


def guard_spec_factory(name: str, allow: bool | Collection[str], spec_path: str | None) -> None:
    """Refuse (E220) a factory named by a spec's `model` line unless the user allowed it.

    Checking a spec must be as safe as loading a weight file: `model "os:abort"` would
    otherwise import and call any function the spec names. Factories given by the user
    (`--model`, `check_spec(circuit, "pkg.mod:fn")`) are not spec-named and never come
    here. `allow` is True (`--trust-spec`) or the references allowed by `--allow-factory`.
    """
    if not is_factory_reference(name) or allow is True:
        return
    if not isinstance(allow, bool) and name in set(allow):
        return
    where = f"`{spec_path}`" if spec_path else "the spec"
    raise DiagnosticError(
        [
            Diagnostic(
                E_SPEC_FACTORY,
                f"{where} names the Python factory `{name}` as its model; a spec cannot run"
                " code unless you allow it, so it was not imported or called",
                help=f"if you trust this code, pass `--allow-factory {name}` (Python:"
                f" `allow_factories=[{name!r}]`) or `--trust-spec`; or give the model"
                f" yourself with `--model {name}`",
            )
        ]
    )


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
    except (Exception, SystemExit) as exc:  # an import can fail in any way it likes
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
        except (Exception, SystemExit) as exc:  # `sys:exit` must not end circ with 0
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
