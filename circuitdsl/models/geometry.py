"""Receptive fields, strides and paddings of every layer, and the canvas stimuli are drawn on.

Per spatial dimension, the output position ``Y`` of a node reads the input pixels
``stride * Y + lo ... stride * Y + hi`` (the conv arithmetic of every conv, pool and pad
on the way from the image, composed; `circuitdsl.models.weights._rf_step`). So

* the receptive field is ``hi - lo + 1`` pixels wide,
* the *padding* ``-lo`` is how far unit 0's field reaches past the image border, and
* unit ``Y`` looks at pixel ``stride * Y + (lo + hi) / 2``.

**The centre** of a layer (the one definition every measurement uses: activation claims,
behaviour selectors, `circ tune`) is the middle unit of the layer's map at the model's
input size along an odd side, and the mean of the middle two along an even side (an
even-sized map has no middle cell: the centre falls between four units, which are
averaged); stimuli are anchored at the centre of those units' receptive fields -- the
image centre for a "same"-padded network.

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
    span: tuple[int, int] = (1, 1)  # units averaged per side (rows, columns): 1 or 2

    def key(self) -> str:
        """A stable text form (cache keys)."""
        return (
            f"{self.size[0]}x{self.size[1]}@{self.anchor[0]:g},{self.anchor[1]:g}"
            f"/{self.span[0]}x{self.span[1]}"
        )


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


def _span(n: int) -> tuple[int, int]:
    """(first unit, count) of the centre of a side of `n` units: 1 when odd, 2 when even."""
    k = 2 - n % 2
    return (n - 1) // 2, k


def full_canvas(graph: TracedGraph, node: str) -> Canvas:
    """The model's own input size, anchored on the centre's receptive field (the reference)."""
    size = input_hw(graph)
    geom = geometries(graph).get(node)
    shape = graph.nodes[node].shape
    if geom is None or shape is None or len(shape) != 4:
        return Canvas(size, (0.0, 0.0))
    anchor, span = [], []
    for d in range(2):
        first, k = _span(int(shape[2 + d]))
        mid = (geom.centre(d, first) + geom.centre(d, first + k - 1)) / 2
        anchor.append(mid - (size[d] - 1) / 2)
        span.append(k)
    return Canvas(size, (anchor[1], anchor[0]), (span[0], span[1]))


def canvas(graph: TracedGraph, node: str, *, margin: int = 0) -> Canvas:
    """The smallest canvas that holds the centre's receptive field (of its one or two units
    per side) plus `margin` pixels on each side (the full canvas when that is not smaller)."""
    full = full_canvas(graph, node)
    geom = geometries(graph).get(node)
    if geom is None:
        return full
    size: list[int] = []
    mid: list[float] = []
    for d in range(2):
        s, lo, hi = geom.stride[d], geom.lo[d], geom.hi[d]
        k = full.span[d]
        first = max(math.ceil((margin - lo) / s), 0)  # the first unit whose field fits
        size.append(s * (first + k - 1) + hi + 1 + margin)
        mid.append((geom.centre(d, first) + geom.centre(d, first + k - 1)) / 2)
    if size[0] >= full.size[0] or size[1] >= full.size[1]:
        return full  # a side cannot shrink: keep the reference geometry whole
    ay = mid[0] - (size[0] - 1) / 2
    ax = mid[1] - (size[1] - 1) / 2
    return Canvas((size[0], size[1]), (ax, ay), full.span)


def unit_at(
    graph: TracedGraph | None, node: str, cv: Canvas | None
) -> tuple[int, int, int, int] | None:
    """(first row, first column, rows, columns) of the units of `node`'s map averaged as
    its centre on canvas `cv`.

    Without geometry (a bare graph module, or a node behind a global op) None: the map's
    own middle cells.
    """
    if graph is None or cv is None or node not in graph.nodes:
        return None
    geom = geometries(graph).get(node)
    if geom is None:
        return None
    out = []
    for d, a in ((0, cv.anchor[1]), (1, cv.anchor[0])):
        pixel = (cv.size[d] - 1) / 2 + a
        unit = (pixel - (geom.lo[d] + geom.hi[d]) / 2) / geom.stride[d] - (cv.span[d] - 1) / 2
        out.append(round(unit))
    return out[0], out[1], cv.span[0], cv.span[1]


def describe(graph: TracedGraph, node: str) -> tuple[int, int, int] | None:
    """(receptive field, stride, padding) along rows for `circ layers` (None: global)."""
    geom = geometries(graph).get(node)
    if geom is None:
        return None
    return geom.field[0], geom.stride[0], geom.padding[0]
