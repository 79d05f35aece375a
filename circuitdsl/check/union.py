"""`a | b | c -> d : excites` -- a union: the sign claim holds for every member.

Each member edge gets the sign claim's statistic `z` (see sign.py). The union
reports the weakest member (its `z` and `total`; weakest = min z for excites, max z
for inhibits, max |z| for weak), so the sign claim's threshold on it holds exactly when it
holds for each member; every member's own value is reported as `z[member]`.
"""

from __future__ import annotations

from circuitdsl.check.common import CircuitIndex, Outcome, Unmeasurable, each, fmt, payload_of
from circuitdsl.check.context import Context
from circuitdsl.check.sign import edge_z
from circuitdsl.language.ir import Claim, Feature
from circuitdsl.language.kinds import UnionClaim


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """Every member edge."""
    return [(circuit.feature(s), circuit.feature(d)) for s, d in claim.edges]


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Member z values and the weakest of them."""
    return each(claims, lambda c: _measure_all([c], ctx)[0])


def _measure_all(claims: list[Claim], ctx: Context) -> list[Outcome]:
    out = []
    for c in claims:
        if not c.edges:
            raise Unmeasurable("a union needs at least one member")
        sign = payload_of(c, UnionClaim).sign
        zs: dict[str, float] = {}
        totals: dict[str, float] = {}
        kernels = {}
        for src, dst in c.edges:
            z, total, _, g, i = edge_z(ctx, src, dst)
            zs[src], totals[src] = z, total
            kernels[f"{src}->{dst}"] = g.kernel_lists()[i]
        if sign == "inhibits":
            worst = max(zs, key=lambda s: zs[s])
        elif sign == "weak":
            worst = max(zs, key=lambda s: abs(zs[s]))
        else:
            worst = min(zs, key=lambda s: zs[s])
        measured = {"z": zs[worst], "total": totals[worst], "abs_z": abs(zs[worst])}
        measured.update({f"z[{s}]": v for s, v in zs.items()})
        detail = (
            f"weakest of {len(zs)} members into {c.edges[0][1]} is {worst} with z = "
            f"{fmt(zs[worst])}"
        )
        out.append(Outcome(measured, detail, kernels))
    return out
