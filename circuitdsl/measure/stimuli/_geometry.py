"""Shared geometry for the stimulus generators: batching, pixel grids, antialiased coverage.

Coordinates (documented in docs/stimuli.md): ``x`` grows to the right (columns), ``y`` grows
downwards (rows, row 0 at the top). Both are measured in pixels from the image centre, which
is ``((W - 1) / 2, (H - 1) / 2)`` in pixel-index coordinates, so that ``torch.rot90`` maps
the pixel grid onto itself exactly. Angles are in degrees, 0° points right and positive
angles turn counter-clockwise *as the image is displayed*: the unit vector of angle ``a`` is
``(cos a, -sin a)`` in ``(x, y)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Scalar = float | int | Sequence[float] | torch.Tensor
"""A parameter value: one number for the whole batch, or one per image (shape ``[N]``)."""

DTYPE = torch.float32


def as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """Normalise an image size given as ``S`` or ``(H, W)`` to ``(H, W)``."""
    if isinstance(size, int):
        h = w = size
    else:
        h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {(h, w)}")
    return h, w


def batch(**params: Scalar) -> tuple[int, dict[str, torch.Tensor]]:
    """Broadcast scalar-or-vector parameters to a common batch size ``N``.

    Every value becomes a 1-D float tensor of length ``N``; values of length 1 repeat.
    Raises ``ValueError`` naming the parameters whose lengths disagree.
    """
    out: dict[str, torch.Tensor] = {}
    for name, value in params.items():
        t = torch.as_tensor(value, dtype=DTYPE).detach()
        if t.dim() > 1:
            raise ValueError(
                f"parameter {name!r} must be a number or 1-D, got shape {tuple(t.shape)}"
            )
        out[name] = t.reshape(-1)
    lengths = {name: t.numel() for name, t in out.items()}
    sizes = {n for n in lengths.values() if n != 1}
    if len(sizes) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in lengths.items() if v != 1)
        raise ValueError(f"parameter lengths disagree ({detail}); give one value or N values each")
    n = sizes.pop() if sizes else 1
    if any(t.numel() == 0 for t in out.values()):
        raise ValueError("empty parameter tensor")
    return n, {name: t.expand(n).clone() for name, t in out.items()}


def batch_colors(n: int, **colors: Sequence[float] | torch.Tensor) -> dict[str, torch.Tensor]:
    """Broadcast RGB colours given as ``[3]`` or ``[N, 3]`` to ``[N, 3]`` tensors in [0, 1]."""
    out: dict[str, torch.Tensor] = {}
    for name, value in colors.items():
        t = torch.as_tensor(value, dtype=DTYPE).detach()
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[1] != 3 or t.shape[0] not in (1, n):
            raise ValueError(
                f"colour {name!r} must have shape [3] or [{n}, 3], got {tuple(t.shape)}"
            )
        out[name] = t.expand(n, 3).clamp(0.0, 1.0).clone()
    return out


def grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``(x, y)`` of shape ``[1, H, W]``, origin at the image centre."""
    ys = torch.arange(h, dtype=DTYPE) - (h - 1) / 2
    xs = torch.arange(w, dtype=DTYPE) - (w - 1) / 2
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x.unsqueeze(0), y.unsqueeze(0)


def unit(deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vector of an angle in degrees, in image coordinates (y down): ``(cos, -sin)``."""
    rad = deg * (math.pi / 180.0)
    return torch.cos(rad), -torch.sin(rad)


def col(t: torch.Tensor) -> torch.Tensor:
    """Reshape a ``[N]`` tensor to ``[N, 1, 1]`` so it broadcasts against ``[N, H, W]`` maps."""
    return t.reshape(-1, 1, 1)


def stroke(dist: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Antialiased coverage of a stroke of ``width`` pixels from a distance-to-centreline map.

    A linear ramp one pixel wide around the stroke's border approximates the area of each
    pixel square the stroke covers (exact for a straight border at any angle to within the
    ramp's error), which is what keeps thin strokes from aliasing.
    """
    return (col(width) / 2 + 0.5 - dist).clamp(0.0, 1.0)


def halfplane(signed: torch.Tensor, softness: torch.Tensor) -> torch.Tensor:
    """Antialiased coverage of the half-plane ``signed > 0``, ramp ``softness`` pixels wide."""
    s = col(softness).clamp_min(1e-6)
    return (signed / s + 0.5).clamp(0.0, 1.0)


def segment_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    ax: torch.Tensor,
    ay: torch.Tensor,
    bx: torch.Tensor,
    by: torch.Tensor,
) -> torch.Tensor:
    """Distance from every pixel to the segment ``a``–``b`` (endpoints ``[N]``), ``[N, H, W]``."""
    ax, ay, bx, by = col(ax), col(ay), col(bx), col(by)
    dx, dy = bx - ax, by - ay
    len2 = (dx * dx + dy * dy).clamp_min(1e-12)
    t = (((x - ax) * dx + (y - ay) * dy) / len2).clamp(0.0, 1.0)
    px, py = ax + t * dx - x, ay + t * dy - y
    return torch.sqrt(px * px + py * py)


def compose(
    coverage: torch.Tensor, foreground: torch.Tensor, background: torch.Tensor
) -> torch.Tensor:
    """Blend ``[N, H, W]`` coverage between ``[N, 3]`` colours into an ``[N, 3, H, W]`` image."""
    fg = foreground.reshape(-1, 3, 1, 1)
    bg = background.reshape(-1, 3, 1, 1)
    return (bg + (fg - bg) * coverage.unsqueeze(1)).clamp(0.0, 1.0).contiguous()


def gray(values: torch.Tensor) -> torch.Tensor:
    """Grey levels ``[N]`` as RGB colours ``[N, 3]``."""
    return values.clamp(0.0, 1.0).unsqueeze(1).expand(-1, 3)
