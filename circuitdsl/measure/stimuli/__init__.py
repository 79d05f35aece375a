"""Synthetic stimuli for measuring features: lines, edges, curves, angles, circles, high-low
frequency patches and colour contrasts, rendered as batched ``[N, 3, H, W]`` tensors in [0, 1].

Conventions (docs/stimuli.md): ``x`` right and ``y`` down in pixels from the image centre;
angles in degrees, 0° pointing right, positive counter-clockwise as displayed.
"""

from circuitdsl.language.stimuli import ParamSpec, StimulusSpec, check_params
from circuitdsl.measure.stimuli.generators import (
    angle,
    circle,
    color_contrast,
    curve,
    edge,
    high_low,
    line,
)
from circuitdsl.measure.stimuli.registry import STIMULI, Stimulus, get_stimulus, make_stimulus

__all__ = [
    "STIMULI",
    "ParamSpec",
    "Stimulus",
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
