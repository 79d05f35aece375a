"""Any `nn.Module`: a Python factory (`package.module:function`) plus a checkpoint.

Layers are the module's dotted paths (`features.3`, `block2.conv`, `0.3` inside an
`nn.Sequential`). The factory is called with no arguments; if the module has an
`input_shape` attribute (C, H, W) it sets the size of the example input used to trace
shapes, otherwise (3, 224, 224).

Factories are found relative to the spec: `import_factory` is the one place that turns
a reference into an object. `nets:make` is looked up next to the spec (its directory
comes first on the import path while importing), then on the ordinary import path;
`path/to/nets.py:make` names a file, relative to the spec's directory.

`from_module` wraps an `nn.Module` object the Python API was given.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from types import ModuleType

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
from circuitdsl.models.preprocess import Preprocess

# `zoo:NAME` models are looked up in a library's registry by name: no code of the spec's runs.
NAMED_ZOOS = ("torchvision:", "timm:")


def is_factory_reference(name: str) -> bool:
    """Whether model `name` is a Python factory (`package.module:function`), i.e. code."""
    return ":" in name and not name.startswith(NAMED_ZOOS)


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


def _import(mod_name: str, base_dir: Path | None) -> ModuleType:
    """Import `mod_name` (a dotted name, or a `.py` file) looking in `base_dir` first."""
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}")
        key = "circuitdsl_factory_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        if key in sys.modules:
            return sys.modules[key]
        loader_spec = importlib.util.spec_from_file_location(key, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        mod = importlib.util.module_from_spec(loader_spec)
        sys.modules[key] = mod
        try:
            loader_spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(key, None)
            raise
        return mod
    if base_dir is None:
        return importlib.import_module(mod_name)
    where = str(base_dir.resolve())
    sys.path.insert(0, where)  # only while importing: the spec's own modules first
    try:
        return importlib.import_module(mod_name)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(where)


def import_factory(spec: str, base_dir: str | Path | None = None) -> object:
    """The object named by `package.module:attribute` (E214 when it cannot be found).

    `base_dir` (the spec's directory) is searched first; the module part may also be a
    `.py` file, relative to `base_dir`.
    """
    mod_name, _, attr = spec.rpartition(":") if spec.count(":") > 1 else spec.partition(":")
    if not mod_name or not attr:
        raise _fail(
            f"`{spec}` is not a model factory reference",
            help="write it as `package.module:function`, e.g. `mymodels.nets:small_cnn`",
        )
    base = Path(base_dir) if base_dir is not None else None
    try:
        mod = _import(mod_name, base)
    except (Exception, SystemExit) as exc:  # an import can fail in any way it likes
        where = f" (looked in {base} first)" if base is not None else ""
        raise _fail(
            f"cannot import module `{mod_name}` for model `{spec}`{where}:"
            f" {type(exc).__name__}: {exc}",
            help="check the module name: it is looked for next to the spec, then on the"
            " import path; a file can be named as `nets.py:make`",
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


def build(
    spec: str,
    weights: Path | None,
    *,
    allow_random: bool = False,
    base_dir: str | Path | None = None,
) -> ModelAdapter:
    """The adapter for a factory `spec`, with weights from the checkpoint `weights`."""
    factory = import_factory(spec, base_dir)
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
    if weights is None and not allow_random:
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
    return from_module(spec, module, weights=weights)


def _input_channels(module: nn.Module) -> int:
    """The input channels of the module's first convolution (3 when it has none)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return 3


def from_module(
    name: str,
    module: nn.Module,
    *,
    weights: str | Path | None = None,
    preprocess: Preprocess | Callable[[torch.Tensor], torch.Tensor] | str | None = None,
    input_shape: tuple[int, int, int] | None = None,
) -> ModelAdapter:
    """The adapter for an `nn.Module` object (its weights as they are, or from `weights`).

    `input_shape` (C, H, W) defaults to the module's own `input_shape` attribute, then
    224x224 with the first convolution's input channels; `preprocess` to none (images
    in [0, 1]).
    """
    missing: frozenset[str] = frozenset()
    if weights is not None:
        missing = load_state_dict_into(module, weights, model_name=name)
    own = getattr(module, "input_shape", None)  # a convention of factory modules
    shape = tuple(input_shape or own or (_input_channels(module), 224, 224))
    return TracedAdapter(
        name,
        module.eval(),
        weights_path=str(weights) if weights is not None else None,
        example_input=torch.zeros(1, *shape),
        preprocess=preprocess,
        missing_parameters=missing,
    )
