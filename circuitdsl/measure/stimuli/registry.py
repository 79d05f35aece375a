"""Drawable stimuli: the language's catalogue (`circuitdsl.language.stimuli`) joined to the
generators that render each entry as a batched ``[N, 3, H, W]`` tensor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from circuitdsl.language.diagnostics import UnknownName, did_you_mean
from circuitdsl.language.stimuli import CATALOGUE, StimulusSpec, check_params
from circuitdsl.measure.stimuli import generators


class Stimulus:
    """A catalogue entry that can draw itself: ``STIMULI["curve"](size=32, orientation=45.0)``.

    Attribute access falls through to the `StimulusSpec` (``param_names``, ``defaults()``,
    ``orientation_period``, ...).
    """

    __slots__ = ("fn", "spec")

    def __init__(self, spec: StimulusSpec, fn: Callable[..., torch.Tensor]) -> None:
        self.spec = spec
        self.fn = fn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spec, name)

    def __repr__(self) -> str:
        return f"Stimulus({self.spec.name!r})"

    def __call__(self, size: int | tuple[int, int] = 32, **params: Any) -> torch.Tensor:
        """Render the stimulus; unknown parameter names raise ``ValueError`` with a hint."""
        check_params(self.spec, params)
        return self.fn(size=size, **params)


STIMULI: dict[str, Stimulus] = {
    name: Stimulus(spec, getattr(generators, name)) for name, spec in CATALOGUE.items()
}


def get_stimulus(name: str) -> Stimulus:
    """Look up a stimulus by name; an unknown name raises ``KeyError`` listing the valid ones."""
    try:
        return STIMULI[name]
    except KeyError:
        hint = did_you_mean(name, STIMULI)
        raise UnknownName(
            f"unknown stimulus {name!r}; "
            + (f"{hint} " if hint else "")
            + f"known: {', '.join(STIMULI)}"
        ) from None


def make_stimulus(name: str, size: int | tuple[int, int] = 32, **params: Any) -> torch.Tensor:
    """Render the stimulus ``name`` with ``params`` (numbers or 1-D tensors) as ``[N, 3, H, W]``."""
    return get_stimulus(name)(size=size, **params)


def draw(name: str, canvas: Any, **params: Any) -> torch.Tensor:
    """Render `name` on `canvas` (`circuitdsl.models.geometry.Canvas`): its ``size``, with
    the stimulus's ``x``/``y`` taken from the canvas's anchor (the centre unit's
    receptive-field centre) instead of the image centre."""
    ax, ay = canvas.anchor
    if ax or ay:
        params = dict(params)
        params["x"] = _shift(params.get("x", 0.0), ax)
        params["y"] = _shift(params.get("y", 0.0), ay)
    return get_stimulus(name)(size=canvas.size, **params)


def _shift(value: Any, by: float) -> Any:
    if isinstance(value, torch.Tensor):
        return value + by
    if isinstance(value, (list, tuple)):
        return [float(v) + by for v in value]
    return float(value) + by


_VERSION: list[str] = []


def version() -> str:
    """A hash of the drawing code (generators and geometry): part of every cache key, so
    that changed drawing code never reads activations cached from the old one."""
    if not _VERSION:
        import hashlib
        from pathlib import Path

        h = hashlib.sha256()
        here = Path(__file__).resolve().parent
        for name in ("generators.py", "_geometry.py"):
            h.update((here / name).read_bytes())
        _VERSION.append(h.hexdigest()[:16])
    return _VERSION[0]
