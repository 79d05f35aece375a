"""`most of the top k inputs of T from L excite | inhibit` -- a proportion over all inputs.

The inputs of target T from layer L are every channel of L, ranked by kernel L2 norm.
Statistics: `count` = how many of the top k have a positive total (`excite`; negative
for `inhibit`), `fraction = count / k`, and `p_value`, the exact binomial probability
of at least `count` such inputs among k drawn from T's inputs when each has the sign
with the probability `share`, the fraction of *all* of T's inputs with that sign (so a
target whose inputs are mostly negative anyway does not pass by that alone). Defaults:
`fraction > 0.5` and `p_value <= 0.05`. k larger than the layer is an error.
"""

from __future__ import annotations

import torch

from circuitdsl.check.aggregate import upper_tail
from circuitdsl.check.common import CircuitIndex, Outcome, Unmeasurable, each, fmt, payload_of
from circuitdsl.check.context import Context
from circuitdsl.language.ir import Claim, Feature
from circuitdsl.language.kinds import ProportionClaim


def _source(layer: str) -> Feature:
    """A stand-in source feature that makes the engine load the whole layer pair."""
    return Feature(f"{layer}:*", layer, (0,), (1.0,))


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """One edge from the source layer into the target: its group holds every input."""
    layer = payload_of(claim, ProportionClaim).layer
    return [(_source(layer), circuit.feature(claim.subjects[0]))]


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Count, fraction and binomial p-value of each claim's top inputs."""
    return each(claims, lambda c: _one(c, ctx))


def _one(c: Claim, ctx: Context) -> Outcome:
    claim = payload_of(c, ProportionClaim)
    layer, k, sign = claim.layer, int(claim.k), claim.sign
    target = c.subjects[0]
    g, i = ctx.edge(f"{layer}:*", target)
    inputs = g.inputs[int(g.t_idx[i])]  # [C_src, kh, kw]
    if k > g.c_src:
        raise Unmeasurable(f"{layer} has only {g.c_src} channels; top {k} is not defined")
    norms = inputs.flatten(1).norm(dim=1)
    totals = inputs.sum(dim=(1, 2))
    want = totals > 0 if sign == "excite" else totals < 0
    top = torch.argsort(norms, descending=True)[:k]
    count = int(want[top].sum())
    share = float(want.double().mean())
    p = upper_tail([share] * k, count)
    detail = (
        f"{count} of the top {k} inputs of {target} from {layer} {sign} "
        f"({fmt(share * 100)} % of all {g.c_src} do); binomial p = {fmt(p)}"
    )
    return Outcome(
        {"fraction": count / k, "count": float(count), "p_value": p, "share": share}, detail
    )
