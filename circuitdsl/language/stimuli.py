"""The stimulus catalogue: the names `.circ` specs use, e.g. ``curve(orientation=45deg, radius=8)``.

Each :class:`StimulusSpec` describes a stimulus and its parameters (default, unit, meaning)
so that a spec's arguments can be validated with a precise message before any image is
drawn, and so that documentation and previews are generated from one table. This is part
of the language and never imports torch; the generators that draw each stimulus (same
name) live in `circuitdsl.measure.stimuli`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from circuitdsl.language.diagnostics import BadArgument, did_you_mean


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of a stimulus: name, default, unit (``deg``, ``px``, ...) and meaning."""

    name: str
    default: Any
    unit: str
    doc: str


@dataclass(frozen=True, slots=True)
class StimulusSpec:
    """A named stimulus: its parameters and the period of its orientation.

    ``orientation_period`` is 360 for stimuli whose orientation has a direction (curves,
    edges) and 180 for those symmetric under a half turn (lines); ``None`` for stimuli
    without an orientation (circles). ``sweep`` is the parameter a tuning sweep varies.
    ``normal`` is the angle, relative to the orientation, of the direction across the
    stimulus at its anchor (90° for a line, 0° for a curve, edge or angle, whose orientation
    already points across): tuning measurements shift the anchor along it to find a unit's
    best position.
    """

    name: str
    params: tuple[ParamSpec, ...]
    doc: str
    sweep: str = "orientation"
    orientation_period: float | None = 360.0
    normal: float = 0.0

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names, in declaration order."""
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict[str, Any]:
        """The default value of every parameter."""
        return {p.name: p.default for p in self.params}


def _p(name: str, default: Any, unit: str, doc: str) -> ParamSpec:
    return ParamSpec(name, default, unit, doc)


_POS = (
    _p("x", 0.0, "px", "horizontal offset of the anchor from the image centre, right positive"),
    _p("y", 0.0, "px", "vertical offset of the anchor from the image centre, down positive"),
)
_INK = (
    _p("foreground", 1.0, "1", "grey level of the stroke (for an edge: the bright side)"),
    _p("background", 0.0, "1", "grey level of the background (for an edge: the dark side)"),
)

CATALOGUE: dict[str, StimulusSpec] = {
    s.name: s
    for s in (
        StimulusSpec(
            "line",
            (
                _p("orientation", 0.0, "deg", "direction of the segment (period 180)"),
                _p("length", 12.0, "px", "length of the segment"),
                _p("width", 1.5, "px", "stroke width"),
                *_POS,
                *_INK,
            ),
            "straight segment centred at (x, y)",
            orientation_period=180.0,
            normal=90.0,
        ),
        StimulusSpec(
            "edge",
            (
                _p("orientation", 0.0, "deg", "direction from the boundary to the bright side"),
                *_POS,
                _p("softness", 1.0, "px", "width of the luminance ramp"),
                *_INK,
            ),
            "luminance step across a straight boundary through (x, y)",
        ),
        StimulusSpec(
            "color_contrast",
            (
                _p("orientation", 0.0, "deg", "direction from the boundary to colour A"),
                _p("color_a", (1.0, 0.0, 0.0), "rgb", "colour on the side orientation points to"),
                _p("color_b", (0.0, 1.0, 0.0), "rgb", "colour on the other side"),
                *_POS,
                _p("softness", 1.0, "px", "width of the colour ramp"),
            ),
            "colour A against colour B across a straight boundary",
        ),
        StimulusSpec(
            "curve",
            (
                _p("orientation", 0.0, "deg", "direction the convex side points"),
                _p("radius", 8.0, "px", "radius of the circle the arc belongs to"),
                _p("span", 90.0, "deg", "angle the arc subtends at its centre"),
                _p("width", 1.5, "px", "stroke width"),
                *_POS,
                *_INK,
            ),
            "arc of a circle with its midpoint at (x, y)",
        ),
        StimulusSpec(
            "angle",
            (
                _p("orientation", 0.0, "deg", "direction the vertex points"),
                _p("opening", 90.0, "deg", "angle between the two arms"),
                _p("length", 10.0, "px", "length of each arm"),
                _p("width", 1.5, "px", "stroke width"),
                *_POS,
                *_INK,
            ),
            "two arms meeting at a vertex at (x, y)",
        ),
        StimulusSpec(
            "circle",
            (
                _p("radius", 6.0, "px", "radius to the stroke's centreline"),
                _p("width", 1.5, "px", "stroke width"),
                *_POS,
                *_INK,
            ),
            "ring centred at (x, y)",
            sweep="radius",
            orientation_period=None,
        ),
        StimulusSpec(
            "high_low",
            (
                _p(
                    "orientation",
                    0.0,
                    "deg",
                    "direction from the boundary to the high-frequency side",
                ),
                _p("frequency", 0.05, "cycles/px", "spatial frequency of the low side"),
                _p("ratio", 4.0, "1", "high frequency / low frequency"),
                _p("contrast", 1.0, "1", "Michelson contrast of both gratings"),
                _p("phase", 0.0, "deg", "phase of both gratings at the boundary point"),
                *_POS,
                _p("softness", 1.0, "px", "width of the blend between the two sides"),
            ),
            "fine grating on one side of a boundary, coarse on the other",
        ),
    )
}


def check_params(spec: StimulusSpec, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for a parameter the stimulus does not have, with a suggestion."""
    for name in params:
        if name not in spec.param_names:
            hint = did_you_mean(name, spec.param_names)
            raise BadArgument(
                f"stimulus {spec.name!r} has no parameter {name!r}"
                + (f"; {hint}" if hint else "")
                + f" (parameters: {', '.join(spec.param_names)})"
            )
