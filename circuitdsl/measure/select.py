"""Features declared by behaviour, chosen on each model at bind time.

    feature f = top 1 of conv2 by curve(orientation = 45deg)
    family curve(orientation: angle) = top 4 of conv2 by curve(radius = 8) over orientation

Every unit is read as the next layer sees it, after its nonlinearity
(`circuitdsl.measure.responses.read_node`). Score of channel c (docs/claims.md, "Features
declared by behaviour") needs both a selective and a large response:

* ``a_c``: its response to the stimulus S (with ``over P``: the best over a sweep of P,
  36 steps over the orientation period or 24 values from 0.25x to 2x the default for
  other parameters; the member's P is where it occurs). High-low patches are averaged
  over 4 phases first.
* ``k_c``: its largest response to S's *control stimuli*, each at every orientation: for
  curves, lines of the arc's length and angles (60, 90, 120deg openings) with arms of half
  of it (the same ink); for high-low patches, uniform gratings at the low and at the high
  frequency (phase-averaged); for other stimuli, the mean response over the library
  reference (line, edge, curve, angle).
* ``selectivity = (a - k) / (a + k)`` (in [-1, 1] once rectified), ``response = a / max_c a``
  (the layer's strongest responder is 1), ``score = selectivity * response``.

A channel is eligible when its score is positive (a unit at or below zero, or one that
answers a control more than S, is never chosen). Without ``over``: the K eligible channels
with the highest scores (ties: lower channel first). With ``over P``: P's range is cut into
K equal bins (centred on multiples of period/K for an orientation) and each bin takes its
best eligible channel whose best P falls in it, so the family tiles P; an empty bin is
reported, and the family has fewer members.

`materialise(program, adapter)` rewrites every selector declaration into a plain one
(`feature f = conv2:16`, `family curve(...) in conv2 { 16: 185deg, ... }`) and the spec
is then resolved and compiled as usual, so quantified claims expand over the chosen
members of each model. The choices are reported as `Selection`s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Unmeasurable
from circuitdsl.language.loader import Program
from circuitdsl.language.syntax import ast
from circuitdsl.language.syntax.fmt import selector_text
from circuitdsl.measure.responses import (
    Plan,
    Source,
    _orientations,
    _period,
    _reference,
    read_node,
)
from circuitdsl.measure.stimuli import STIMULI, get_stimulus
from circuitdsl.models.base import ModelAdapter, unknown_layer
from circuitdsl.models.probe import runner_for

SELECT_STEPS = 36  # sweep values of `over orientation`
PHASES = (0.0, 90.0, 180.0, 270.0)  # high-low patches and gratings are averaged over these
ANGLE_OPENINGS = (60.0, 90.0, 120.0)  # corners a curve detector must prefer curves to


@dataclass(frozen=True)
class Selection:
    """Which channels a selector chose on one model, with their scores.

    Per member: `scores` (selectivity x response), `selectivity`, `response` (relative to
    the layer's strongest), `values` (the swept parameter's best value, with ``over``)
    and `bins` (the ``(lo, hi)`` of P the member was chosen for, with ``over``;
    `empty_bins` lists those no eligible unit fell in).
    """

    name: str
    selector: str
    layer: str
    channels: tuple[int, ...]
    scores: tuple[float, ...]
    values: tuple[float, ...] | None  # the swept parameter's best value per channel
    selectivity: tuple[float, ...] = ()
    response: tuple[float, ...] = ()
    bins: tuple[tuple[float, float], ...] | None = None
    empty_bins: tuple[tuple[float, float], ...] = ()
    over: str | None = None
    stimulus: str = ""
    stimulus_args: tuple[tuple[str, Any], ...] = ()
    grid: tuple[float, ...] = ()  # the values of P the selector swept
    read: str = ""  # how the layer was read
    bin_index: tuple[int, ...] = ()  # with ``over``: which of the K bins each member fills

    def text(self) -> str:
        """`curve = top 2 of conv2 by ...: conv2:16 (score 0.41 = selectivity 0.6 x ...)`."""
        parts = []
        for i, (c, sc) in enumerate(zip(self.channels, self.scores, strict=True)):
            at = f" at {self.values[i]:g}" if self.values is not None else ""
            b = f", bin {_bin_text(self.bins[i])}" if self.bins is not None else ""
            parts.append(
                f"{self.layer}:{c} (score {sc:.3g} = selectivity {self.selectivity[i]:.3g}"
                f" x response {self.response[i]:.3g}{at}{b})"
            )
        empty = (
            "; empty bins " + ", ".join(_bin_text(b) for b in self.empty_bins)
            if self.empty_bins
            else ""
        )
        return f"{self.name} = {self.selector}: " + ", ".join(parts) + empty

    def to_dicts(self) -> list[dict[str, Any]]:
        """One JSON entry per member: numbers, not text."""
        return [
            {
                "name": self.name,
                "selector": self.selector,
                # with `over`, the rank is the bin: rows of a universality table line up
                # by bin even where a model leaves a bin empty
                "rank": (self.bin_index[i] if self.bin_index else i) + 1,
                "unit": f"{self.layer}:{c}",
                "layer": self.layer,
                "channel": c,
                "score": self.scores[i],
                "selectivity": self.selectivity[i],
                "response": self.response[i],
                "value": self.values[i] if self.values is not None else None,
                "bin": list(self.bins[i]) if self.bins is not None else None,
            }
            for i, c in enumerate(self.channels)
        ]


def _bin_text(b: tuple[float, float]) -> str:
    return f"{b[0]:g}..{b[1]:g}"


def has_selectors(program: Program) -> bool:
    """Whether any file of the program declares a feature or family by behaviour."""
    return any(
        getattr(s, "select", None) is not None
        for m in program.modules.values()
        for s in m.statements
    )


class _AllChannels:
    """A stand-in feature whose planning registers images; responses are read per channel."""

    def __init__(self, layer: str, channels: int) -> None:
        self.layer = layer
        self.channels = tuple(range(channels))
        self.coefficients = tuple(0.0 for _ in range(channels))


def _sweep(name: str, param: str) -> list[float]:
    period = _period(name, param)
    if period is not None:
        return _orientations(period, period / SELECT_STEPS)
    default = float(get_stimulus(name).defaults()[param])
    return [default * (0.25 + 1.75 * k / 23) for k in range(24)]


def _full_sweep(name: str) -> list[float]:
    period = STIMULI[name].orientation_period or 360.0
    return _orientations(period, period / SELECT_STEPS)


def _phased(name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The argument sets a response is averaged over (4 phases for gratings)."""
    if name == "high_low" and "phase" not in args:
        return [{**args, "phase": p} for p in PHASES]
    return [args]


def _controls(name: str, args: dict[str, Any]) -> list[list[tuple[str, dict[str, Any]]]] | None:
    """Control stimuli for S, each a list of argument sets to average (None: generic)."""
    full = {**get_stimulus(name).defaults(), **args}
    if name == "curve":
        arc = float(full["radius"]) * math.radians(float(full["span"]))
        width = {"width": full["width"]}
        # The same ink as the arc: a line of its length, angles with arms of half of it
        # (more ink answers more, whatever the shape).
        out = [[("line", {"length": arc, **width})]]
        out += [[("angle", {"opening": o, "length": arc / 2, **width})] for o in ANGLE_OPENINGS]
        return out
    if name == "high_low":
        f, ratio = float(full["frequency"]), float(full["ratio"])
        keep = {k: full[k] for k in ("contrast", "softness") if k in full}
        return [
            [("high_low", a) for a in _phased("high_low", {"frequency": g, "ratio": 1.0, **keep})]
            for g in (f, f * ratio)
        ]
    return None


def _bins(values: list[float], k: int, period: float | None) -> list[tuple[float, float]]:
    """K equal bins of P: centred on multiples of period/K, or spanning the sweep range."""
    if period is not None:
        w = period / k
        return [((j * w - w / 2) % period, (j * w + w / 2) % period) for j in range(k)]
    lo, hi = min(values), max(values)
    w = (hi - lo) / k
    return [(lo + j * w, lo + (j + 1) * w) for j in range(k)]


def _bin_of(v: float, k: int, period: float | None, values: list[float]) -> int:
    if period is not None:  # half-open bins [c - w/2, c + w/2), as `covers` counts them
        w = period / k
        return math.floor((v + w / 2) / w) % k
    lo, hi = min(values), max(values)
    return min(int((v - lo) / ((hi - lo) / k)), k - 1) if hi > lo else 0


def choose(adapter: ModelAdapter, sel: ast.Selector, *, device: str = "cpu") -> Selection:
    """Score every channel of the selector's layer and take the top K (or tile P)."""
    layer = sel.layer.text
    try:
        info = adapter.layer(layer)
    except DiagnosticError:
        names = [x.name for x in adapter.layers()]
        raise DiagnosticError([unknown_layer(layer, names, adapter.name, sel.layer.span)]) from None
    adapter.require_parameters(layer)  # a backbone file may lack the layers after it
    k = int(sel.count.value)
    if k > info.channels:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_BAD_VALUE,
                    f"`top {k}` asks for more channels than layer `{layer}` has ({info.channels})",
                    sel.count.span,
                )
            ]
        )
    name = sel.stimulus.name.text
    args = {a.text: e.value for a, e in sel.stimulus.args if isinstance(e, ast.Literal)}
    plan = Plan.of(adapter)
    node, how = read_node(adapter, layer)
    src = Source(plan, lambda _layer: node)
    feat = _AllChannels(layer, info.channels)
    over = sel.over.text if sel.over is not None else None
    values: list[float] = []
    try:
        # target: rows per argument set (averaged), [n_values] each
        target: list[list[int]] = []
        for phased in _phased(name, args):
            if over is not None:
                values = _sweep(name, over)
                src.sweep(feat, name, phased, over, values)
            else:
                src.one(feat, name, phased)
            target.append(src.log[-1])
        controls: list[list[list[int]]] = []
        for group in _controls(name, args) or []:
            rows = []
            for cname, cargs in group:
                src.sweep(feat, cname, cargs, "orientation", _full_sweep(cname))
                rows.append(src.log[-1])
            controls.append(rows)
        n0 = len(src.log)
        if not controls:
            _reference(src, feat, name, args)
        ref_rows = [r for rows in src.log[n0:] for r in rows]
    except Unmeasurable as exc:
        raise DiagnosticError([Diagnostic(d.E_BAD_VALUE, str(exc), sel.stimulus.span)]) from None
    runner = runner_for(adapter, device=device)
    # through the one runner: images another selector or claim of this run (or, with the
    # cache, an earlier run) already pushed are not pushed again
    acts = plan.run(runner)[node]  # [N, C]
    resp = torch.stack([acts[rows] for rows in target]).mean(0)  # [n, C]
    best, where = resp.max(0)  # [C]
    if controls:
        per_control = [torch.stack([acts[r] for r in group]).mean(0) for group in controls]
        k_c = torch.stack([c.max(0).values for c in per_control]).max(0).values
    else:
        k_c = acts[ref_rows].mean(0)
    a = best.clamp_min(0.0)
    k_c = k_c.clamp_min(0.0)
    selectivity = torch.where(a > 0, (a - k_c) / (a + k_c).clamp_min(1e-12), torch.zeros_like(a))
    top = float(a.max())
    response = a / top if top > 0 else torch.zeros_like(a)
    score = selectivity * response
    eligible = [c for c in range(info.channels) if float(score[c]) > 0]
    if not eligible:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_BAD_VALUE,
                    f"no unit of `{layer}` responds to `{name}` more than to its control stimuli",
                    sel.span,
                    help='docs/claims.md, "Features declared by behaviour", lists the controls',
                )
            ]
        )
    ranked = sorted(eligible, key=lambda c: (-float(score[c]), c))
    bins: list[tuple[float, float]] | None = None
    empty: list[tuple[float, float]] = []
    filled: list[int] = []
    if over is None:
        order = ranked[:k]
    else:
        period = _period(name, over)
        all_bins = _bins(values, k, period)
        chosen: dict[int, int] = {}
        for c in ranked:  # best first: the first unit to land in a bin takes it
            j = _bin_of(values[int(where[c])], k, period, values)
            chosen.setdefault(j, c)
        order = [chosen[j] for j in range(k) if j in chosen]
        filled = [j for j in range(k) if j in chosen]
        bins = [all_bins[j] for j in filled]
        empty = [all_bins[j] for j in range(k) if j not in chosen]
    return Selection(
        name="",
        selector=selector_text(sel),
        layer=layer,
        channels=tuple(order),
        scores=tuple(float(score[c]) for c in order),
        values=tuple(float(values[int(where[c])]) for c in order) if over is not None else None,
        selectivity=tuple(float(selectivity[c]) for c in order),
        response=tuple(float(response[c]) for c in order),
        bins=tuple(bins) if bins is not None else None,
        empty_bins=tuple(empty),
        over=over,
        stimulus=name,
        stimulus_args=tuple(sorted(args.items())),
        grid=tuple(values),
        read=how,
        bin_index=tuple(filled),
    )


def _concrete(
    stmt: ast.FeatureDecl | ast.FamilyDecl, sel: ast.Selector, selection: Selection
) -> ast.FeatureDecl | ast.FamilyDecl:
    span = sel.span
    if isinstance(stmt, ast.FeatureDecl):
        term = ast.ChannelTerm(
            None,
            False,
            sel.layer,
            ast.Literal(float(selection.channels[0]), "number", span, str(selection.channels[0])),
            span,
        )
        return dataclasses.replace(stmt, terms=(term,), select=None)
    members = []
    for i, c in enumerate(selection.channels):
        values: tuple[ast.Literal, ...] = ()
        if stmt.params and selection.values is not None:
            unit = "angle" if stmt.params[0].type.text == "angle" else "number"
            v = selection.values[i]
            values = (ast.Literal(v, unit, span, f"{v:g}" + ("deg" if unit == "angle" else "")),)
        members.append(ast.Member(ast.Literal(float(c), "number", span, str(c)), values, span))
    return dataclasses.replace(stmt, members=tuple(members), select=None)


Declaration = ast.FeatureDecl | ast.FamilyDecl


def _rewrite_selectors(program: Program, pick: Callable[[Declaration], Selection]) -> Program:
    """The program with every selector replaced by the channels `pick` gives for its
    declaration. The diagnostics of every declaration `pick` cannot choose for are
    raised together, after the whole program was seen."""
    errors: list[Diagnostic] = []
    modules: dict[str, ast.Spec] = {}
    for path, spec in program.modules.items():
        statements: list[ast.Statement] = []
        for stmt in spec.statements:
            if not isinstance(stmt, (ast.FeatureDecl, ast.FamilyDecl)) or stmt.select is None:
                statements.append(stmt)
                continue
            try:
                chosen = pick(stmt)
            except DiagnosticError as exc:
                errors.extend(exc.diagnostics)
                statements.append(stmt)
                continue
            statements.append(_concrete(stmt, stmt.select, chosen))
        modules[path] = dataclasses.replace(spec, statements=tuple(statements))
    if errors:
        raise DiagnosticError(errors)
    main = modules.get(program.main.path, program.main)
    return Program(main, modules, dict(program.targets))


def materialise(
    program: Program, adapter: ModelAdapter, *, device: str = "cpu", progress: Any = None
) -> tuple[Program, list[Selection]]:
    """The program with every selector replaced by the channels chosen on `adapter`."""
    from circuitdsl.models.progress import current

    p = progress if progress is not None else current()
    selections: list[Selection] = []

    def pick(stmt: Declaration) -> Selection:
        assert stmt.select is not None
        p.note(f"selecting {stmt.name.text} = {selector_text(stmt.select)}")
        chosen = dataclasses.replace(
            choose(adapter, stmt.select, device=device), name=stmt.name.text
        )
        selections.append(chosen)
        return chosen

    return _rewrite_selectors(program, pick), selections


def selections_from_data(entries: list[dict[str, Any]]) -> list[Selection]:
    """`Selection`s back from a report's numbers (`Report.selection_data`: one entry per
    member, `Selection.to_dicts`), grouped by name in report order. Enough to rewrite the
    program (`apply_selections`); the per-member scores come back, the sweep does not."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault(str(e["name"]), []).append(e)
    out = []
    for name, members in groups.items():
        values = [m.get("value") for m in members]
        out.append(
            Selection(
                name=name,
                selector=str(members[0]["selector"]),
                layer=str(members[0]["layer"]),
                channels=tuple(int(m["channel"]) for m in members),
                scores=tuple(
                    float("nan") if m.get("score") is None else float(m["score"]) for m in members
                ),
                values=None
                if any(v is None for v in values)
                else tuple(float(cast(float, v)) for v in values),
            )
        )
    return out


def apply_selections(program: Program, selections: list[Selection]) -> Program:
    """The program with each selector replaced by a choice made before (by name), without
    a model: how a report's circuit is drawn again (`circ render --report`). A selector
    with no choice among `selections` is a diagnostic (E300)."""
    by_name = {s.name: s for s in selections}

    def pick(stmt: Declaration) -> Selection:
        chosen = by_name.get(stmt.name.text)
        if chosen is None:
            assert stmt.select is not None
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_USAGE,
                        f"the report does not say which channels `{stmt.name.text}` chose",
                        stmt.select.span,
                        help="check the spec again (`circ check SPEC -o report.json`)",
                    )
                ]
            )
        return chosen

    return _rewrite_selectors(program, pick)
