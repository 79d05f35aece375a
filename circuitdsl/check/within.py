"""`F within branch L` -- the channels of a feature or family lie in a branch layer.

`fraction = #{channels c of the subjects : branch_of(layer, c) is L} / #channels`,
with `branch_of` from the model adapter (a mixed layer's concatenated channel ->
(branch layer, index)). Default `fraction >= 1` (all of them). A model without
branches, or a layer that is not a concatenation, is an error.
"""

from __future__ import annotations

from collections.abc import Callable

from circuitdsl.check.common import (
    CircuitIndex,
    Outcome,
    Unmeasurable,
    each,
    nodes_of,
    payload_of,
)
from circuitdsl.check.context import Context
from circuitdsl.language.ir import Claim, Feature
from circuitdsl.language.kinds import WithinClaim


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """No weights are needed."""
    return []


def _branch_of(ctx: Context) -> Callable[[str, int], tuple[str, int] | None]:
    return ctx.bound.branch_of


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """The fraction of subject channels in the named branch."""
    return each(claims, lambda c: _measure_all([c], ctx)[0])


def _measure_all(claims: list[Claim], ctx: Context) -> list[Outcome]:
    branch_of = _branch_of(ctx)
    out = []
    for c in claims:
        branch = payload_of(c, WithinClaim).branch
        feats = [f for s in (c.subjects or ()) for f in nodes_of(ctx.index, s)]
        if not feats:
            raise Unmeasurable("the claim names no feature")
        inside, total, unbranched, elsewhere = 0, 0, 0, []
        for f in feats:
            for ch in f.channels:
                total += 1
                where = branch_of(f.layer, ch)
                if where is None:
                    unbranched += 1
                elif where[0] == branch:
                    inside += 1
                else:
                    elsewhere.append(f"{f.layer}:{ch} ({where[0]})")
        if unbranched == total:
            raise Unmeasurable(
                f"layer {feats[0].layer} has no branches in this model, so `within` cannot "
                "be measured"
            )
        frac = inside / total
        detail = f"{inside} of {total} channels are in {branch}" + (
            f"; outside: {', '.join(elsewhere[:5])}" + (" ..." if len(elsewhere) > 5 else "")
            if elsewhere
            else ""
        )
        if unbranched:
            detail += f"; {unbranched} are in no branch"
        out.append(
            Outcome({"fraction": frac, "inside": float(inside), "channels": float(total)}, detail)
        )
    return out
