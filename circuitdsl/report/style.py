"""Colours, glyphs and small text helpers shared by the DOT and HTML renderers.

Both renderers must agree on what red means, so the colour scale lives here once.
The Distill Circuits articles draw positive weights in red/orange and negative ones
in blue on a white midpoint; we use the two ends of ColorBrewer's RdBu scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from circuitdsl.language.ir import Claim, Feature

# Saturated ends of the symmetric weight scale (ColorBrewer RdBu, 11-class ends).
POS_RGB = (202, 0, 32)  # #ca0020: the strongest excitatory weight
NEG_RGB = (5, 113, 176)  # #0571b0: the strongest inhibitory weight
MID_RGB = (255, 255, 255)
POS_HEX = "#ca0020"
NEG_HEX = "#0571b0"

# Edge colours by claimed sign (slightly lighter than the kernel ends, so a thick
# edge does not compete with the heatmaps).
EXCITE_COLOR = "#e6550d"
INHIBIT_COLOR = "#3182bd"
NEUTRAL_COLOR = "#8c8c8c"

STATUS_COLOR = {"pass": "#1a7f37", "fail": "#c00020", "error": "#9a6700"}
STATUS_GLYPH = {"pass": "✓", "fail": "✗", "error": "!"}

EXCITES = "excites"
INHIBITS = "inhibits"


def weight_rgb(value: float, scale: float) -> tuple[int, int, int]:
    """The colour of `value` on a symmetric red-white-blue scale saturating at `scale`."""
    if scale <= 0 or not math.isfinite(value):
        return MID_RGB
    t = max(-1.0, min(1.0, value / scale))
    end = POS_RGB if t >= 0 else NEG_RGB
    a = abs(t)
    # Round half away from zero explicitly so golden files never depend on
    # banker's rounding quirks.
    r, g, b = (int(m + (e - m) * a + 0.5) for m, e in zip(MID_RGB, end, strict=True))
    return (r, g, b)


def weight_hex(value: float, scale: float) -> str:
    """`weight_rgb` as `#rrggbb`."""
    r, g, b = weight_rgb(value, scale)
    return f"#{r:02x}{g:02x}{b:02x}"


def kernel_scale(kernels: Iterable[Sequence[Sequence[float]]]) -> float:
    """The largest absolute finite weight over `kernels` (0.0 if there is none)."""
    best = 0.0
    for kernel in kernels:
        for row in kernel:
            for v in row:
                if math.isfinite(v):
                    best = max(best, abs(v))
    return best


def claim_sign(claim: Claim) -> str | None:
    """`"excites"`, `"inhibits"` or None (a claim about something other than a sign)."""
    return claim.payload.drawn_sign


def claim_phrase(claim: Claim) -> str:
    """The part of a claim's text after `a -> b :`, which is what an edge label needs."""
    text = " ".join(claim.text.split())
    if " : " in text:
        return text.split(" : ", 1)[1]
    return text


def format_param(value: float | str, ptype: str) -> str:
    """A family parameter as a reader expects it: `243°`, `1.5`, `left`."""
    if ptype == "angle" and isinstance(value, (int, float)):
        return f"{value:g}°"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def feature_params(feature: Feature) -> str:
    """All of a feature's parameter values, comma-separated."""
    return ", ".join(format_param(p.value, p.type) for p in feature.params)


def format_number(value: float) -> str:
    """Three significant digits, the precision a diagram or table can carry."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"
