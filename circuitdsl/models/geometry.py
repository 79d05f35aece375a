"""Receptive fields, strides and paddings of every layer, and the canvas stimuli are drawn on.

Per spatial dimension, the output position ``Y`` of a node reads the input pixels
``stride * Y + lo ... stride * Y + hi`` (the conv arithmetic of every conv, pool and pad
on the way from the image, composed; `circuitdsl.models.weights._rf_step`). So

* the receptive field is ``hi - lo + 1`` pixels wide,
* the *padding* ``-lo`` is how far unit 0's field reaches past the image border, and
* unit ``Y`` looks at pixel ``stride * Y + (lo + hi) / 2``.

**The centre unit** of a layer (the one definition every measurement uses: activation
claims, behaviour selectors, `circ tune`) is unit ``(h // 2, w // 2)`` of the layer's map
at the model's input size; stimuli are anchored on *its* receptive-field centre. On an
odd-sized map of a "same"-padded network that is the image centre; on an even-sized map it
lies ``stride / 2`` pixels right of and below it.

**The canvas**: a unit's value depends only on the pixels of its receptive field, and when
the whole field lies inside the image no unit it depends on reads padding (a position
outside a map reaches past the image border). So the centre unit's value on a full-size
image equals that of the equivalent unit on the smallest canvas that holds the field,
with the stimulus drawn at the same place relative to the field (`canvas`). Layers
behind a global operation (a linear layer, a flatten, an adaptive pool) see the whole
image and keep the full size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuitdsl.models.traced import TracedGraph


@dataclass(frozen=True)
class Geometry:
    """Stride and reach (per dimension: rows, columns) of one node relative to the image."""

    stride: tuple[int, int]
    lo: tuple[int, int]
    hi: tuple[int, int]

    @property
    def field(self) -> tuple[int, int]:
        """Receptive-field size in pixels (height, width)."""
        return (self.hi[0] - self.lo[0] + 1, self.hi[1] - self.lo[1] + 1)

    @property
    def padding(self) -> tuple[int, int]:
        """How far unit 0's field reaches before the image's first row/column."""
        return (-self.lo[0], -self.lo[1])

    def centre(self, dim: int, unit: int) -> float:
        """Pixel (index coordinates) at the centre of unit `unit`'s field along `dim`."""
        return self.stride[dim] * unit + (self.lo[dim] + self.hi[dim]) / 2


@dataclass(frozen=True)
class Canvas:
    """Where stimuli are drawn: image `size` (H, W) and the `anchor` (x, y) in pixels from
    the image centre (x right, y down) at which a stimulus's own origin is placed."""

    size: tuple[int, int]
    anchor: tuple[float, float]

    def key(self) -> str:
        """A stable text form (cache keys)."""
        return f"{self.size[0]}x{self.size[1]}@{self.anchor[0]:g},{self.anchor[1]:g}"


def geometries(graph: TracedGraph) -> dict[str, Geometry | None]:
    """The `Geometry` of every node of `graph` (None: behind a global op, or not spatial).

    Computed once per graph and kept on it.
    """
    cached = getattr(graph, "_geometries", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    from circuitdsl.models.weights import _rf_step

    rfs: dict[str, Any] = {}
    for n in graph.order:
        op = graph.nodes[n].op
        shape = graph.nodes[n].shape
        if op.kind == "input":
            rfs[n] = ((1, 0, 0), (1, 0, 0))
            continue
        found = [rfs.get(i) for i in op.inputs if i in graph.nodes]
        ins = [r for r in found if r is not None]
        if op.kind == "opaque" or not ins or len(ins) != len(found):
            rfs[n] = None
        elif op.kind in ("cat", "add"):
            if len({(r[0][0], r[1][0]) for r in ins}) != 1:
                rfs[n] = None  # paths of different strides: no one field per unit
            else:
                rfs[n] = tuple(
                    (ins[0][d][0], min(r[d][1] for r in ins), max(r[d][2] for r in ins))
                    for d in range(2)
                )
        else:
            rfs[n] = _rf_step(ins[0], op)
        if shape is None or len(shape) != 4:
            rfs[n] = None  # not a spatial map (flattened, a linear layer's output)
    out: dict[str, Geometry | None] = {}
    for n, r in rfs.items():
        out[n] = (
            None
            if r is None
            else Geometry((r[0][0], r[1][0]), (r[0][1], r[1][1]), (r[0][2], r[1][2]))
        )
    graph._geometries = out  # type: ignore[attr-defined]
    return out


def input_hw(graph: TracedGraph) -> tuple[int, int]:
    """(height, width) of the images the graph was traced with (the model's input size)."""
    for info in graph.nodes.values():
        if info.op.kind == "input" and info.shape is not None and len(info.shape) == 4:
            return int(info.shape[2]), int(info.shape[3])
    return 224, 224


def full_canvas(graph: TracedGraph, node: str) -> Canvas:
    """The model's own input size, anchored on the centre unit's field (the reference)."""
    size = input_hw(graph)
    geom = geometries(graph).get(node)
    shape = graph.nodes[node].shape
    if geom is None or shape is None or len(shape) != 4:
        return Canvas(size, (0.0, 0.0))
    h, w = int(shape[2]), int(shape[3])
    ay = geom.centre(0, h // 2) - (size[0] - 1) / 2
    ax = geom.centre(1, w // 2) - (size[1] - 1) / 2
    return Canvas(size, (ax, ay))


def canvas(graph: TracedGraph, node: str, *, margin: int = 0) -> Canvas:
    """The smallest canvas that holds the centre unit's receptive field plus `margin`
    pixels on each side (the full canvas when that is not smaller)."""
    full = full_canvas(graph, node)
    geom = geometries(graph).get(node)
    if geom is None:
        return full
    size: list[int] = []
    centre: list[float] = []
    for d in range(2):
        s, lo, hi = geom.stride[d], geom.lo[d], geom.hi[d]
        unit = max(math.ceil((margin - lo) / s), 0)  # the first unit whose field fits
        size.append(s * unit + hi + 1 + margin)
        centre.append(geom.centre(d, unit))
    if size[0] >= full.size[0] and size[1] >= full.size[1]:
        return full
    if size[0] >= full.size[0] or size[1] >= full.size[1]:
        return full  # one side cannot shrink: keep the reference geometry whole
    ay = centre[0] - (size[0] - 1) / 2
    ax = centre[1] - (size[1] - 1) / 2
    return Canvas((size[0], size[1]), (ax, ay))


def unit_at(graph: TracedGraph | None, node: str, cv: Canvas | None) -> tuple[int, int] | None:
    """The (row, column) of `node`'s map that is the centre unit on canvas `cv`.

    Without geometry (a bare graph module, or a node behind a global op) it is the map's
    own ``(h // 2, w // 2)``; None asks for exactly that.
    """
    if graph is None or cv is None or node not in graph.nodes:
        return None
    geom = geometries(graph).get(node)
    if geom is None:
        return None
    out = []
    for d, a in ((0, cv.anchor[1]), (1, cv.anchor[0])):
        pixel = (cv.size[d] - 1) / 2 + a
        unit = (pixel - (geom.lo[d] + geom.hi[d]) / 2) / geom.stride[d]
        out.append(round(unit))
    return out[0], out[1]


def describe(graph: TracedGraph, node: str) -> tuple[int, int, int] | None:
    """(receptive field, stride, padding) along rows for `circ layers` (None: global)."""
    geom = geometries(graph).get(node)
    if geom is None:
        return None
    return geom.field[0], geom.stride[0], geom.padding[0]
