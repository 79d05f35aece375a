"""`torchvision:<name>` models, addressed by torchvision's own module paths.

Every classification model in torchvision's registry
(``torchvision.models.list_models(module=torchvision.models)``) is available by name;
its input size and mean/std are those its published weights declare.

Layers are dotted module paths (`inception4c`, `layer3.1.conv2`, `features.28`).
A conv followed by its BatchNorm (googlenet's `BasicConv2d.conv`, ResNet's
`conv1`/`bn1` pairs) names the conv with the BatchNorm folded in: its weights are
``W * gamma / sqrt(var + eps)``. Weights come from `--weights FILE` or, when absent,
torchvision's own checkpoint in torch's cache directory if it was downloaded before.
"""

from __future__ import annotations

from pathlib import Path

import torch

from circuitdsl.language.diagnostics import (
    E_UNKNOWN_MODEL,
    E_WEIGHTS_MISSING,
    Diagnostic,
    DiagnosticError,
    did_you_mean,
)
from circuitdsl.models.base import ModelAdapter, TracedAdapter
from circuitdsl.models.checkpoint import load_state_dict_into
from circuitdsl.models.preprocess import IMAGENET, Preprocess

#: Extra constructor arguments: googlenet's and inception_v3's auxiliary heads are not
#: part of the inference graph (and would make their published weights not fit).
CONSTRUCTOR_ARGS: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}


def available() -> list[str]:
    """Every torchvision classification model, from torchvision's own registry."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _model_preprocess(name: str) -> tuple[Preprocess, int]:
    """The mean/std and crop size torchvision's published weights for `name` declare."""
    from torchvision.models import get_model_weights

    try:
        t = get_model_weights(name).DEFAULT.transforms()
        mean, std, crop = tuple(t.mean), tuple(t.std), int(t.crop_size[0])
    except Exception:  # a model without published weights: ImageNet's defaults
        return IMAGENET, 224
    if mean == IMAGENET.mean and std == IMAGENET.std:
        return IMAGENET, crop
    return Preprocess(f"torchvision:{name}", 1.0, mean, std), crop


def _cached_checkpoint(name: str) -> Path | None:
    """torchvision's downloaded checkpoint for `name` in torch's cache, if present."""
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(name)
    except ValueError:
        return None
    ckpt_dir = Path(torch.hub.get_dir()) / "checkpoints"
    for w in enum:
        f = ckpt_dir / Path(w.url).name
        if f.is_file():
            return f
    return None


def build(
    name: str,
    weights: Path | None,
    *,
    allow_random: bool = False,
    input_size: int | None = None,
) -> ModelAdapter:
    """The adapter for `torchvision:<name>` with weights from `weights` or torch's cache.

    `allow_random` builds the model with random weights (tests and benchmarks only);
    `input_size` sets the side of the example image used to trace shapes (channel
    counts and kernels do not depend on it; default 224, 299 for inception_v3).
    """
    import torchvision

    names = available()
    if name not in names:
        hint = did_you_mean(name, names) or "torchvision has: " + ", ".join(sorted(names))
        raise DiagnosticError(
            [Diagnostic(E_UNKNOWN_MODEL, f"unknown torchvision model `{name}`", help=hint)]
        )
    kwargs = dict(CONSTRUCTOR_ARGS.get(name, {}))
    if weights is None:
        weights = _cached_checkpoint(name)
    if weights is None and not allow_random:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_WEIGHTS_MISSING,
                    f"no weights for `torchvision:{name}`",
                    help=f"pass `--weights FILE` (a state dict of torchvision's `{name}`), or"
                    " download torchvision's weights once (`torchvision.models.get_model("
                    f"'{name}', weights='DEFAULT')`) so that they are in {torch.hub.get_dir()}",
                )
            ]
        )
    missing: frozenset[str] = frozenset()
    if weights is not None:
        # Built on the meta device, the file's tensors are assigned, not copied into
        # freshly (and uselessly) initialised ones.
        try:
            with torch.device("meta"):
                module = torchvision.models.get_model(name, weights=None, **kwargs)
        except NotImplementedError:  # a constructor that computes with tensors (regnet)
            module = torchvision.models.get_model(name, weights=None, **kwargs)
        if name == "googlenet":
            # torchvision's published googlenet weights expect RGB normalised as
            # Inception does: turn the input transform on, as torchvision does.
            module.transform_input = True
        missing = load_state_dict_into(
            module, weights, model_name=f"torchvision:{name}", assign=True
        )
    else:
        module = torchvision.models.get_model(name, weights=None, **kwargs)
    preprocess, crop = _model_preprocess(name)
    size = input_size or crop
    return TracedAdapter(
        f"torchvision:{name}",
        module.eval(),
        weights_path=str(weights) if weights is not None else None,
        example_input=torch.zeros(1, 3, size, size),
        preprocess=preprocess,
        missing_parameters=missing,
    )
