"""Check every claim of a circuit against a bound model: `check(circuit, bound) -> Report`.

The engine works in three passes so that large specs stay fast:

1. ask each claim's handler which (source, target) feature edges it needs;
2. group the edges by (source layer, target layer), fetch each weight block once and
   gather all kernels of the group with one indexing op (`context.Group`);
3. run each kind's handler on all claims of that kind at once; handlers read per-edge
   statistics that were computed for a whole group with tensor ops.

Nothing raises out of `check`: a claim that cannot be measured (a region claim on a
1x1 kernel, a layer pair the model cannot connect, a handler bug) gets status
`error` with a one-sentence detail.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
from collections.abc import Callable
from typing import Any

import torch

from circuitdsl.check.common import (
    CircuitIndex,
    Outcome,
    Unmeasurable,
    null_summaries,
    verdict,
)
from circuitdsl.check.context import Context, describe_exception
from circuitdsl.language.claims import KINDS
from circuitdsl.language.ir import Circuit, Claim, Feature
from circuitdsl.models.base import ModelAdapter
from circuitdsl.models.bind import Bound
from circuitdsl.report.model import ClaimResult, Report

BatchHandler = Callable[[list[Claim], Context], list[Outcome]]
EdgeFn = Callable[[Claim, CircuitIndex], list[tuple[Feature, Feature]]]
Progress = Callable[[int, int], None]


class _Kind:
    __slots__ = ("edges", "measure")

    def __init__(self, measure: BatchHandler, edges: EdgeFn | None) -> None:
        self.measure = measure
        self.edges = edges or (lambda claim, circuit: [])


def _registered(kind: str) -> _Kind | None:
    """The handler the claim-kind registry names for `kind` (its module's `measure`
    and `edges`), or None for a kind the registry does not know."""
    spec = KINDS.get(kind)
    if spec is None:
        return None
    mod = importlib.import_module(spec.handler)
    return _Kind(mod.measure, getattr(mod, "edges", None))


# handlers given with `register_handler`, which take precedence over the registry's
_HANDLERS: dict[str, _Kind] = {}

NOT_MEASURED: dict[str, str] = {}  # kinds without a handler yet, and why


def register_handler(
    kind: str,
    fn: Callable[..., Any],
    *,
    edges: EdgeFn | None = None,
    batch: bool = False,
) -> None:
    """Make the checker measure claims of `kind` with `fn`.

    With `batch=False` (the default) `fn(claim, ctx)` returns an `Outcome` or a
    `(measured, detail)` tuple for one claim; with `batch=True`, `fn(claims, ctx)`
    returns one `Outcome` per claim. `ctx` is a `circuitdsl.check.context.Context`
    (`ctx.circuit`, `ctx.bound`, `ctx.adapter`, `ctx.edge(src, dst)`); `edges(claim,
    circuit)` lists the (source, target) features whose weights it needs loaded.
    Raise `circuitdsl.check.common.Unmeasurable` for a claim that cannot be measured.
    """

    def one_by_one(claims: list[Claim], ctx: Context) -> list[Outcome]:
        out = []
        for c in claims:
            r = fn(c, ctx)
            out.append(r if isinstance(r, Outcome) else Outcome(dict(r[0]), str(r[1])))
        return out

    def as_floats(claims: list[Claim], ctx: Context) -> list[Outcome]:
        # a user's handler may report ints or numpy scalars; reports hold floats
        outs = (fn if batch else one_by_one)(claims, ctx)
        for o in outs:
            o.measured = {k: float(v) for k, v in o.measured.items()}
        return outs

    _HANDLERS[kind] = _Kind(as_floats, edges)


def unregister_handler(kind: str) -> None:
    """Forget a handler registered with `register_handler` (registry kinds stay)."""
    _HANDLERS.pop(kind, None)


def handler_of(kind: str) -> _Kind | None:
    """The handler that measures claims of `kind`: a registered one, else the registry's."""
    return _HANDLERS.get(kind) or _registered(kind)


def check(
    circuit: Circuit,
    bound: Any,
    *,
    progress: Progress | None = None,
    threads: int | None = 1,
    device: str = "cpu",
    control: str | None = None,
    control_seed: int = 0,
) -> Report:
    """Measure every claim of `circuit` on `bound` and return the report.

    `control` ("null", "negated", "shuffled"; `circuitdsl.check.controls`) measures
    the claims on a control version of the weights instead: every pass is a false pass.

    `bound` provides `block(src_layer, dst_layer) -> Tensor[C_dst, C_src, kh, kw]`
    (a `circuitdsl.models.bind.BoundCircuit`, or `circuitdsl.check.memory.TensorBound`), and,
    for `within` / `banding` claims, an adapter with `branch_of` / layer kernels.
    `progress(done, total)` is called with the number of claims measured so far, after
    the weights are loaded and after each claim kind. Results come back in the
    circuit's claim order.

    `device` is where activation claims run the model ("cpu", "cuda").

    `threads` sets torch's intra-op threads for the checker's own tensor work (None
    leaves the setting alone); computing expanded weights keeps the caller's setting.
    The default is 1: the checker runs thousands of small tensor ops, where a thread
    pool costs more than it gives, badly so on a shared machine (bench/check.py:
    10,000 claims took 0.35-0.76 s with 1 thread and 0.28-5.5 s with 2 on two shared
    cores; see docs/claims.md).
    """
    # A large spec makes tens of thousands of small result objects; the cyclic GC
    # would rescan them (and the model) again and again. Nothing here makes cycles.
    if control is not None:
        from circuitdsl.check.controls import ControlBound

        bound = ControlBound(as_bound(circuit, bound), control, control_seed)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        report = _check(circuit, bound, progress, threads, device)
        return dataclasses.replace(report, control=control) if control else report
    finally:
        if was_enabled:
            gc.enable()


def _check(
    circuit: Circuit, bound: Any, progress: Progress | None, threads: int | None, device: str
) -> Report:
    bound = as_bound(circuit, bound)
    ctx = Context(circuit, bound)
    ctx.device = device
    results: dict[str, ClaimResult] = {}
    needed: dict[str, list[tuple[Feature, Feature]]] = {}
    by_kind: dict[str, list[Claim]] = {}
    from circuitdsl.check.controls import ControlBound

    under_control = bound.kind if isinstance(bound, ControlBound) else None
    handlers: dict[str, _Kind | None] = {}
    for c in circuit.claims:
        if c.kind not in handlers:
            handlers[c.kind] = handler_of(c.kind)
        h = handlers[c.kind]
        if under_control and c.kind in ("activation", "prediction"):
            msg = f"not measured under --control {under_control}: the control changes weights"
            results[c.id] = _result(c, circuit, Outcome({}, msg + " only", status="error"))
            continue
        if h is None:
            msg = NOT_MEASURED.get(c.kind, f"claims of kind `{c.kind}` are not measured")
            results[c.id] = _result(c, circuit, Outcome({}, msg, status="error"))
            continue
        try:
            needed[c.id] = h.edges(c, ctx.index)
        except Exception as exc:  # a claim naming something unknown: report, go on
            results[c.id] = _error(c, circuit, exc)
            continue
        by_kind.setdefault(c.kind, []).append(c)

    old_threads = torch.get_num_threads()
    ctx.caller_threads = old_threads  # model forward passes (activation claims) use these
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        # computing expanded weights (big convolutions) keeps the caller's threads
        ctx.load([e for es in needed.values() for e in es], fetch_threads=old_threads)
        _measure_kinds(ctx, by_kind, needed, results, progress)
    finally:
        torch.set_num_threads(old_threads)
    from circuitdsl.check.aggregate import aggregates

    return Report(
        spec=circuit.path,
        model=bound.name,
        weights=bound.weights_path,
        claims=tuple(results[c.id] for c in circuit.claims),
        circuit=circuit.name,
        aggregates=aggregates(circuit.claims, results),
    )


def _measure_kinds(
    ctx: Context,
    by_kind: dict[str, list[Claim]],
    needed: dict[str, list[tuple[Feature, Feature]]],
    results: dict[str, ClaimResult],
    progress: Progress | None,
) -> None:
    circuit = ctx.circuit
    total = len(circuit.claims)
    done = len(results)
    if progress is not None:
        progress(done, total)

    for kind, claims in by_kind.items():
        h = handler_of(kind)
        assert h is not None  # `_check` only groups claims that have a handler
        if not ctx.group_errors and not ctx.edge_errors:
            ready = claims  # the common case: no per-claim lookups
        else:
            ready = []
            for c in claims:
                bad = _group_error(ctx, needed[c.id])
                if bad is None:
                    ready.append(c)
                else:
                    results[c.id] = _result(c, circuit, Outcome({}, bad, status="error"))
        pairs = _measure(h.measure, ready, ctx)
        with_null = [(c, o) for c, o in pairs if o.null is not None and o.status is None]
        summaries = null_summaries([c for c, _ in with_null], [o for _, o in with_null])
        for (_, o), summary in zip(with_null, summaries, strict=True):
            o.measured.update(summary)
            o.null = None  # the tensors are not kept past the verdict
        for c, outcome in pairs:
            results[c.id] = _result(c, circuit, outcome)
        done += len(claims)
        if progress is not None:
            progress(done, total)


def _measure(fn: BatchHandler, claims: list[Claim], ctx: Context) -> list[tuple[Claim, Outcome]]:
    """Run a batch; if it fails, rerun claim by claim so only the bad claims are errors."""
    if not claims:
        return []
    try:
        outs = fn(claims, ctx)
        if len(outs) != len(claims):
            raise RuntimeError(f"handler returned {len(outs)} outcomes for {len(claims)} claims")
        return list(zip(claims, outs, strict=True))
    except Exception:
        if len(claims) == 1:
            c = claims[0]
            try:
                return [(c, fn([c], ctx)[0])]
            except Exception as exc:
                return [(c, Outcome({}, describe_exception(exc), status="error"))]
    pairs = []
    for c in claims:
        pairs.extend(_measure(fn, [c], ctx))
    return pairs


def _group_error(ctx: Context, edges: list[tuple[Feature, Feature]]) -> str | None:
    for s, d in edges:
        msg = ctx.problem(s.name, d.name)
        if msg is not None:
            return msg
    return None


def _source(c: Claim, circuit: Circuit) -> str:
    return c.span.location if c.span is not None else circuit.path


def _result(c: Claim, circuit: Circuit, outcome: Outcome) -> ClaimResult:
    status, expected, detail = verdict(c, outcome)
    return ClaimResult(
        id=c.id,
        status=status,
        text=c.text,
        source=_source(c, circuit),
        measured=outcome.measured,  # handlers report Python floats
        expected=expected,
        detail=detail,
        kind=c.kind,
        edges=c.edges,
        kernels=outcome.kernels,
    )


def _error(c: Claim, circuit: Circuit, exc: BaseException) -> ClaimResult:
    return _result(c, circuit, Outcome({}, describe_exception(exc), status="error"))


def as_bound(circuit: Circuit, bound: Bound | ModelAdapter) -> Bound:
    """`bound` itself, or a model adapter given directly as a `Bound` without features."""
    if isinstance(bound, ModelAdapter):
        from circuitdsl.models.bind import BoundCircuit

        return BoundCircuit(circuit, bound, {})
    if not isinstance(bound, Bound):
        raise TypeError(
            f"check() needs a BoundCircuit, a TensorBound or a ModelAdapter, not"
            f" {type(bound).__name__}"
        )
    return bound


__all__ = [
    "NOT_MEASURED",
    "Unmeasurable",
    "check",
    "register_handler",
    "unregister_handler",
]
