"""`timm:<name>` models (an optional extra: ``pip install 'circuitdsl[timm]'``).

Layers are timm's own module paths (`layer3.1.conv2`, `stages.2.blocks.0.conv_dw`),
BatchNorm folded as for torchvision. The model's pretrained config gives the input
size and the mean/std of its preprocessing (`pretrained_cfg`). Weights come from
`--weights FILE` or, when absent, timm's own download in the Hugging Face or torch
hub cache if it was fetched before; nothing is ever downloaded here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from circuitdsl.language.diagnostics import (
    E_MODEL_FACTORY,
    E_UNKNOWN_MODEL,
    E_WEIGHTS_MISSING,
    Diagnostic,
    DiagnosticError,
    did_you_mean,
)
from circuitdsl.models.base import ModelAdapter, TracedAdapter
from circuitdsl.models.checkpoint import load_state_dict_into
from circuitdsl.models.preprocess import IMAGENET, Preprocess

INSTALL_HINT = "install it with `pip install timm` (or `pip install 'circuitdsl[timm]'`)"


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_UNKNOWN_MODEL,
                    "`timm:` models need the package timm, which is not installed",
                    help=INSTALL_HINT,
                )
            ]
        ) from None
    return timm


def preprocess_of(cfg: dict[str, Any], name: str) -> Preprocess:
    """The preprocessing a timm pretrained config declares (mean/std on [0, 1] images)."""
    mean = tuple(float(m) for m in cfg.get("mean", IMAGENET.mean))
    std = tuple(float(s) for s in cfg.get("std", IMAGENET.std))
    if mean == IMAGENET.mean and std == IMAGENET.std:
        return IMAGENET
    return Preprocess(f"timm:{name}", 1.0, mean, std)


def cached_checkpoint(cfg: dict[str, Any]) -> Path | None:
    """timm's earlier download of these weights, if one is in a local cache (no network)."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # timm without the hub client: only torch's cache
            pass
        else:
            for filename in ("model.safetensors", "pytorch_model.bin"):
                found = try_to_load_from_cache(hub_id, filename)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found)
    url = cfg.get("url")
    if url:
        f = Path(torch.hub.get_dir()) / "checkpoints" / Path(str(url)).name
        if f.is_file():
            return f
    return None


def build(name: str, weights: Path | None, *, allow_random: bool = False) -> ModelAdapter:
    """The adapter for `timm:<name>` with weights from `weights` or timm's cache.

    `allow_random` builds the model with random weights (tests only).
    """
    timm = _timm()
    if not timm.is_model(name.split(".", 1)[0]):
        names = timm.list_models()
        hint = did_you_mean(name, names) or "`timm.list_models()` lists them"
        raise DiagnosticError(
            [Diagnostic(E_UNKNOWN_MODEL, f"unknown timm model `{name}`", help=hint)]
        )
    try:
        try:
            with torch.device("meta"):  # skips a random initialisation the file replaces
                module = timm.create_model(name, pretrained=False)
        except NotImplementedError:  # a constructor that computes with tensors
            module = timm.create_model(name, pretrained=False)
    except Exception as exc:  # a model's constructor can fail in any way it likes
        raise DiagnosticError(
            [
                Diagnostic(
                    E_MODEL_FACTORY,
                    f"timm could not build `{name}`: {type(exc).__name__}: {str(exc)[:200]}",
                )
            ]
        ) from None
    cfg = dict(getattr(module, "pretrained_cfg", None) or {})  # timm's documented attribute
    if weights is None:
        weights = cached_checkpoint(cfg)
    missing: frozenset[str] = frozenset()
    if weights is not None:
        missing = load_state_dict_into(module, weights, model_name=f"timm:{name}", assign=True)
    elif allow_random and any(p.is_meta for p in module.parameters()):
        module = timm.create_model(name, pretrained=False)  # real storage, random init
    else:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_WEIGHTS_MISSING,
                    f"no weights for `timm:{name}`",
                    help=f"pass `--weights FILE` (a state dict of timm's `{name}`, .pth or"
                    " .safetensors), or download them once with timm"
                    f" (`timm.create_model('{name}', pretrained=True)`) so they are cached",
                )
            ]
        )
    shape = tuple(int(v) for v in cfg.get("input_size", (3, 224, 224)))
    return TracedAdapter(
        f"timm:{name}",
        module.eval(),
        weights_path=str(weights) if weights is not None else None,
        example_input=torch.zeros(1, *shape),
        preprocess=preprocess_of(cfg, name),
        missing_parameters=missing,
    )
