"""Comparisons of two connections `a -> c WORDS b -> d`.

* `stronger than` (measure `norm`): `ratio = ||K(edge0)||_2 / ||K(edge1)||_2`; sign-blind
  (a strongly inhibitory kernel is "stronger" too). Default `ratio >= 1.6`: a tie margin
  (two equal kernels, or a tie flipped by seed noise, do not pass), calibrated so that
  chance passes stay under 5 % (docs/claims.md, "Calibration").
* `excites more than` / `inhibits more than` (measures `excites` / `inhibits`):
  `difference = z(edge0) - z(edge1)` (`z(edge1) - z(edge0)` for inhibits), each z the
  connection's weight sum over the RMS of all inputs of its own target (as for sign
  claims). Default `difference >= 2.5`.
* `similar to` / `opposite to`: `cosine` between the two kernels (uncentred, on the
  centred part both kernels have, the smaller effective size). Defaults `cosine >= 0.5` /
  `cosine <= -0.5`. A zero kernel is an error.

The two edges may lie in different layer pairs (each is read from its own batch). The
null replaces edge 0's source by every input of its target except edge 1's own source
(`b -> t similar to b -> t` is true, not chance: in a 16-input layer it made 1 null
source in 16 pass `similar to`).
"""

from __future__ import annotations

import torch

from circuitdsl.check.common import (
    CircuitIndex,
    Outcome,
    Unmeasurable,
    crop,
    each,
    fmt,
    payload_of,
)
from circuitdsl.check.context import Context, Group
from circuitdsl.language.ir import Claim, Feature
from circuitdsl.language.kinds import CompareClaim

MEASURES = ("norm", "excites", "inhibits", "similar", "opposite")


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """Both edges of the comparison."""
    return [(circuit.feature(s), circuit.feature(d)) for s, d in claim.edges[:2]]


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """The comparison statistic of each claim's two edges."""
    return each(claims, lambda c: _one(c, ctx))


def _z(g: Group, i: int) -> float:
    rms = g.stat("rms_total")[i]
    if rms <= 0:
        raise Unmeasurable(f"every input into {g.edges[i][1].name} sums to zero; z is undefined")
    return float(g.stat("total")[i]) / float(rms)


def _others(g0: Group, i0: int, g1: Group, i1: int) -> torch.Tensor | slice:
    """The rows of edge 0's null to keep: all but edge 1's source, where it is among them."""
    s1 = g1.edges[i1][0]
    same_target = g0.key == g1.key and int(g0.t_idx[i0]) == int(g1.t_idx[i1])
    if not same_target or not s1.is_channel or g0.null_draws(i0) is not None:
        return slice(None)
    keep = torch.ones(g0.c_src, dtype=torch.bool)
    keep[s1.channels[0]] = False
    return keep


def _one(c: Claim, ctx: Context) -> Outcome:
    if len(c.edges) != 2:
        raise Unmeasurable("a comparison needs exactly two connections")
    how = payload_of(c, CompareClaim).measure
    if how not in MEASURES:
        raise Unmeasurable(f"unknown comparison measure `{how}` (known: {', '.join(MEASURES)})")
    (g0, i0), (g1, i1) = ctx.edge(*c.edges[0]), ctx.edge(*c.edges[1])
    e0, e1 = (f"{s}->{d}" for s, d in c.edges)
    kernels = {e0: g0.kernel_lists()[i0], e1: g1.kernel_lists()[i1]}
    keep = _others(g0, i0, g1, i1)
    if how == "norm":
        n0, n1 = g0.stat("norm")[i0], g1.stat("norm")[i1]
        if n1 <= 0:
            raise Unmeasurable(f"the kernel {e1} is all zeros; the ratio is undefined")
        ratio = n0 / n1
        detail = f"kernel norm of {e0} ({fmt(n0)}) is {fmt(ratio)}x that of {e1} ({fmt(n1)})"
        null_norms = g0.null_kernels(i0)[keep].flatten(1).norm(dim=1)
        return Outcome(
            {"ratio": ratio, "norm_first": n0, "norm_second": n1},
            detail,
            kernels,
            null={"ratio": null_norms / n1},
        )
    if how in ("excites", "inhibits"):
        z0, z1 = _z(g0, i0), _z(g1, i1)
        sign = 1.0 if how == "excites" else -1.0
        diff = sign * (z0 - z1)
        null_z0 = g0.null_values(i0, g0.totals()[int(g0.t_idx[i0])]) / g0.stat("rms_total")[i0]
        detail = f"{e0} has z {fmt(z0)}, {e1} z {fmt(z1)}: {how[:-1]}ion differs by {fmt(diff)} RMS"
        return Outcome(
            {"difference": diff, "z_first": z0, "z_second": z1},
            detail,
            kernels,
            null={"difference": sign * (null_z0 - z1)[keep]},
        )
    # similar / opposite: cosine on the common centred part
    (h0, w0), (h1, w1) = g0.stat("eff")[i0], g1.stat("eff")[i1]
    h, w = min(h0, h1), min(w0, w1)
    k0, k1 = crop(g0.kern[i0], h, w).flatten(), crop(g1.kern[i1], h, w).flatten()
    n0, n1 = float(k0.norm()), float(k1.norm())
    if n0 <= 0 or n1 <= 0:
        raise Unmeasurable(f"a kernel of {e0} / {e1} is all zeros; the cosine is undefined")
    cos = float(k0 @ k1) / (n0 * n1)
    null_k = crop(g0.null_kernels(i0)[keep], h, w).flatten(1)
    null_cos = (null_k @ k1) / (null_k.norm(dim=1) * n1).clamp_min(1e-30)
    null_cos = torch.where(null_k.norm(dim=1) > 0, null_cos, torch.nan)
    detail = f"the kernels of {e0} and {e1} have cosine {fmt(cos)} ({h}x{w})"
    return Outcome({"cosine": cos}, detail, kernels, null={"cosine": null_cos})
