"""Models that ship with circuitdsl, trained by ``python -m circuitdsl.zoo.train``.

``ZOO`` maps a model name to a :class:`ZooEntry` (factory, layer names, weights file, input
size); :func:`load_zoo_model` builds the module and loads its shipped weights with
safetensors (never pickle). docs/zoo.md has a model card for each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from circuitdsl.language.diagnostics import UnknownName, did_you_mean
from circuitdsl.zoo import nets


@dataclass(frozen=True, slots=True)
class ZooEntry:
    """A shipped model: how to build it, its layers, its weights, what it expects as input.

    ``layers`` are dotted module paths in forward order (convolutions first, then the
    classifier); ``weights`` is the file name inside the package's ``zoo/weights`` folder;
    ``input_size`` is ``(channels, height, width)`` of images in [0, 1].
    """

    name: str
    factory: Callable[[], nn.Module]
    layers: tuple[str, ...]
    weights: str
    input_size: tuple[int, int, int]
    classes: tuple[str, ...]
    description: str

    def weights_path(self) -> Path:
        """Path of the shipped safetensors file (resolved through ``importlib.resources``)."""
        ref = resources.files("circuitdsl.zoo").joinpath("weights").joinpath(self.weights)
        return Path(str(ref))

    def metadata(self) -> dict[str, Any]:
        """The training metadata JSON written beside the weights (accuracy, seed, command...)."""
        meta: dict[str, Any] = json.loads(self.weights_path().with_suffix(".json").read_text())
        return meta


_LAYERS = ("conv1", "conv2", "conv3", "fc")


def _curvenet(seed: int) -> ZooEntry:
    alias = "curvenet" if seed == 0 else f"curvenet-seed{seed}"
    return ZooEntry(
        name=alias,
        factory=nets.curvenet,
        layers=_LAYERS,
        weights=f"curvenet_seed{seed}.safetensors",
        input_size=(3, 32, 32),
        classes=nets.CURVENET_CLASSES,
        description=(
            f"Small CNN (conv 5x5/16, pool, conv 5x5/32, pool, conv 3x3/32, global average "
            f"pool, linear) trained from seed {seed} to classify generated curves by "
            f"orientation (8 bins) and lines by orientation (4 bins)."
        ),
    )


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        _curvenet(0),
        _curvenet(1),
        _curvenet(2),
        ZooEntry(
            name="fashionnet",
            factory=nets.fashionnet,
            layers=_LAYERS,
            weights="fashionnet_seed0.safetensors",
            input_size=(1, 28, 28),
            classes=nets.FASHION_CLASSES,
            description=(
                "Small CNN (conv 5x5/16, pool, conv 5x5/32, pool, conv 3x3/32, linear on the "
                "7x7 map) trained on Fashion-MNIST."
            ),
        ),
    )
}


def get_zoo_entry(name: str) -> ZooEntry:
    """The :class:`ZooEntry` called ``name``; ``KeyError`` lists the shipped names otherwise."""
    try:
        return ZOO[name]
    except KeyError:
        hint = did_you_mean(name, ZOO)
        raise UnknownName(
            f"no zoo model {name!r}; " + (f"{hint} " if hint else "") + f"shipped: {', '.join(ZOO)}"
        ) from None


def load_zoo_model(name: str, weights: str | Path | None = None) -> nn.Module:
    """Build zoo model ``name`` and load its weights (the shipped file unless ``weights``).

    The module is returned in eval mode. Loading is strict: a file with missing, extra or
    mis-shaped tensors raises ``ValueError`` naming them. Weights are read with safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    entry = get_zoo_entry(name)
    path = Path(weights) if weights is not None else entry.weights_path()
    if not path.is_file():
        if weights is not None:  # the user's path is wrong: retraining would not help
            raise FileNotFoundError(
                f"weights file {path} for zoo model {name!r} does not exist; check the path "
                "given to --weights (without it the shipped weights are used)"
            )
        raise FileNotFoundError(
            f"the shipped weights file {path} for zoo model {name!r} is missing; reinstall "
            f"circuitdsl, or recreate it with `python -m circuitdsl.zoo.train "
            f"{entry.factory.__name__} --seed N`"
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    model = entry.factory()
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k}: file has {tuple(state[k].shape)}, model wants {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if problems:
        raise ValueError(f"{path} does not fit zoo model {name!r}: " + "; ".join(problems[:5]))
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = ["ZOO", "ZooEntry", "get_zoo_entry", "load_zoo_model"]
