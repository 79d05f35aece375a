"""Input preprocessing as a value: what a model expects, named, so reports can state it.

Stimuli and images are rendered RGB in [0, 1]; a network trained on other input sees
them through its own transform. `Preprocess` is that transform,
``(x * scale - mean) / std`` per channel, with a name. The presets are the transforms
of the networks circuitdsl knows:

* ``imagenet`` -- torchvision's ``(x - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)``;
* ``caffe`` -- Caffe's VGG/HED input: ``x * 255`` minus the BGR means
  (103.939, 116.779, 123.68), written here in RGB order for an RGB-input module;
* ``lucent`` -- lucent's InceptionV1: ``x * 255 - 117``;
* ``none`` -- the identity.

A Python callable can stand in for a preset (`from_callable`); its name is the
callable's, so the report still says what ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from circuitdsl.language.diagnostics import E_PREPROCESS, Diagnostic, DiagnosticError, did_you_mean
from circuitdsl.language.ir import PREPROCESS_NAMES

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Preprocess:
    """A named input transform: images in [0, 1] -> ``(x * scale - mean) / std``.

    `mean` and `std` have one entry per input channel (or one for all); `fn`, when
    given, replaces the affine transform (a user's callable).
    """

    name: str
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Apply the transform to ``[N, C, H, W]`` images in [0, 1]."""
        if self.fn is not None:
            return self.fn(images)
        if self.is_identity:
            return images
        import torch

        c = images.shape[1] if images.dim() == 4 else 1
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, c):
                raise DiagnosticError(
                    [
                        Diagnostic(
                            E_PREPROCESS,
                            f"preprocessing `{self.name}` has {len(values)} {what} values but"
                            f" the model's input has {c} channel(s)",
                            help="choose a preprocessing made for this input (`--preprocess"
                            " none` for a model that takes images in [0, 1])",
                        )
                    ]
                )
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device)
        return (images * self.scale - mean[:, None, None]) / std[:, None, None]

    @property
    def is_identity(self) -> bool:
        """True when the transform leaves images unchanged."""
        return (
            self.fn is None
            and self.scale == 1.0
            and all(m == 0.0 for m in self.mean)
            and all(s == 1.0 for s in self.std)
        )

    def describe(self) -> str:
        """The name and the formula, for reports and `circ layers`."""
        if self.fn is not None:
            return f"{self.name} (a Python callable)"
        if self.is_identity:
            return f"{self.name} (images in [0, 1])"
        x = "x" if self.scale == 1.0 else f"x * {self.scale:g}"
        mean = ", ".join(f"{m:g}" for m in self.mean)
        text = f"{x} - ({mean})" if any(self.mean) else x
        if any(s != 1.0 for s in self.std):
            text = f"({text}) / ({', '.join(f'{s:g}' for s in self.std)})"
        return f"{self.name} ({text}, RGB)"

    def __str__(self) -> str:
        return self.describe()


IMAGENET = Preprocess("imagenet", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CAFFE = Preprocess("caffe", 255.0, (123.68, 116.779, 103.939))  # BGR means, in RGB order
LUCENT = Preprocess("lucent", 255.0, (117.0,))
NONE = Preprocess("none")

PRESETS: dict[str, Preprocess] = {p.name: p for p in (IMAGENET, CAFFE, LUCENT, NONE)}
assert tuple(PRESETS) == PREPROCESS_NAMES  # the language layer lists the same names


def preset(name: str) -> Preprocess:
    """The preset called `name` (E300 naming the presets when there is none)."""
    try:
        return PRESETS[name]
    except KeyError:
        hint = did_you_mean(name, list(PRESETS)) or ""
        raise DiagnosticError(
            [
                Diagnostic(
                    E_PREPROCESS,
                    f"unknown preprocessing `{name}`",
                    help=(hint + " " if hint else "")
                    + "choose one of "
                    + ", ".join(f"`{p}`" for p in PRESETS)
                    + " (in Python, also a callable)",
                )
            ]
        ) from None


def as_preprocess(value: str | Preprocess | Callable[[torch.Tensor], torch.Tensor]) -> Preprocess:
    """A preset name, a `Preprocess`, or a callable (named after itself) as a `Preprocess`."""
    if isinstance(value, Preprocess):
        return value
    if isinstance(value, str):
        return preset(value)
    if callable(value):
        # a transform object with its own `name` (another adapter's) keeps it in reports
        name = getattr(value, "name", None) or getattr(value, "__qualname__", None)
        return Preprocess(str(name or type(value).__name__), fn=value)
    raise DiagnosticError(
        [
            Diagnostic(
                E_PREPROCESS,
                f"preprocessing must be a name or a callable, not {type(value).__name__}",
                help="pass one of " + ", ".join(f"`{p}`" for p in PRESETS) + " or a function",
            )
        ]
    )
