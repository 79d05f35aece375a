"""Synthetic stimuli for measuring features: lines, edges, curves, angles, circles, high-low
frequency patches and colour contrasts, rendered as batched ``[N, 3, H, W]`` tensors in [0, 1].

Conventions (docs/stimuli.md): ``x`` right and ``y`` down in pixels from the image centre;
angles in degrees, 0° pointing right, positive counter-clockwise as displayed.
"""

from circuitdsl.stimuli.generators import (
    angle,
    circle,
    color_contrast,
    curve,
    edge,
    high_low,
    line,
)
from circuitdsl.stimuli.registry import (
    STIMULI,
    ParamSpec,
    StimulusSpec,
    check_params,
    get_stimulus,
    make_stimulus,
)

__all__ = [
    "STIMULI",
    "ParamSpec",
    "StimulusSpec",
    "angle",
    "check_params",
    "circle",
    "color_contrast",
    "curve",
    "edge",
    "get_stimulus",
    "high_low",
    "line",
    "make_stimulus",
]
