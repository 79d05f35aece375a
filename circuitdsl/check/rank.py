"""`a -> b : among top k inputs of b` -- a's rank among every channel of its layer.

Strength of an input i into b: polarity `any` -> the kernel's L2 norm;
`excitatory` -> its signed total; `inhibitory` -> minus its signed total.
`rank = 1 + #{channels i of a's layer : strength(i) > strength(a)}` (1 = strongest;
a channel is not compared with itself). `strength` is reported relative to the RMS
over all channels (norm / RMS norm, or z for the signed polarities).
Verdict: `rank <= k`, k from the claim (a spec threshold on `rank` overrides it).
"""

from __future__ import annotations

import math

import torch

from circuitdsl.check.common import CircuitIndex, Outcome, Unmeasurable, each, payload_of
from circuitdsl.check.context import Context, Group
from circuitdsl.language.ir import Claim, Feature, Threshold
from circuitdsl.language.kinds import RankClaim

_POLARITIES = ("any", "excitatory", "inhibitory")


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """The one edge of a rank claim."""
    return [(circuit.feature(s), circuit.feature(d)) for s, d in claim.edges[:1]]


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Rank and relative strength, computed per (layer pair, polarity) in one go."""
    wanted: dict[tuple[int, str], tuple[Group, list[int]]] = {}
    for c in claims:
        if ctx.problem(*c.edges[0]) is None:
            g, i = ctx.edge(*c.edges[0])
            pol = payload_of(c, RankClaim).polarity
            wanted.setdefault((id(g), pol), (g, []))[1].append(i)
    for (_, pol), (g, positions) in wanted.items():
        if pol in _POLARITIES:
            g.ranks(positions, pol)
    return each(claims, lambda c: _measure_all([c], ctx)[0])


def _measure_all(claims: list[Claim], ctx: Context) -> list[Outcome]:
    out = []
    for c in claims:
        src, dst = c.edges[0]
        p = payload_of(c, RankClaim)
        polarity = p.polarity
        if polarity not in _POLARITIES:
            raise Unmeasurable(f"unknown polarity `{polarity}`")
        k = int(p.k)
        g, i = ctx.edge(src, dst)
        rank, strength = g.ranks([i], polarity)[i]
        if math.isnan(strength):
            raise Unmeasurable(f"every input into {dst} is zero; no rank is defined")
        by = {
            "any": "kernel norm",
            "excitatory": "excitatory total",
            "inhibitory": "inhibitory total",
        }[polarity]
        detail = f"{src} ranks {rank} of {g.c_src} inputs into {dst} by {by} (claimed top {k})"
        out.append(
            Outcome(
                {"rank": float(rank), "strength": strength},
                detail,
                {f"{src}->{dst}": g.kernel_lists()[i]},
                implied=(Threshold("rank", "<=", float(k)),),
                # every input of the target has one rank from 1 to C (ties aside)
                null={"rank": torch.arange(1, g.c_src + 1, dtype=torch.float64)},
            )
        )
    return out
