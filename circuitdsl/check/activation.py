"""Activation claims (`expect`) and edit predictions (`predict`), measured on stimuli.

A feature's *response* to an image is its activation at the centre of its layer's map
(`circuitdsl.models.probe.centre`), combined over its channels with its coefficients.
docs/claims.md ("Activation claims and edit predictions") gives the formulas; in short:

* ``responds``: ``z = (a(S) - mean(R)) / sd(R)`` with R the *reference set*: S's own
  family swept over its sweep parameter (24 values, S's other arguments kept) plus the
  library's line, edge, curve and angle at default arguments, 24 orientations each.
* ``prefers P V ± T``: sweep P (5° steps over the orientation period, or 37 values
  over V ± 3T for other parameters); ``preferred`` = argmax, ``error`` = circular
  (or absolute) distance to V; passes iff ``error <= T``.
* ``no echo``: ``echo_ratio = max(a(E), 0) / peak`` with E the stated stimulus (or
  the preferred orientation + half a period when S leaves the orientation open) and
  peak the maximum over the orientation sweep.
* ``invariant to colour|brightness``: ``cv = sd / mean`` of the responses to colour
  (brightness) variants of S.
* ``predict``: the test's primary statistic (activation, error, echo_ratio, cv) is
  measured on the model and on an edited copy; ``change = after - before``.

Work is batched: every claim first *plans* the images it needs (rendered once,
deduplicated across claims), the model runs once on all of them, then every claim is
measured from the stored centre activations. Each edit set of `predict` claims gets one
edited copy of the model and one more batched run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from circuitdsl.check.common import Outcome, Unmeasurable, fmt
from circuitdsl.language.ir import Claim, Threshold
from circuitdsl.measure.stimuli import STIMULI, check_params, get_stimulus
from circuitdsl.measure.stimuli.registry import draw
from circuitdsl.measure.stimuli.registry import version as stimuli_version
from circuitdsl.models.edits import edited_copy
from circuitdsl.models.geometry import Canvas
from circuitdsl.models.probe import canvas_for, runner_for

KINDS = ("activation", "prediction")

REFERENCE_STIMULI = ("line", "edge", "curve", "angle")
REFERENCE_STEPS = 24  # orientations per reference family
PREFERS_STEP = 5.0  # degrees between orientations of a tuning sweep
UNCHANGED_EFFECT = 0.1  # |effect| up to which a prediction of `unchanged` holds
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
ASPECTS = {"colour": "colour", "color": "colour", "brightness": "brightness"}
PRIMARY = {"responds": "activation", "prefers": "error", "no_echo": "echo_ratio", "invariant": "cv"}


# ---- stimulus planning ------------------------------------------------------------------


@dataclass
class Plan:
    """Every image some claim needs, by canvas: key -> how to draw it (drawn lazily, once).

    Each feature's layer has its own canvas (`circuitdsl.models.probe.canvas_for`: the
    smallest one holding its centre unit's receptive field); features on layers with the
    same canvas share images. Nothing is drawn while planning: `run` draws only the images
    no earlier run of the model has pushed.
    """

    canvas_of: Callable[[str], Canvas]
    groups: dict[Canvas, dict[tuple[Any, ...], tuple[Callable[[], torch.Tensor], int]]] = field(
        default_factory=dict
    )
    nodes: dict[Canvas, set[str]] = field(default_factory=dict)

    def add(
        self, cv: Canvas, keys: Sequence[tuple[Any, ...]], render: Callable[[], torch.Tensor]
    ) -> list[tuple[Any, ...]]:
        """Record `keys` (drawn together by `render()`, in order) on canvas `cv`."""
        group = self.groups.setdefault(cv, {})
        for i, k in enumerate(keys):
            group.setdefault(k, (render, i))
        return list(keys)

    @property
    def count(self) -> int:
        """How many distinct images the plan holds."""
        return sum(len(g) for g in self.groups.values())

    def draw(self, cv: Canvas, keys: Sequence[tuple[Any, ...]]) -> torch.Tensor:
        """The images of `keys` on `cv`, each render call made once."""
        group = self.groups[cv]
        drawn: dict[int, torch.Tensor] = {}
        rows = []
        for k in keys:
            render, i = group[k]
            if id(render) not in drawn:
                drawn[id(render)] = render()
            rows.append(drawn[id(render)][i])
        return torch.stack(rows) if rows else torch.zeros(0, 3, *cv.size)

    def run(
        self, runner: Any, only: Mapping[Canvas, set[tuple[Any, ...]]] | None = None
    ) -> dict[tuple[Canvas, str], dict[tuple[Any, ...], torch.Tensor]]:
        """Centre activations of every planned image at every node that reads its canvas:
        ``{(canvas, node): {key: [C]}}`` (`only`: just these keys per canvas)."""
        out: dict[tuple[Canvas, str], dict[tuple[Any, ...], torch.Tensor]] = {}
        for cv, group in self.groups.items():
            keys = list(group) if only is None else [k for k in group if k in only.get(cv, ())]
            nodes = sorted(self.nodes.get(cv, ()))
            if not keys or not nodes:
                continue
            acts = runner.responses(
                cv, nodes, keys, lambda ks, cv=cv: self.draw(cv, ks), salt=stimuli_version()
            )
            for n in nodes:
                out[(cv, n)] = dict(zip(keys, acts[n], strict=True))
        return out


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
        spec = get_stimulus(name)
        check_params(spec, args)
    except (KeyError, ValueError) as exc:
        raise Unmeasurable(str(exc).strip("'\"")) from None
    return dict(args)


class Source:
    """Planned images plus (after the run) centre activations: responses of features.

    While `centres` is None the source is *planning*: it records the images it needs
    and returns zeros. Afterwards the same calls return the features' responses.
    """

    def __init__(self, plan: Plan, layer_node: Callable[[str], str]) -> None:
        self.plan = plan
        self.layer_node = layer_node
        self.centres: dict[tuple[Canvas, str], dict[tuple[Any, ...], torch.Tensor]] | None = None
        self.nodes: set[str] = set()
        self.rows: dict[Canvas, set[tuple[Any, ...]]] = {}  # the keys it asked for
        self.log: list[tuple[Canvas, str, list[tuple[Any, ...]]]] = []  # every request

    def view(
        self, centres: dict[tuple[Canvas, str], dict[tuple[Any, ...], torch.Tensor]]
    ) -> Source:
        """The same plan read through other centre activations (e.g. an edited model)."""
        other = Source(self.plan, self.layer_node)
        other.centres = centres
        return other

    def canvas(self, feature: Any) -> tuple[Canvas, str]:
        """The canvas of `feature`'s layer and the node read."""
        node = self.layer_node(feature.layer)
        return self.plan.canvas_of(node), node

    def read(self, cv: Canvas, node: str, keys: Sequence[tuple[Any, ...]]) -> torch.Tensor:
        """``[len(keys), C]``: every channel's centre activation (after the run)."""
        assert self.centres is not None
        table = self.centres[(cv, node)]
        return torch.stack([table[k] for k in keys])

    def _resp(self, feature: Any, keys: list[tuple[Any, ...]]) -> torch.Tensor:
        cv, node = self.canvas(feature)
        self.nodes.add(node)
        self.plan.nodes.setdefault(cv, set()).add(node)
        self.rows.setdefault(cv, set()).update(keys)
        self.log.append((cv, node, keys))
        if self.centres is None:
            return torch.zeros(len(keys))
        c = self.read(cv, node, keys)[:, list(feature.channels)]
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
        # Keys list every parameter in sorted order, the swept one included, so a sweep
        # value and the same stimulus asked for by `one` are one image.
        keys = [(name, _key(name, {**fixed, param: float(v)}), None) for v in values]
        vals = torch.tensor([float(v) for v in values])
        cv, _ = self.canvas(feature)
        rows = self.plan.add(cv, keys, lambda: draw(name, cv, **fixed, **{param: vals}))
        return self._resp(feature, rows)

    def one(self, feature: Any, name: str, args: Mapping[str, Any]) -> torch.Tensor:
        """The response to one stimulus (a tensor of one value)."""
        full = _stim_args(name, args)
        key = (name, _key(name, full), None)
        cv, _ = self.canvas(feature)
        rows = self.plan.add(cv, [key], lambda: draw(name, cv, **full))
        return self._resp(feature, rows)

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

        cv, _ = self.canvas(feature)

        def render() -> torch.Tensor:
            shape = {k: v for k, v in full.items() if k not in ("foreground", "background")}
            mask = draw(name, cv, **shape, foreground=1.0, background=0.0)[:, :1]
            fg = torch.stack(fgs)[:, :, None, None]
            return mask * fg + (1 - mask) * bg

        rows = self.plan.add(cv, keys, render)
        return self._resp(feature, rows)


# ---- the tests ----------------------------------------------------------------------------


def _period(name: str, param: str) -> float | None:
    spec = get_stimulus(name)
    if param == "orientation" and "orientation" in spec.param_names:
        return spec.orientation_period
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


def _responds(feature: Any, act: Mapping[str, Any], src: Source) -> tuple[dict[str, float], str]:
    stim = act["stimulus"]
    a = float(src.one(feature, stim["name"], stim["args"])[0])
    ref = _reference(src, feature, stim["name"], stim["args"])
    mean, sd = float(ref.mean()), float(ref.std(unbiased=False))
    z = (a - mean) / sd if sd > 1e-12 else float("nan")
    detail = (
        f"activation {fmt(a)} vs reference mean {fmt(mean)}, sd {fmt(sd)} over {len(ref)}"
        f" stimuli: z = {fmt(z)}"
    )
    return {"z": z, "activation": a, "ref_mean": mean, "ref_sd": sd}, detail


def _sweep_values(
    name: str, param: str, value: float, tol: float
) -> tuple[list[float], float | None]:
    period = _period(name, param)
    if period is not None:
        step = min(PREFERS_STEP, max(tol / 2, 0.5)) if tol > 0 else PREFERS_STEP
        return _orientations(period, step), period
    if tol <= 0:
        raise Unmeasurable(f"a tolerance > 0 is needed to sweep `{param}`")
    lo = value - 3 * tol
    if get_stimulus(name).defaults().get(param, 0) and lo <= 0:
        lo = min(0.25 * tol, value)  # sizes and lengths must stay positive
    return [lo + (value + 3 * tol - lo) * k / 36 for k in range(37)], None


def _prefers(feature: Any, act: Mapping[str, Any], src: Source) -> tuple[dict[str, float], str]:
    stim, param = act["stimulus"], str(act["param"])
    if param not in get_stimulus(stim["name"]).param_names:
        raise Unmeasurable(f"stimulus `{stim['name']}` has no parameter `{param}` to sweep")
    value, tol = float(act["value"]), float(act["tolerance"])
    values, period = _sweep_values(stim["name"], param, value, tol)
    r = src.sweep(feature, stim["name"], stim["args"], param, values)
    k = int(torch.argmax(r))
    preferred, peak = values[k], float(r[k])
    out = {"preferred": preferred, "peak": peak}
    if period is not None:
        w = r.clamp(min=0)
        theta = torch.tensor(values) * (2 * math.pi / period)
        cx, cy = float((w * torch.cos(theta)).sum()), float((w * torch.sin(theta)).sum())
        total = float(w.sum())
        out["preferred_mean"] = (math.degrees(math.atan2(cy, cx)) * period / 360.0) % period
        out["selectivity"] = math.hypot(cx, cy) / total if total > 0 else 0.0
        out["error"] = _circ_dist(preferred, value, period)
    else:
        out["error"] = abs(preferred - value)
    detail = (
        f"swept {param} over {len(values)} values: preferred {fmt(preferred)}"
        f" (peak {fmt(peak)}), {fmt(out['error'])} from {fmt(value)}"
    )
    return out, detail


def _no_echo(feature: Any, act: Mapping[str, Any], src: Source) -> tuple[dict[str, float], str]:
    stim = act["stimulus"]
    name, args = stim["name"], dict(stim["args"])
    period = _period(name, "orientation")
    if period is None:
        raise Unmeasurable(f"stimulus `{name}` has no orientation, so it has no echo")
    values = _orientations(period, PREFERS_STEP)
    r = src.sweep(feature, name, args, "orientation", values)
    k = int(torch.argmax(r))
    peak = float(r[k])
    if "orientation" in args:
        echo_at = float(args["orientation"]) % period
        echo = float(src.one(feature, name, args)[0])
    else:
        echo_at = (values[k] + period / 2) % period
        echo = float(src.one(feature, name, {**args, "orientation": echo_at})[0])
    ratio = max(echo, 0.0) / peak if peak > 1e-12 else float("nan")
    detail = (
        f"response at {fmt(echo_at)}deg is {fmt(echo)}; peak {fmt(peak)} at {fmt(values[k])}deg:"
        f" echo_ratio {fmt(ratio)}"
    )
    return {"echo_ratio": ratio, "echo": echo, "peak": peak, "preferred": values[k]}, detail


def _invariant(feature: Any, act: Mapping[str, Any], src: Source) -> tuple[dict[str, float], str]:
    stim = act["stimulus"]
    aspect = ASPECTS.get(str(act["param"]))
    if aspect is None:
        raise Unmeasurable(
            f"invariance to `{act['param']}` is not measured; aspects: colour, brightness"
        )
    r = src.variants(feature, stim["name"], stim["args"], aspect)
    mean, sd = float(r.mean()), float(r.std(unbiased=False))
    cv = sd / mean if mean > 1e-12 else float("nan")
    detail = (
        f"{len(r)} {aspect} variants: mean {fmt(mean)}, sd {fmt(sd)}, range"
        f" {fmt(float(r.min()))}..{fmt(float(r.max()))}: cv {fmt(cv)}"
        + ("" if mean > 1e-12 else " (the mean response is not positive)")
    )
    return {"cv": cv, "mean": mean, "min": float(r.min()), "max": float(r.max())}, detail


TESTS = {"responds": _responds, "prefers": _prefers, "no_echo": _no_echo, "invariant": _invariant}


def measure_test(
    feature: Any, act: Mapping[str, Any], src: Source
) -> tuple[dict[str, float], str, tuple[Threshold, ...]]:
    """One activation test: statistics, a sentence, and the thresholds it implies."""
    fn = TESTS.get(str(act["test"]))
    if fn is None:
        raise Unmeasurable(f"unknown activation test `{act['test']}`")
    stats, detail = fn(feature, act, src)
    implied: tuple[Threshold, ...] = ()
    if act["test"] == "prefers":
        implied = (Threshold("error", "<=", float(act["tolerance"])),)
    return stats, detail, implied


# ---- the handler --------------------------------------------------------------------------


def _feature(ctx: Any, name: str) -> Any:
    feats = getattr(ctx.bound, "features", None)
    if not isinstance(feats, Mapping) or name not in feats:
        raise Unmeasurable(f"`{name}` is not a single feature bound to a model")
    return feats[name]


def _implied_change(change: str) -> tuple[Threshold, ...]:
    if change == "increases":
        return (Threshold("change", ">", 0.0),)
    if change == "decreases":
        return (Threshold("change", "<", 0.0),)
    return (Threshold("abs_effect", "<=", UNCHANGED_EFFECT),)


def _effect_scale(test: str, act: Mapping[str, Any], before: Mapping[str, float]) -> float:
    if test == "responds":
        return before.get("ref_sd", 1.0) or 1.0
    if test == "prefers":
        return float(act["tolerance"]) or 1.0
    return 1.0


def measure(claims: list[Claim], ctx: Any) -> list[Outcome]:
    """Batch handler for `activation` and `prediction` claims (see the module doc).

    Forward passes are large convolutions, which gain from a thread pool, unlike the
    checker's many small weight statistics: they run with the caller's torch threads.
    """
    from circuitdsl.check.context import _with_threads

    return _with_threads(getattr(ctx, "caller_threads", None), _measure_all, claims, ctx)  # type: ignore[no-any-return]


def _measure_all(claims: list[Claim], ctx: Any) -> list[Outcome]:
    adapter = getattr(ctx.bound, "adapter", None)
    if adapter is None or not hasattr(adapter, "graph"):
        msg = "activation claims need a model that can be run (a traced model adapter)"
        return [Outcome({}, msg, status="error") for _ in claims]
    device = getattr(ctx, "device", None)
    plan = Plan(lambda node: canvas_for(adapter, node))
    src = Source(plan, adapter.node)

    # 1. plan: every claim records the images it needs (deduplicated across claims)
    planned: dict[int, Source | Exception] = {}
    for i, c in enumerate(claims):
        act = c.args if c.kind == "activation" else c.args["activation"]
        mine = Source(plan, adapter.node)
        try:
            measure_test(_feature(ctx, c.args["subject"]), act, mine)
            planned[i] = mine
        except Unmeasurable as exc:
            planned[i] = exc
        src.nodes |= mine.nodes if isinstance(mine, Source) else set()

    # 2. one run of the model (images already pushed by selectors or an earlier run are
    # not pushed again: `Runner.responses`)
    runner = runner_for(adapter, device=device)
    base = src.view(plan.run(runner)) if plan.count else src

    # 3. one edited copy (and one run, of only the images its claims read) per edit set
    edited: dict[str, tuple[Source, list[str]] | Exception] = {}
    for i, c in enumerate(claims):
        if c.kind != "prediction" or not isinstance(planned[i], Source):
            continue
        key = repr(c.args["edits"])
        if key in edited:
            continue
        rows: dict[Canvas, set[tuple[Any, ...]]] = {}
        for j, d in enumerate(claims):
            pj = planned[j]
            if d.kind == "prediction" and repr(d.args["edits"]) == key and isinstance(pj, Source):
                for cv, keys in pj.rows.items():
                    rows.setdefault(cv, set()).update(keys)
        try:
            model = edited_copy(adapter, ctx.bound, c.args["edits"])
            r = runner_for(adapter, model.gm, device=device, ablate=model.ablate)
            edited[key] = (src.view(plan.run(r, only=rows)), model.notes)
        except Exception as exc:  # reported on each claim of this edit set
            edited[key] = exc

    # 4. measure
    outs = []
    for i, c in enumerate(claims):
        p = planned[i]
        if isinstance(p, Exception):
            outs.append(Outcome({}, str(p), status="error"))
            continue
        feature = _feature(ctx, c.args["subject"])
        if c.kind == "activation":
            stats, detail, implied = measure_test(feature, c.args, base)
            outs.append(Outcome(stats, detail, implied=implied))
            continue
        e = edited[repr(c.args["edits"])]
        if isinstance(e, Exception):
            from circuitdsl.check.context import describe_exception

            outs.append(Outcome({}, describe_exception(e), status="error"))
            continue
        after_src, notes = e
        act = c.args["activation"]
        primary = PRIMARY[str(act["test"])]
        s0, _, _ = measure_test(feature, act, base)
        s1, _, _ = measure_test(feature, act, after_src)
        before, after = s0[primary], s1[primary]
        change = after - before
        scale = _effect_scale(str(act["test"]), act, s0)
        effect = change / scale
        measured = {
            "before": before,
            "after": after,
            "change": change,
            "effect": effect,
            "abs_effect": abs(effect),
        }
        detail = (
            f"{primary} {fmt(before)} -> {fmt(after)} (change {change:+.3g},"
            f" {effect:+.3g} in units of {fmt(scale)}), predicted {c.args['change']};"
            f" edit: {'; '.join(notes)}"
        )
        outs.append(Outcome(measured, detail, implied=_implied_change(str(c.args["change"]))))
    return outs


def edges(claim: Claim, circuit: Any) -> list[tuple[Any, Any]]:
    """Activation claims read no weight blocks through the engine (edits copy the model)."""
    return []
