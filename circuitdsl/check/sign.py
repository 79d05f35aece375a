"""`a -> b : excites | inhibits | weak` -- the sign of a connection's total weight.

Statistic: `z = total(a->b) / RMS_i total(i->b)`, where `total` is the sum of the
kernel's weights and i runs over every channel of a's layer: the connection's net
effect in units of the typical net effect of an input into b. `abs_z = |z|`.
Defaults: excites `z >= 2`, inhibits `z <= -2`, weak `abs_z <= 0.5` (docs/claims.md,
"Calibration").
"""

from __future__ import annotations

from typing import Any

from circuitdsl.check.common import CircuitIndex, Outcome, Unmeasurable, unmeasurable
from circuitdsl.check.context import Context
from circuitdsl.language.ir import Claim, Feature

KINDS = ("sign",)


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """The one edge of a sign claim."""
    return [(circuit.feature(s), circuit.feature(d)) for s, d in claim.edges[:1]]


def edge_z(ctx: Context, src: str, dst: str) -> tuple[float, float, int, Any, int]:
    """(z, total, C_src, group, position) of one loaded edge; Unmeasurable if b has no inputs."""
    g, i = ctx.edge(src, dst)
    total, rms = g.stat("total")[i], g.stat("rms_total")[i]
    if rms <= 0:
        raise Unmeasurable(f"every input into {dst} from {g.key[0]} sums to zero; z is undefined")
    return total / rms, total, g.c_src, g, i


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """z and total for each claim (the stats were computed per layer pair, in batch)."""
    out = []
    for c in claims:
        try:
            src, dst = c.edges[0]
            z, total, n, g, i = edge_z(ctx, src, dst)
        except Unmeasurable as exc:
            out.append(unmeasurable(exc))
            continue
        detail = (
            f"{src} -> {dst}: weight sum {total:.3g} is {z:.3g} RMS of the sums of all "
            f"{n} inputs from {g.key[0]}"
        )
        kernels = {f"{src}->{dst}": g.kernel_lists()[i]}
        t = int(g.t_idx[i])
        if g.null_draws(i) is None:  # every input of the target: rows of shared tensors
            totals, zs, abs_zs = g.totals_z()
            null = {"z": zs[t], "total": totals[t], "abs_z": abs_zs[t]}
        else:
            null_total = g.null_values(i, g.totals()[t])
            null_z = null_total / g.stat("rms_total")[i]
            null = {"z": null_z, "total": null_total, "abs_z": null_z.abs()}
        out.append(Outcome({"z": z, "total": total, "abs_z": abs(z)}, detail, kernels, null=null))
    return out
