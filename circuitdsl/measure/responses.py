"""Stimulus responses of features: the plan of images, the read point, sweeps.

The measuring half of activation claims and behaviour selectors
(`circuitdsl.check.activation`, `circuitdsl.measure.select`): every claim first *plans*
the images it needs through a `Source` (rendered once, deduplicated across claims), the
model runs once on all of them, then the same `Source` calls return the features'
centre responses. `read_node` says where a layer is read: after its nonlinearity unless
asked otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from circuitdsl.language.diagnostics import Unmeasurable
from circuitdsl.measure.stimuli import STIMULI, check_params, get_stimulus
from circuitdsl.measure.stimuli.registry import draw
from circuitdsl.models.geometry import Canvas

REFERENCE_STIMULI = ("line", "edge", "curve", "angle")
REFERENCE_STEPS = 24  # orientations per reference family
# strokes of `invariant to colour|brightness` (Source.variants)
COLOURS = (
    (1.0, 1.0, 1.0),
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
    (0.0, 1.0, 1.0),
    (1.0, 0.0, 1.0),
)
BRIGHTNESS = (0.4, 0.55, 0.7, 0.85, 1.0)


@dataclass
class Plan:
    """Every image some claim needs, drawn once: (canvas, key) -> a row.

    Each node read has its own canvas (`circuitdsl.models.probe.canvas_for`: the smallest
    one holding its centre unit's receptive field); nodes with the same canvas share
    images. Nothing is drawn while planning: `run` draws only the images no earlier run
    of the model has pushed (`circuitdsl.models.probe.Runner.responses`). Rows are
    numbered across canvases; a node's activations on rows of other canvases are NaN.
    """

    canvas_of: Callable[[str], Canvas]
    index: dict[tuple[Canvas, tuple[Any, ...]], int] = field(default_factory=dict)
    draws: list[tuple[Canvas, tuple[Any, ...], Callable[[], torch.Tensor], int]] = field(
        default_factory=list
    )
    nodes: dict[Canvas, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, adapter: Any) -> Plan:
        """The plan for `adapter`: each node on its receptive-field canvas."""
        from circuitdsl.models.probe import canvas_for

        return cls(lambda node: canvas_for(adapter, node))

    @property
    def count(self) -> int:
        """How many distinct images the plan holds."""
        return len(self.draws)

    def add(
        self, cv: Canvas, keys: Sequence[tuple[Any, ...]], render: Callable[[], torch.Tensor]
    ) -> list[int]:
        """Rows of `keys` on `cv` (drawn together by `render()`, in order, when needed)."""
        rows = []
        for i, k in enumerate(keys):
            row = self.index.get((cv, k))
            if row is None:
                row = self.index[(cv, k)] = len(self.draws)
                self.draws.append((cv, k, render, i))
            rows.append(row)
        return rows

    def draw(self, rows: Sequence[int]) -> torch.Tensor:
        """The images of `rows` (one canvas), each render call made once."""
        drawn: dict[int, torch.Tensor] = {}
        out = []
        for r in rows:
            _, _, render, i = self.draws[r]
            if id(render) not in drawn:
                drawn[id(render)] = render()
            out.append(drawn[id(render)][i])
        return torch.stack(out)

    def run(self, runner: Any, rows: Iterable[int] | None = None) -> dict[str, torch.Tensor]:
        """``{node: [count, C]}``: centre activations of the planned images (`rows`: only
        these) at every node that reads their canvas; NaN elsewhere."""
        from circuitdsl.measure.stimuli.registry import version

        wanted = None if rows is None else set(rows)
        by_canvas: dict[Canvas, list[int]] = {}
        for r, (cv, _, _, _) in enumerate(self.draws):
            if wanted is None or r in wanted:
                by_canvas.setdefault(cv, []).append(r)
        out: dict[str, torch.Tensor] = {}
        for cv, cv_rows in by_canvas.items():
            nodes = sorted(self.nodes.get(cv, ()))
            if not nodes:
                continue
            keys = [self.draws[r][1] for r in cv_rows]
            row_of = dict(zip(keys, cv_rows, strict=True))
            acts = runner.responses(
                cv,
                nodes,
                keys,
                lambda ks, row_of=row_of: self.draw([row_of[k] for k in ks]),
                salt=version(),
            )
            for n in nodes:
                v = acts[n]
                t = out.setdefault(n, torch.full((self.count, v.shape[1]), float("nan")))
                t[torch.tensor(cv_rows)] = v
        return out


def read_node(adapter: Any, layer: str, *, pre: bool = False) -> tuple[str, str]:
    """The fx node an activation claim reads for `layer`, and a note saying which.

    By default a unit is read as the next layer sees it, after its nonlinearity. The
    adapter names a layer by the node that computes it (a conv, its folded BatchNorm, a
    ReLU module, a concatenation); when that node's only consumer is an elementwise
    nonlinearity (kind "relu": ReLU, ReLU6, LeakyReLU, GELU, SiLU, ELU), the consumer's
    output is read: the curvenet and torchvision conv's ReLU module, InceptionV1's relu
    after each `_pre_relu` conv. A ReLU layer, or a concatenation of ReLUs
    (InceptionV1's `mixed3b`), is already rectified and read as it is. Reading the
    consumer node (rather than applying relu to the conv's output) is exact for every
    such nonlinearity and for what the next layer receives; it equals relu(conv) when
    the ReLU follows directly. Where no nonlinearity follows directly (a residual sum,
    a pool, the logits), the node is read as computed and the note says so.

    With `pre`, the unit before its nonlinearity: a ReLU layer fed by a conv (or folded
    BatchNorm) used only by it is read at that input.
    """
    graph = adapter.graph
    node = adapter.node(layer)
    info = graph.nodes[node]
    if pre:
        if info.kind == "relu" and len(info.op.inputs) == 1:
            src = info.op.inputs[0]
            if src in graph.nodes and graph.nodes[src].users == [node]:
                return src, f"before the nonlinearity ({_layer_name(graph, src)})"
        if info.kind == "concat":
            raise Unmeasurable(
                f"`{layer}` concatenates rectified branches; to read before the ReLU, name"
                " the branch's pre-ReLU layer"
            )
        return node, "before the nonlinearity"
    if info.kind == "relu":
        return node, "after the nonlinearity"
    if info.kind == "concat" and all(
        graph.nodes[i].kind == "relu" for i in info.op.inputs if i in graph.nodes
    ):
        return node, "after the nonlinearity (a concatenation of rectified branches)"
    if len(info.users) == 1 and graph.nodes[info.users[0]].kind == "relu":
        user = info.users[0]
        return user, f"after the nonlinearity ({_layer_name(graph, user)})"
    return node, "as computed (no nonlinearity follows it directly)"


def pre_units(adapter: Any) -> Callable[[str, Sequence[int]], list[tuple[str, int]]]:
    """(layer, channels) -> (node, channel) of each channel before its nonlinearity.

    A concatenation of rectified branches (InceptionV1's `mixed3b`) has no pre-ReLU node
    of its own: each channel is read in its branch (`branch_of`), before the branch's ReLU.
    """

    def units(layer: str, channels: Sequence[int]) -> list[tuple[str, int]]:
        if adapter.graph.nodes[adapter.node(layer)].kind != "concat":
            node = read_node(adapter, layer, pre=True)[0]
            return [(node, c) for c in channels]
        out = []
        for c in channels:
            branch = adapter.branch_of(layer, c)
            if branch is None:
                raise Unmeasurable(f"channel {c} of `{layer}` comes from no branch")
            out.append((read_node(adapter, branch[0], pre=True)[0], branch[1]))
        return out

    return units


def _layer_name(graph: Any, node: str) -> str:
    """The first layer name (in network order) of an fx node, else the node's own name."""
    return next((n for n in graph.layer_names() if graph.layer_node[n] == node), node)


def reader(adapter: Any) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """(post, pre) layer -> node maps for a `Source` over `adapter`."""
    return (
        lambda layer: read_node(adapter, layer)[0],
        lambda layer: read_node(adapter, layer, pre=True)[0],
    )


def _freeze(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return float(v) if isinstance(v, (int, float)) else v


def _key(name: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """The canonical key of one image: every parameter (defaults filled in), sorted, so
    that one image asked for in two ways (a sweep value and a stated stimulus; a
    parameter left at its default and one stated) is drawn and pushed once."""
    full = {**get_stimulus(name).defaults(), **params}
    return tuple(sorted((k, _freeze(v)) for k, v in full.items()))


def _stim_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    try:
        check_params(get_stimulus(name).spec, args)
    except (KeyError, ValueError) as exc:
        raise Unmeasurable(str(exc).strip("'\"")) from None
    return dict(args)


class Source:
    """Planned images plus (after the run) centre activations: responses of features.

    While `centres` is None the source is *planning*: it renders and records images and
    returns zeros. Afterwards the same calls return the features' responses.
    """

    def __init__(
        self,
        plan: Plan,
        layer_node: Callable[[str], str],
        pre_node: Callable[[str], str] | None = None,
    ) -> None:
        self.plan = plan
        self.layer_node = layer_node  # layer -> the fx node read by default (post)
        self.pre_node = pre_node or layer_node  # layer -> the node before its nonlinearity
        # (layer, channels) -> (node, channel) per channel before the nonlinearity, where
        # channels of one layer come from different nodes (a concatenation's branches)
        self.pre_units: Callable[[str, Sequence[int]], list[tuple[str, int]]] | None = None
        self.pre = False  # read before the nonlinearity (`expect f pre ...`)
        self.notes: Callable[[str, bool], str] | None = None  # (layer, pre) -> how it is read
        self.centres: dict[str, torch.Tensor] | None = None
        self.nodes: set[str] = set()
        self.rows: set[int] = set()
        self.log: list[list[int]] = []  # the rows of every request, in order

    def view(self, centres: dict[str, torch.Tensor]) -> Source:
        """The same plan read through other centre activations (e.g. an edited model)."""
        other = Source(self.plan, self.layer_node, self.pre_node)
        other.centres = centres
        other.pre, other.notes, other.pre_units = self.pre, self.notes, self.pre_units
        return other

    def reading(self, pre: bool) -> Source:
        """The same plan and activations, read before (`pre`) or after the nonlinearity.

        Shares the bookkeeping (`nodes`, `rows`, `log`), so what a claim plans through
        either reading is run and recorded.
        """
        other = Source(self.plan, self.layer_node, self.pre_node)
        other.centres, other.nodes, other.rows, other.log = (
            self.centres,
            self.nodes,
            self.rows,
            self.log,
        )
        other.pre, other.notes, other.pre_units = pre, self.notes, self.pre_units
        return other

    def note(self, layer: str) -> str:
        """How `layer` is read by this source ("after the nonlinearity (relu3)", ...)."""
        return self.notes(layer, self.pre) if self.notes is not None else ""

    def _resp(
        self,
        feature: Any,
        keys: Sequence[tuple[Any, ...]],
        render_on: Callable[[Canvas], torch.Tensor],
    ) -> torch.Tensor:
        if self.pre and self.pre_units is not None:
            units = self.pre_units(feature.layer, feature.channels)
        else:
            node = (self.pre_node if self.pre else self.layer_node)(feature.layer)
            units = [(node, c) for c in feature.channels]
        # each node reads the images drawn on its own canvas
        rows_of: dict[str, list[int]] = {}
        for n in dict.fromkeys(n for n, _ in units):
            cv = self.plan.canvas_of(n)
            rows_of[n] = self.plan.add(cv, keys, functools.partial(render_on, cv))
            self.plan.nodes.setdefault(cv, set()).add(n)
            self.rows.update(rows_of[n])
        self.nodes.update(rows_of)
        rows = rows_of[units[0][0]] if units else []
        self.log.append(rows)
        if self.centres is None:
            return torch.zeros(len(keys))
        if len(rows_of) == 1:
            c = self.centres[units[0][0]][rows][:, [i for _, i in units]]
        else:
            c = torch.stack([self.centres[n][rows_of[n]][:, i] for n, i in units], dim=1)
        coef = torch.tensor(feature.coefficients, dtype=c.dtype)
        return c @ coef

    def sweep(
        self,
        feature: Any,
        name: str,
        args: Mapping[str, Any],
        param: str,
        values: Sequence[float],
    ) -> torch.Tensor:
        """Responses to `name(**args)` with `param` set to each of `values`."""
        fixed = {k: v for k, v in _stim_args(name, args).items() if k != param}
        keys = [(name, _key(name, {**fixed, param: float(v)}), None) for v in values]
        vals = torch.tensor([float(v) for v in values])
        return self._resp(feature, keys, lambda cv: draw(name, cv, **fixed, **{param: vals}))

    def one(self, feature: Any, name: str, args: Mapping[str, Any]) -> torch.Tensor:
        """The response to one stimulus (a tensor of one value)."""
        full = _stim_args(name, args)
        key = (name, _key(name, full), None)
        return self._resp(feature, [key], lambda cv: draw(name, cv, **full))

    def variants(
        self, feature: Any, name: str, args: Mapping[str, Any], aspect: str
    ) -> torch.Tensor:
        """Responses to colour or brightness variants of one stimulus."""
        full = _stim_args(name, args)
        spec = get_stimulus(name)
        if "foreground" not in spec.param_names:
            raise Unmeasurable(
                f"stimulus `{name}` has no foreground stroke; colour and brightness variants"
                " are defined for line, edge, curve, angle and circle"
            )
        bg = float(full.get("background", 0.0))
        if aspect == "colour":
            fgs = [torch.tensor(c) for c in COLOURS]
        else:
            fgs = [torch.tensor((b, b, b)) for b in BRIGHTNESS]
        base = _key(name, full)
        keys = [(name, base, (aspect, tuple(fg.tolist()))) for fg in fgs]

        def render(cv: Canvas) -> torch.Tensor:
            shape = {k: v for k, v in full.items() if k not in ("foreground", "background")}
            mask = draw(name, cv, **shape, foreground=1.0, background=0.0)[:, :1]
            fg = torch.stack(fgs)[:, :, None, None]
            return mask * fg + (1 - mask) * bg

        return self._resp(feature, keys, render)


# ---- sweeps and the reference set ----------------------------------------------------------


def _period(name: str, param: str) -> float | None:
    spec = get_stimulus(name)
    if param == "orientation" and "orientation" in spec.param_names:
        period: float | None = spec.orientation_period
        return period
    return None


def _orientations(period: float, step: float) -> list[float]:
    n = max(round(period / step), 1)
    return [period * k / n for k in range(n)]


def _circ_dist(a: float, b: float, period: float) -> float:
    d = (a - b) % period
    return min(d, period - d)


def _reference(src: Source, feature: Any, name: str, args: Mapping[str, Any]) -> torch.Tensor:
    parts = []
    spec = get_stimulus(name)
    if spec.sweep in spec.param_names:
        period = _period(name, spec.sweep)
        if period is not None:
            values = _orientations(period, period / REFERENCE_STEPS)
        else:
            default = float(spec.defaults()[spec.sweep])
            values = [default * (0.25 + 1.75 * k / (REFERENCE_STEPS - 1)) for k in range(24)]
        parts.append(src.sweep(feature, name, args, spec.sweep, values))
    for ref in REFERENCE_STIMULI:
        period = STIMULI[ref].orientation_period or 360.0
        values = _orientations(period, period / REFERENCE_STEPS)
        parts.append(src.sweep(feature, ref, {}, "orientation", values))
    return torch.cat(parts)
