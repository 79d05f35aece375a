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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from circuitdsl.check.common import Outcome, Unmeasurable, fmt
from circuitdsl.language.ir import Claim, Threshold
from circuitdsl.language.kinds import (
    ActivationClaim,
    ActivationTest,
    ChangeSize,
    CoverageClaim,
    Edit,
    PredictionClaim,
)
from circuitdsl.measure.responses import (
    Plan,
    Source,
    _circ_dist,
    _orientations,
    _period,
    _reference,
    pre_units,
    read_node,
    reader,
)
from circuitdsl.measure.stimuli import get_stimulus
from circuitdsl.models.edits import edited_copy
from circuitdsl.models.probe import runner_for

if TYPE_CHECKING:
    from circuitdsl.check.context import Context


PREFERS_STEP = 5.0  # degrees between orientations of a tuning sweep
UNCHANGED_EFFECT = 0.1  # |effect| up to which a prediction of `unchanged` holds
ASPECTS = {"colour": "colour", "color": "colour", "brightness": "brightness"}
SUPPRESSED = 0.1  # an echo driven this many peaks below zero (before the ReLU) is suppression
PRIMARY = {"responds": "activation", "prefers": "error", "no_echo": "echo_ratio", "invariant": "cv"}


# ---- the tests ----------------------------------------------------------------------------


Grid = tuple[float, ...] | None  # an `over P` selector's grid, when a claim would be circular


def _num(x: float | None, what: str) -> float:
    if x is None:
        raise Unmeasurable(f"the claim gives no {what}")
    return float(x)


def _responds(
    feature: Any, act: ActivationTest, src: Source, grid: Grid
) -> tuple[dict[str, float], str]:
    stim = act.stimulus
    a = float(src.one(feature, stim.name, stim.kwargs)[0])
    ref = _reference(src, feature, stim.name, stim.kwargs)
    mean, sd = float(ref.mean()), float(ref.std(unbiased=False))
    z = (a - mean) / sd if sd > 1e-12 else float("nan")
    detail = (
        f"activation {fmt(a)} vs reference mean {fmt(mean)}, sd {fmt(sd)} over {len(ref)}"
        f" stimuli: z = {fmt(z)}"
    )
    if a <= 0:
        # However far above its reference, a unit at or below zero sends nothing on.
        detail += "; the activation is not positive, so the unit does not respond"
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


def _prefers(
    feature: Any, act: ActivationTest, src: Source, grid: Grid
) -> tuple[dict[str, float], str]:
    stim, param = act.stimulus, str(act.param)
    if param not in get_stimulus(stim.name).param_names:
        raise Unmeasurable(f"stimulus `{stim.name}` has no parameter `{param}` to sweep")
    value, tol = _num(act.value, "value"), _num(act.tolerance, "tolerance")
    values, period = _sweep_values(stim.name, param, value, tol)
    if grid:
        # The claimed value is where an `over P` selector found this unit's best response
        # to the same stimulus: measuring on the selector's grid would return it by
        # construction. Sweep the values halfway between the selector's instead.
        step = (grid[1] - grid[0]) if len(grid) > 1 else (period or 1.0)
        values = [v + step / 2 for v in grid]
        if period is not None:
            values = [v % period for v in values]
    r = src.sweep(feature, stim.name, stim.kwargs, param, values)
    k = int(torch.argmax(r))
    preferred, peak = values[k], float(r[k])
    out = {"preferred": preferred, "peak": peak, "circular": 1.0 if grid else 0.0}
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
    if peak <= 0:
        # A unit silent over the whole sweep (all zeros after its ReLU) prefers nothing:
        # the argmax of a flat curve is its first value, which would "pass" near 0deg.
        out["error"] = float("nan")
        detail += "; the unit does not respond to any value, so it prefers none"
    if grid:
        detail += (
            f"; circular: {fmt(value)} was assigned by the `over {param}` selector from this"
            f" stimulus, so the sweep used only {param} values the selector did not (its"
            " grid shifted by half a step)"
        )
    return out, detail


def _no_echo(
    feature: Any, act: ActivationTest, src: Source, grid: Grid
) -> tuple[dict[str, float], str]:
    name, args = act.stimulus.name, act.stimulus.kwargs
    period = _period(name, "orientation")
    if period is None:
        raise Unmeasurable(f"stimulus `{name}` has no orientation, so it has no echo")
    values = _orientations(period, PREFERS_STEP)

    def measure(s: Source) -> tuple[float, float, int, float]:
        r = s.sweep(feature, name, args, "orientation", values)
        k = int(torch.argmax(r))
        if "orientation" in args:
            at = float(args["orientation"]) % period
            e = float(s.one(feature, name, args)[0])
        else:
            at = (values[k] + period / 2) % period
            e = float(s.one(feature, name, {**args, "orientation": at})[0])
        return float(r[k]), e, k, at

    peak, echo, k, echo_at = measure(src)
    # The same stimuli read before the nonlinearity: a negative value there is
    # suppression (the stimulus drives the unit below zero), one near zero a rectified
    # zero (the stimulus does not drive it). After a ReLU both read as 0.
    peak_pre, echo_pre, _, _ = measure(src.reading(True))
    ratio = max(echo, 0.0) / peak if peak > 1e-12 else float("nan")
    pre_ratio = echo_pre / peak_pre if peak_pre > 1e-12 else float("nan")
    where = "before" if src.pre else "after"
    if echo > 1e-12:
        kind = "an echo"
    elif echo_pre < 0 and not (pre_ratio > -SUPPRESSED):  # NaN: a peak at or below 0
        kind = "suppressed"
    else:
        kind = "a rectified zero (not driven)"
    detail = (
        f"response at {fmt(echo_at)}deg is {fmt(echo)} {where} the nonlinearity; peak"
        f" {fmt(peak)} at {fmt(values[k])}deg: echo_ratio {fmt(ratio)}; before the"
        f" nonlinearity {fmt(echo_pre)} (peak {fmt(peak_pre)}, ratio {fmt(pre_ratio)}): {kind}"
    )
    return {
        "echo_ratio": ratio,
        "echo": echo,
        "peak": peak,
        "preferred": values[k],
        "echo_pre": echo_pre,
        "peak_pre": peak_pre,
        "echo_pre_ratio": pre_ratio,
    }, detail


def _invariant(
    feature: Any, act: ActivationTest, src: Source, grid: Grid
) -> tuple[dict[str, float], str]:
    stim = act.stimulus
    aspect = ASPECTS.get(str(act.param))
    if aspect is None:
        raise Unmeasurable(
            f"invariance to `{act.param}` is not measured; aspects: colour, brightness"
        )
    r = src.variants(feature, stim.name, stim.kwargs, aspect)
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
    feature: Any, act: ActivationTest, src: Source, grid: Grid = None
) -> tuple[dict[str, float], str, tuple[Threshold, ...]]:
    """One activation test: statistics, a sentence, and the thresholds it implies."""
    fn = TESTS.get(act.test)
    if fn is None:
        raise Unmeasurable(f"unknown activation test `{act.test}`")
    src = src.reading(act.pre)
    stats, detail = fn(feature, act, src, grid)
    implied: tuple[Threshold, ...] = ()
    if act.test == "prefers":
        implied = (Threshold("error", "<=", _num(act.tolerance, "tolerance")),)
    if act.test == "responds":
        # `responds` means a positive response, whatever the z: part of the claim's
        # meaning, so it holds alongside the spec's thresholds on z.
        implied = (Threshold("activation", ">", 0.0),)
    note = src.note(feature.layer)
    if note:
        detail += f" [{feature.layer} read {note}]"
    return stats, detail, implied


# ---- the handler --------------------------------------------------------------------------


def _feature(ctx: Context, name: str) -> Any:
    feats = ctx.bound.features
    if name not in feats:
        raise Unmeasurable(f"`{name}` is not a single feature bound to a model")
    return feats[name]


def _selection(ctx: Any, family: str | None) -> Any:
    """The `Selection` that chose `family`'s members on this model, if a selector did."""
    chosen = ctx.bound.selections
    return chosen.get(family) if family is not None else None


def _selector_grid(ctx: Any, subject: str, act: ActivationTest) -> Grid:
    """The selector's grid when a `prefers` claim would be circular, else None.

    Circular: the subject's family was chosen by `top K of L by S over P` with the same
    stimulus S, and the claimed value is the one the selector assigned the member.
    """
    if act.test != "prefers":
        return None
    feature = _feature(ctx, subject)
    fam = getattr(getattr(feature, "feature", None), "family", None)
    sel = _selection(ctx, fam)
    if sel is None or sel.over != act.param or sel.stimulus != act.stimulus.name:
        return None
    try:
        assigned = float(feature.feature.param(str(act.param)))
    except (KeyError, TypeError, ValueError):
        return None
    period = _period(act.stimulus.name, str(act.param))
    gap = abs(assigned - _num(act.value, "value"))
    if period is not None:
        gap = _circ_dist(assigned, _num(act.value, "value"), period)
    if gap > 1e-6:
        return None
    return tuple(sel.grid)


def _covers(ctx: Any, claim: CoverageClaim, src: Source) -> tuple[dict[str, float], str]:
    """`expect F covers P in W bins [on S]`: which bins of P the members' preferences fill.

    Each member's preferred P is the argmax of its response over a 5-degree sweep of S
    (read after the nonlinearity unless `pre`); a member whose peak is not positive
    prefers nothing. Bins are centred on multiples of W (0, 45, ... for 45deg bins).
    """
    family, param, width = claim.subject, claim.param, float(claim.bin)
    sel = _selection(ctx, family)
    if claim.stimulus is not None:
        name, stim_args = claim.stimulus.name, claim.stimulus.kwargs
    elif sel is None:
        raise Unmeasurable(
            f"`{family}` was not chosen by a selector: say which stimulus, e.g."
            f" `covers {param} in {width:g}deg bins on curve()`"
        )
    else:
        name, stim_args = str(sel.stimulus), dict(sel.stimulus_args)
    if param not in get_stimulus(name).param_names:
        raise Unmeasurable(f"stimulus `{name}` has no parameter `{param}` to sweep")
    period = _period(name, param)
    if period is None:
        raise Unmeasurable(f"`covers` needs a periodic parameter; `{param}` of `{name}` is not")
    n = round(period / width)
    if n < 1 or abs(n * width - period) > 1e-6:
        raise Unmeasurable(f"{width:g}deg bins do not tile the {period:g}deg period of `{param}`")
    try:
        members = ctx.bound.members(family)
    except (KeyError, AttributeError):
        raise Unmeasurable(f"`{family}` is not a family bound to a model") from None
    values = _orientations(period, PREFERS_STEP)
    src = src.reading(claim.pre)
    owners: list[list[str]] = [[] for _ in range(n)]
    for m in members:
        r = src.sweep(m, name, stim_args, param, values)
        k = int(torch.argmax(r))
        if float(r[k]) <= 0:
            continue
        # bins are half-open, [c - W/2, c + W/2): a value on a boundary joins the next bin
        owners[math.floor((values[k] + width / 2) / width) % n].append(
            f"{m.layer}:{m.channels[0]}@{values[k]:g}"
        )
    covered = sum(1 for o in owners if o)
    empty = [f"{(j * width) % period:g}" for j in range(n) if not owners[j]]
    detail = (
        f"{covered} of {n} {width:g}deg bins of {param} hold a member's preferred value"
        f" ({len(members)} members, {name} swept in {PREFERS_STEP:g}deg steps)"
        + (f"; empty bins centred at {', '.join(empty)}" if empty else "")
        + "; "
        + ", ".join(f"{(j * width) % period:g}: {' '.join(o)}" for j, o in enumerate(owners) if o)
    )
    stats = {"fraction": covered / n, "covered": float(covered), "bins": float(n)}
    return stats, detail


def _implied_change(change: str, size: ChangeSize | None = None) -> tuple[Threshold, ...]:
    """The verdict a predicted change implies (docs/claims.md, `predict`)."""
    if size is not None:
        kind, v = size.kind, float(size.value)
        if kind == "by_at_least":
            sign = 1.0 if change == "increases" else -1.0
            return (Threshold("relative_change", ">=" if sign > 0 else "<=", sign * v),)
        if kind == "to_above":
            return (Threshold("ratio", ">", v),)
        if kind == "to_below":
            return (Threshold("ratio", "<", v),)
        return (Threshold("abs_relative_change", "<=", v),)
    if change == "increases":
        return (Threshold("change", ">", 0.0),)
    if change == "decreases":
        return (Threshold("change", "<", 0.0),)
    return (Threshold("abs_effect", "<=", UNCHANGED_EFFECT),)


def _relative(before: float, after: float) -> tuple[float, float]:
    """(relative change, ratio): ``(after - before) / |before|`` and ``after / before``.

    From `before` = 0 (a unit silent before the edit, after its ReLU) the relative change
    is 0 when nothing changed and infinite (with the change's sign) otherwise: any echo
    appearing from nothing is an increase "by at least 20%". The ratio is undefined (NaN:
    a claim on it fails) when `before` <= 0, where "below half of it" has no clear meaning.
    """
    if not (math.isfinite(before) and math.isfinite(after)):
        return float("nan"), float("nan")
    if before == 0:
        return (0.0 if after == 0 else math.copysign(math.inf, after)), float("nan")
    rel = (after - before) / abs(before)
    return rel, (after / before if before > 0 else float("nan"))


def _effect_scale(test: str, act: ActivationTest, before: Mapping[str, float]) -> float:
    if test == "responds":
        return before.get("ref_sd", 1.0) or 1.0
    if test == "prefers":
        return _num(act.tolerance, "tolerance") or 1.0
    return 1.0


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Batch handler for `activation` and `prediction` claims (see the module doc).

    Forward passes are large convolutions, which gain from a thread pool, unlike the
    checker's many small weight statistics: they run with the caller's torch threads.
    """
    from circuitdsl.check.context import _with_threads

    return _with_threads(ctx.caller_threads, _measure_all, claims, ctx)  # type: ignore[no-any-return]


def _measure_all(claims: list[Claim], ctx: Context) -> list[Outcome]:
    adapter = ctx.adapter
    if adapter is None:
        msg = "activation claims need a model that can be run (a traced model adapter)"
        return [Outcome({}, msg, status="error") for _ in claims]
    device = ctx.device
    plan = Plan.of(adapter)
    post, pre = reader(adapter)

    def notes(layer: str, pre: bool) -> str:
        try:
            return read_node(adapter, layer, pre=pre)[1]
        except Unmeasurable:  # a concatenation, read before the ReLU of each branch
            return "before the nonlinearity, in each channel's branch"

    units = pre_units(adapter)

    def source() -> Source:
        out = Source(plan, post, pre)
        out.notes, out.pre_units = notes, units
        return out

    src = source()

    # 1. plan: every claim renders the images it needs (deduplicated across claims)
    planned: dict[int, Source | Exception] = {}
    for i, c in enumerate(claims):
        p = c.payload
        mine = source()
        try:
            if isinstance(p, CoverageClaim):
                _covers(ctx, p, mine)
            else:
                subject, act = _test_of(c)
                measure_test(_feature(ctx, subject), act, mine, _selector_grid(ctx, subject, act))
            planned[i] = mine
        except Unmeasurable as exc:
            planned[i] = exc
        src.nodes |= mine.nodes if isinstance(mine, Source) else set()

    # 2. one run of the model: images already pushed (by a selector, or with the cache by
    # an earlier run) are not pushed again (`Runner.responses`)
    runner = runner_for(adapter, device=device)
    base = src.view(plan.run(runner)) if plan.count else src

    # 2. one edited copy (and one run) per distinct edit set
    # keyed by the edit tuple itself: payloads are frozen and hashable
    edited: dict[tuple[Edit, ...], tuple[Source, list[str]] | Exception] = {}
    for i, c in enumerate(claims):
        p = c.payload
        if not isinstance(p, PredictionClaim) or not isinstance(planned[i], Source):
            continue
        key = p.edits
        if key in edited:
            continue
        rows = sorted(
            set().union(
                *(
                    planned[j].rows  # type: ignore[union-attr]
                    for j, d in enumerate(claims)
                    if isinstance(d.payload, PredictionClaim)
                    and d.payload.edits == key
                    and isinstance(planned[j], Source)
                )
            )
        )
        try:
            model = edited_copy(adapter, ctx.bound, p.edits)
            r = runner_for(adapter, model.gm, device=device, ablate=model.ablate)
            # only the images its claims read
            edited[key] = (src.view(plan.run(r, rows)), model.notes)
        except Exception as exc:  # reported on each claim of this edit set
            edited[key] = exc

    # 3. measure
    outs = []
    for i, c in enumerate(claims):
        plan_i = planned[i]
        if isinstance(plan_i, Exception):
            outs.append(Outcome({}, str(plan_i), status="error"))
            continue
        p = c.payload
        if isinstance(p, CoverageClaim):
            stats, detail = _covers(ctx, p, base)
            outs.append(Outcome(stats, detail))
            continue
        subject, act = _test_of(c)
        feature = _feature(ctx, subject)
        if not isinstance(p, PredictionClaim):
            grid = _selector_grid(ctx, subject, act)
            stats, detail, implied = measure_test(feature, act, base, grid)
            outs.append(Outcome(stats, detail, implied=implied))
            continue
        e = edited[p.edits]
        if isinstance(e, Exception):
            from circuitdsl.check.context import describe_exception

            outs.append(Outcome({}, describe_exception(e), status="error"))
            continue
        after_src, edit_notes = e
        primary = PRIMARY[act.test]
        s0, _, _ = measure_test(feature, act, base)
        s1, _, _ = measure_test(feature, act, after_src)
        before, after = s0[primary], s1[primary]
        change = after - before
        scale = _effect_scale(act.test, act, s0)
        effect = change / scale
        rel, ratio = _relative(before, after)
        measured = {
            "before": before,
            "after": after,
            "change": change,
            "relative_change": rel,
            "abs_relative_change": abs(rel),
            "ratio": ratio,
            "effect": effect,
            "abs_effect": abs(effect),
        }
        size = p.size
        predicted = p.change
        if size is not None:
            v = float(size.value)
            predicted += {
                "by_at_least": f" by at least {100 * v:g}%",
                "to_above": f" to above {v:g} of before",
                "to_below": f" to below {v:g} of before",
                "within": f" within {100 * v:g}%",
            }[size.kind]
        detail = (
            f"{primary} {fmt(before)} -> {fmt(after)} (change {change:+.3g}, relative"
            f" {rel:+.1%}, {effect:+.3g} in units of {fmt(scale)}), predicted {predicted};"
            f" edit: {'; '.join(edit_notes)}"
        )
        implied = _implied_change(predicted.split()[0], size)
        outs.append(Outcome(measured, detail, implied=implied))
    return outs


def _test_of(c: Claim) -> tuple[str, ActivationTest]:
    """(subject, test) of an `activation` or `prediction` claim."""
    p = c.payload
    if isinstance(p, ActivationClaim):
        return p.subject, p.activation
    if isinstance(p, PredictionClaim):
        return p.subject, p.activation
    raise Unmeasurable(f"a {c.kind} claim carries a {type(p).__name__}, not an activation test")


def edges(claim: Claim, circuit: Any) -> list[tuple[Any, Any]]:
    """Activation claims read no weight blocks through the engine (edits copy the model)."""
    return []
