"""Features declared by behaviour, chosen on each model at bind time.

    feature f = top 1 of conv2 by curve(orientation = 45deg)
    family curve(orientation: angle) = top 4 of conv2 by curve(radius = 8) over orientation

Score of channel c (docs/claims.md, "Features declared by behaviour"): its `responds` z
for the stimulus, ``z_c = (a_c(S) - mean_R(a_c)) / sd_R(a_c)`` over the same reference
set R as `responds` claims. With ``over P`` the stimulus is swept over P (36 steps over
the orientation period, or 24 values from 0.25x to 2x the default for other parameters)
and the score is the best z over the sweep, counting only stimuli with a positive
response (a ReLU silences the rest); the member's parameter value is where that best z
occurs. Without ``over`` only positive responses count too. The top K channels by score
are chosen (ties: lower channel first).

`materialise(program, adapter)` rewrites every selector declaration into a plain one
(`feature f = conv2:16`, `family curve(...) in conv2 { 16: 185deg, ... }`) and the spec
is then resolved and compiled as usual, so quantified claims expand over the chosen
members of each model. The choices are reported as `Selection`s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from circuitdsl.check.activation import Plan, Source, _orientations, _period, _reference
from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Unmeasurable
from circuitdsl.language.loader import Program
from circuitdsl.language.syntax import ast
from circuitdsl.language.syntax.fmt import selector_text
from circuitdsl.measure.stimuli import get_stimulus
from circuitdsl.models.base import unknown_layer
from circuitdsl.models.probe import input_size, runner_for

SELECT_STEPS = 36  # sweep values of `over orientation`


@dataclass(frozen=True)
class Selection:
    """Which channels a selector chose on one model, with their scores."""

    name: str
    selector: str
    layer: str
    channels: tuple[int, ...]
    scores: tuple[float, ...]
    values: tuple[float, ...] | None  # the swept parameter's best value per channel

    def text(self) -> str:
        """`curve = top 2 of conv2 by ...: conv2:16 (z 3.1 at 185), conv2:9 (z 2.9 at 305)`."""
        parts = []
        for i, (c, z) in enumerate(zip(self.channels, self.scores, strict=True)):
            at = f" at {self.values[i]:g}" if self.values is not None else ""
            parts.append(f"{self.layer}:{c} (z {z:.3g}{at})")
        return f"{self.name} = {self.selector}: " + ", ".join(parts)


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


def choose(adapter: Any, sel: ast.Selector, *, device: str = "cpu") -> Selection:
    """Score every channel of the selector's layer and take the top K."""
    layer = sel.layer.text
    try:
        info = adapter.layer(layer)
    except DiagnosticError:
        names = [x.name for x in adapter.layers()]
        raise DiagnosticError([unknown_layer(layer, names, adapter.name, sel.layer.span)]) from None
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
    plan = Plan(input_size(adapter))
    src = Source(plan, adapter.node)
    feat = _AllChannels(layer, info.channels)
    try:
        if sel.over is not None:
            values = _sweep(name, sel.over.text)
            src.sweep(feat, name, args, sel.over.text, values)
        else:
            values = []
            src.one(feat, name, args)
        target = src.log[-1]
        n0 = len(src.log)
        _reference(src, feat, name, args)
        ref_rows = [r for rows in src.log[n0:] for r in rows]
    except Unmeasurable as exc:
        raise DiagnosticError([Diagnostic(d.E_BAD_VALUE, str(exc), sel.stimulus.span)]) from None
    node = adapter.node(layer)
    runner = runner_for(adapter, device=device)
    acts = runner.centres(plan.images(), [node])[node]  # [N, C]
    ref = acts[ref_rows]
    mean, sd = ref.mean(0), ref.std(0, unbiased=False).clamp_min(1e-12)
    z = (acts[target] - mean) / sd  # [n, C]
    # A unit whose activation stays <= 0 is silenced by the ReLU after it, however far it
    # is above its reference mean: it does not respond, so it cannot be chosen there.
    z = torch.where(acts[target] > 0, z, torch.full_like(z, float("-inf")))
    best, where = z.max(0)
    dead = ref.std(0, unbiased=False) <= 1e-12
    best = torch.where(dead, torch.full_like(best, float("-inf")), best)
    order = sorted(range(info.channels), key=lambda c: (-float(best[c]), c))[:k]
    return Selection(
        name="",
        selector=selector_text(sel),
        layer=layer,
        channels=tuple(order),
        scores=tuple(float(best[c]) for c in order),
        values=tuple(float(values[int(where[c])]) for c in order) if sel.over is not None else None,
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


def materialise(
    program: Program, adapter: Any, *, device: str = "cpu"
) -> tuple[Program, list[Selection]]:
    """The program with every selector replaced by the channels chosen on `adapter`."""
    selections: list[Selection] = []
    errors: list[Diagnostic] = []
    modules: dict[str, ast.Spec] = {}
    for path, spec in program.modules.items():
        statements: list[ast.Statement] = []
        for stmt in spec.statements:
            if not isinstance(stmt, (ast.FeatureDecl, ast.FamilyDecl)) or stmt.select is None:
                statements.append(stmt)
                continue
            sel = stmt.select
            try:
                chosen = dataclasses.replace(
                    choose(adapter, sel, device=device), name=stmt.name.text
                )
            except DiagnosticError as exc:
                errors.extend(exc.diagnostics)
                statements.append(stmt)
                continue
            selections.append(chosen)
            statements.append(_concrete(stmt, sel, chosen))
        modules[path] = dataclasses.replace(spec, statements=tuple(statements))
    if errors:
        raise DiagnosticError(errors)
    main = modules.get(program.main.path, program.main)
    return Program(main, modules, dict(program.targets)), selections
