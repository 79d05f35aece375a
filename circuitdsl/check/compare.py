"""`a -> b stronger than c -> d` -- the ratio of two connections' kernel L2 norms.

`ratio = ||K(edge0)||_2 / ||K(edge1)||_2`. Default `ratio >= 1`. The two edges may
lie in different layer pairs (each is read from its own batch).
"""

from __future__ import annotations

from circuitdsl.check.common import CircuitIndex, Outcome, Unmeasurable, each, fmt
from circuitdsl.check.context import Context
from circuitdsl.language.ir import Claim, Feature

KINDS = ("compare",)


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """Both edges of the comparison."""
    return [(circuit.feature(s), circuit.feature(d)) for s, d in claim.edges[:2]]


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """The norm ratio of each claim's two edges."""
    return each(claims, lambda c: _measure_all([c], ctx)[0])


def _measure_all(claims: list[Claim], ctx: Context) -> list[Outcome]:
    out = []
    for c in claims:
        if len(c.edges) != 2:
            raise Unmeasurable("a comparison needs exactly two connections")
        measure_ = str(c.args.get("measure", "norm"))
        if measure_ != "norm":
            raise Unmeasurable(f"unknown comparison measure `{measure_}` (known: norm)")
        (g0, i0), (g1, i1) = ctx.edge(*c.edges[0]), ctx.edge(*c.edges[1])
        n0, n1 = g0.stat("norm")[i0], g1.stat("norm")[i1]
        e0, e1 = (f"{s}->{d}" for s, d in c.edges)
        if n1 <= 0:
            raise Unmeasurable(f"the kernel {e1} is all zeros; the ratio is undefined")
        ratio = n0 / n1
        detail = f"kernel norm of {e0} ({fmt(n0)}) is {fmt(ratio)}x that of {e1} ({fmt(n1)})"
        # null: the first connection's source replaced by every input of its target
        null_norms = g0.null_kernels(i0).flatten(1).norm(dim=1)
        out.append(
            Outcome(
                {"ratio": ratio, "norm_first": n0, "norm_second": n1},
                detail,
                {e0: g0.kernel_lists()[i0], e1: g1.kernel_lists()[i1]},
                null={"ratio": null_norms / n1},
            )
        )
    return out
