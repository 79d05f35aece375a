"""Batched, deterministic, antialiased stimulus generators.

Every generator takes its parameters as numbers or 1-D tensors (one value per image), so a
whole tuning sweep is one call, and returns a float tensor ``[N, 3, H, W]`` in [0, 1].
Conventions (see docs/stimuli.md and ``_geometry``): ``x`` right, ``y`` down, origin at the
image centre; angles in degrees, 0° = pointing right, positive = counter-clockwise on screen,
so adding 90° to an orientation equals ``torch.rot90(image, 1, dims=(-2, -1))`` for a
stimulus centred in a square image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from circuitdsl.measure.stimuli._geometry import (
    Scalar,
    as_size,
    batch,
    batch_colors,
    col,
    compose,
    gray,
    grid,
    halfplane,
    segment_distance,
    stroke,
    unit,
)

Size = int | tuple[int, int]
Color = Sequence[float] | torch.Tensor


def _color_rows(color: Color) -> int:
    t = torch.as_tensor(color)
    return int(t.shape[0]) if t.dim() == 2 else 1


def line(
    orientation: Scalar = 0.0,
    *,
    length: Scalar = 12.0,
    width: Scalar = 1.5,
    x: Scalar = 0.0,
    y: Scalar = 0.0,
    foreground: Scalar = 1.0,
    background: Scalar = 0.0,
    size: Size = 32,
) -> torch.Tensor:
    """A straight segment with round caps, centred at ``(x, y)``, along ``orientation``.

    ``orientation`` is the segment's direction in degrees (period 180°: 0° is horizontal,
    90° vertical, 45° runs from bottom-left to top-right). ``length`` and ``width`` in pixels.
    """
    h, w = as_size(size)
    _, p = batch(
        orientation=orientation,
        length=length,
        width=width,
        x=x,
        y=y,
        foreground=foreground,
        background=background,
    )
    gx, gy = grid(h, w)
    ux, uy = unit(p["orientation"])
    half = p["length"] / 2
    d = segment_distance(
        gx, gy, p["x"] - half * ux, p["y"] - half * uy, p["x"] + half * ux, p["y"] + half * uy
    )
    return compose(stroke(d, p["width"]), gray(p["foreground"]), gray(p["background"]))


def edge(
    orientation: Scalar = 0.0,
    *,
    x: Scalar = 0.0,
    y: Scalar = 0.0,
    softness: Scalar = 1.0,
    foreground: Scalar = 1.0,
    background: Scalar = 0.0,
    size: Size = 32,
) -> torch.Tensor:
    """A straight luminance edge through ``(x, y)``; ``orientation`` points to the bright side.

    Period 360°: at 0° the right half is ``foreground`` and the left half ``background``, so
    the boundary itself is vertical. ``softness`` is the width of the ramp in pixels.
    """
    h, w = as_size(size)
    _, p = batch(
        orientation=orientation,
        x=x,
        y=y,
        softness=softness,
        foreground=foreground,
        background=background,
    )
    gx, gy = grid(h, w)
    ux, uy = unit(p["orientation"])
    signed = (gx - col(p["x"])) * col(ux) + (gy - col(p["y"])) * col(uy)
    return compose(halfplane(signed, p["softness"]), gray(p["foreground"]), gray(p["background"]))


def color_contrast(
    orientation: Scalar = 0.0,
    *,
    color_a: Color = (1.0, 0.0, 0.0),
    color_b: Color = (0.0, 1.0, 0.0),
    x: Scalar = 0.0,
    y: Scalar = 0.0,
    softness: Scalar = 1.0,
    size: Size = 32,
) -> torch.Tensor:
    """Colour A against colour B across a straight boundary through ``(x, y)``.

    ``orientation`` points from the boundary into the ``color_a`` side (period 360°), the same
    convention as :func:`edge`. Colours are RGB in [0, 1], shape ``[3]`` or ``[N, 3]``.
    """
    h, w = as_size(size)
    rows = max(_color_rows(color_a), _color_rows(color_b))
    # A dummy parameter of the colours' batch length lets colours set N too.
    n, p = batch(orientation=orientation, x=x, y=y, softness=softness, _rows=torch.zeros(rows))
    c = batch_colors(n, color_a=color_a, color_b=color_b)
    gx, gy = grid(h, w)
    ux, uy = unit(p["orientation"])
    signed = (gx - col(p["x"])) * col(ux) + (gy - col(p["y"])) * col(uy)
    return compose(halfplane(signed, p["softness"]), c["color_a"], c["color_b"])


def curve(
    orientation: Scalar = 0.0,
    *,
    radius: Scalar = 8.0,
    span: Scalar = 90.0,
    width: Scalar = 1.5,
    x: Scalar = 0.0,
    y: Scalar = 0.0,
    foreground: Scalar = 1.0,
    background: Scalar = 0.0,
    size: Size = 32,
) -> torch.Tensor:
    """An arc of a circle of ``radius`` pixels whose *convex side points to* ``orientation``.

    The arc's midpoint lies at ``(x, y)`` and the circle's centre at ``(x, y) - radius *
    u(orientation)``: at 0° the curve bulges to the right, like ")"; at 90° it bulges upwards,
    like "⌒". The arc subtends ``span`` degrees of the circle, symmetric about the midpoint,
    so its mass (centroid) sits on the concave side, displaced from ``(x, y)`` towards the
    circle's centre. Period 360°.
    """
    h, w = as_size(size)
    _, p = batch(
        orientation=orientation,
        radius=radius,
        span=span,
        width=width,
        x=x,
        y=y,
        foreground=foreground,
        background=background,
    )
    gx, gy = grid(h, w)
    ux, uy = unit(p["orientation"])
    r = p["radius"]
    cx, cy = col(p["x"] - r * ux), col(p["y"] - r * uy)
    dx, dy = gx - cx, gy - cy
    rho = torch.sqrt(dx * dx + dy * dy)
    # Angle of every pixel around the circle's centre, relative to the arc's midpoint angle,
    # in the same counter-clockwise-on-screen convention (hence the minus on dy).
    phi = torch.rad2deg(torch.atan2(-dy, dx)) - col(p["orientation"])
    phi = torch.remainder(phi + 180.0, 360.0) - 180.0
    on_arc = phi.abs() <= col(p["span"]) / 2
    e1x, e1y = unit(p["orientation"] + p["span"] / 2)
    e2x, e2y = unit(p["orientation"] - p["span"] / 2)
    d_end = torch.minimum(
        torch.hypot(gx - (cx + col(r * e1x)), gy - (cy + col(r * e1y))),
        torch.hypot(gx - (cx + col(r * e2x)), gy - (cy + col(r * e2y))),
    )
    d = torch.where(on_arc, (rho - col(r)).abs(), d_end)
    return compose(stroke(d, p["width"]), gray(p["foreground"]), gray(p["background"]))


def angle(
    orientation: Scalar = 0.0,
    *,
    opening: Scalar = 90.0,
    length: Scalar = 10.0,
    width: Scalar = 1.5,
    x: Scalar = 0.0,
    y: Scalar = 0.0,
    foreground: Scalar = 1.0,
    background: Scalar = 0.0,
    size: Size = 32,
) -> torch.Tensor:
    """Two straight arms meeting at a vertex ``(x, y)``; the vertex points to ``orientation``.

    Same convention as :func:`curve` (an angle is a sharp curve): the arms leave the vertex in
    directions ``orientation + 180° ± opening / 2``, each ``length`` pixels long, so at 0° the
    shape is ">" and at 90° it is "^". Period 360°.
    """
    h, w = as_size(size)
    _, p = batch(
        orientation=orientation,
        opening=opening,
        length=length,
        width=width,
        x=x,
        y=y,
        foreground=foreground,
        background=background,
    )
    gx, gy = grid(h, w)
    back = p["orientation"] + 180.0
    a1x, a1y = unit(back + p["opening"] / 2)
    a2x, a2y = unit(back - p["opening"] / 2)
    vx, vy, ln = p["x"], p["y"], p["length"]
    d = torch.minimum(
        segment_distance(gx, gy, vx, vy, vx + ln * a1x, vy + ln * a1y),
        segment_distance(gx, gy, vx, vy, vx + ln * a2x, vy + ln * a2y),
    )
    return compose(stroke(d, p["width"]), gray(p["foreground"]), gray(p["background"]))


def circle(
    radius: Scalar = 6.0,
    *,
    width: Scalar = 1.5,
    x: Scalar = 0.0,
    y: Scalar = 0.0,
    foreground: Scalar = 1.0,
    background: Scalar = 0.0,
    size: Size = 32,
) -> torch.Tensor:
    """A ring of ``radius`` pixels (to the stroke's centreline) centred at ``(x, y)``."""
    h, w = as_size(size)
    _, p = batch(radius=radius, width=width, x=x, y=y, foreground=foreground, background=background)
    gx, gy = grid(h, w)
    d = (torch.hypot(gx - col(p["x"]), gy - col(p["y"])) - col(p["radius"])).abs()
    return compose(stroke(d, p["width"]), gray(p["foreground"]), gray(p["background"]))


def high_low(
    orientation: Scalar = 0.0,
    *,
    frequency: Scalar = 0.05,
    ratio: Scalar = 4.0,
    contrast: Scalar = 1.0,
    phase: Scalar = 0.0,
    x: Scalar = 0.0,
    y: Scalar = 0.0,
    softness: Scalar = 1.0,
    size: Size = 32,
) -> torch.Tensor:
    """A high-low frequency patch: fine grating on one side of a boundary, coarse on the other.

    ``orientation`` points from the boundary (through ``(x, y)``) into the *high*-frequency
    side, period 360°: at 0° the right half is fine and the left half coarse. Both sides are
    sinusoidal gratings of mean 0.5 whose stripes run perpendicular to the boundary (the wave
    vector is along the boundary), so the boundary is marked only by the change of frequency,
    not by a luminance step. ``frequency`` is the low side's spatial frequency in cycles per
    pixel, the high side's is ``frequency * ratio``; it must stay below the Nyquist limit
    (0.5 cycles/pixel). ``phase`` in degrees shifts both gratings.
    """
    h, w = as_size(size)
    _, p = batch(
        orientation=orientation,
        frequency=frequency,
        ratio=ratio,
        contrast=contrast,
        phase=phase,
        x=x,
        y=y,
        softness=softness,
    )
    f_high = p["frequency"] * p["ratio"]
    if bool((f_high > 0.5).any()) or bool((p["frequency"] <= 0).any()):
        raise ValueError(
            "high_low frequencies must satisfy 0 < frequency and frequency * ratio <= 0.5 "
            f"cycles/pixel (got up to {float(f_high.max()):.3g})"
        )
    gx, gy = grid(h, w)
    ux, uy = unit(p["orientation"])
    rx, ry = gx - col(p["x"]), gy - col(p["y"])
    signed = rx * col(ux) + ry * col(uy)
    tx, ty = unit(p["orientation"] + 90.0)
    along = rx * col(tx) + ry * col(ty)
    ph = torch.deg2rad(col(p["phase"]))
    two_pi = 2 * torch.pi
    low = torch.cos(two_pi * col(p["frequency"]) * along + ph)
    high = torch.cos(two_pi * col(f_high) * along + ph)
    m = halfplane(signed, p["softness"])
    value = 0.5 + 0.5 * col(p["contrast"]) * (m * high + (1 - m) * low)
    return value.clamp(0.0, 1.0).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
