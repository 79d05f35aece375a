"""`A -> B : equivariant under rotation(p) | reflection(p) | scale(p)` (families A, B).

Each connection (a, b) between members is compared with the connection (a', b') that
the transformation maps it to, and the kernels must match after transforming:

* rotation(p): for every (a, b) and every other target b', a' is the source whose
  relative parameter `p(a') - p(b')` is nearest to `p(a) - p(b)` (circular, modulo
  360 deg or the claim's `period`, e.g. 180 for lines); K(a', b') is compared with
  K(a, b) rotated counter-clockwise (x right, y up) by `phi = p(b') - p(b)`.
* reflection(p): members are paired with their mirror image -- for an angle
  parameter the member nearest to `180 - p` (a left-right flip), otherwise the two
  values of the parameter are swapped, the i-th member with one value pairing with
  the i-th member with the other; a family with one value maps to itself. K(a', b')
  is compared with K(a, b) flipped left-right.
* scale(p): a' is the source whose ratio `p(a')/p(a)` is nearest (in log) to
  `p(b')/p(b)`; K(a', b') is compared with K(a, b) magnified by `p(b')/p(b)`.

Transforms resample bilinearly (`torch.nn.functional.grid_sample`, zeros outside).
Statistic: `correlation` = mean Pearson correlation of the compared kernel pairs,
taken inside the disc inscribed in the kernel for rotation and scale (corners leave
the grid), over whole kernels for reflection (exact on the grid); `pairs` = number
of comparisons. Informational: `baseline` = the same mean without transforming (high
for kernels that all look alike), `opposite` = rotating the other way (tells whether
the family's angles run clockwise), `param_error` = mean mismatch of the nearest
partner's parameter. Default
`correlation >= 0.5`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from circuitdsl.check.common import (
    CircuitIndex,
    Outcome,
    Unmeasurable,
    crop,
    each,
    fmt,
    nodes_of,
    payload_of,
    pearson,
)
from circuitdsl.check.context import Context
from circuitdsl.language.ir import Claim, Feature
from circuitdsl.language.kinds import EquivarianceClaim


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """Every member-to-member edge between the two families."""
    src, dst = claim.edges[0]
    return [(a, b) for a in nodes_of(circuit, src) for b in nodes_of(circuit, dst)]


def _circ(d: float, period: float) -> float:
    """Signed circular difference in (-period/2, period/2]."""
    d = math.fmod(d, period)
    if d > period / 2:
        d -= period
    elif d <= -period / 2:
        d += period
    return d


def _circ_t(d: torch.Tensor, period: float) -> torch.Tensor:
    """`_circ` elementwise: signed circular differences in (-period/2, period/2]."""
    d = torch.remainder(d, period)
    return torch.where(d > period / 2, d - period, d)


def _value(f: Feature, param: str) -> float | str:
    try:
        return f.param(param)
    except KeyError:
        raise Unmeasurable(f"{f.name} has no parameter `{param}`") from None


def _num(f: Feature, param: str) -> float:
    v = _value(f, param)
    if isinstance(v, str):
        raise Unmeasurable(f"parameter `{param}` of {f.name} is a label, not a number")
    return float(v)


def resample(k: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply affine maps to kernels: `out(p) = k(theta[n] @ p)` with p = (x right, y up).

    k: [n, h, w]; theta: [n, 2, 2] acting on centred cell coordinates.
    """
    n, h, w = k.shape
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    x, y = cols - (w - 1) / 2, (h - 1) / 2 - rows
    p = torch.stack([x.flatten(), y.flatten()])  # [2, P]
    q = theta.to(torch.float32) @ p  # [n, 2, P]
    # grid_sample's normalised coords: x in [-1, 1] left->right, y in [-1, 1] top->bottom,
    # with align_corners=True mapping -1/+1 to the centres of the edge cells
    gx = q[:, 0] / max((w - 1) / 2, 1e-9)
    gy = -q[:, 1] / max((h - 1) / 2, 1e-9)
    grid = torch.stack([gx, gy], dim=-1).view(n, h, w, 2)
    return F.grid_sample(
        k[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )[:, 0]


def _rot(phi_deg: torch.Tensor) -> torch.Tensor:
    """Inverse-rotation matrices: sampling at R(-phi) p rotates the image by +phi."""
    t = torch.deg2rad(phi_deg.to(torch.float64))
    c, s = torch.cos(t), torch.sin(t)
    return torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)


def _disc(h: int, w: int) -> torch.Tensor:
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    x, y = cols - (w - 1) / 2, (h - 1) / 2 - rows
    return (x**2 + y**2).sqrt() <= min(h - 1, w - 1) / 2 + 1e-6


def _mirror_map(members: list[Feature], param: str) -> dict[str, Feature]:
    values = [_value(m, param) for m in members]
    if all(not isinstance(v, str) for v in values):
        out = {}
        for m, v in zip(members, values, strict=True):
            want = 180.0 - float(v)
            out[m.name] = min(
                members, key=lambda o: abs(_circ(float(_value(o, param)) - want, 360.0))
            )
        return out
    distinct = list(dict.fromkeys(str(v) for v in values))
    if len(distinct) == 1:
        return {m.name: m for m in members}
    if len(distinct) != 2:
        raise Unmeasurable(
            f"reflection({param}) needs a parameter with two values (e.g. left/right); "
            f"found {len(distinct)}"
        )
    one = [m for m, v in zip(members, values, strict=True) if str(v) == distinct[0]]
    two = [m for m, v in zip(members, values, strict=True) if str(v) == distinct[1]]
    if len(one) != len(two):
        raise Unmeasurable(
            f"reflection({param}): {len(one)} members are `{distinct[0]}` but {len(two)} "
            f"are `{distinct[1]}`; they must pair up"
        )
    out = {}
    for a, b in zip(one, two, strict=True):
        out[a.name], out[b.name] = b, a
    return out


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Mean correlation of transformed kernels for each family-to-family claim."""
    return each(claims, lambda c: _one(c, ctx))


def _one(c: Claim, ctx: Context) -> Outcome:
    p = payload_of(c, EquivarianceClaim)
    transform, param = p.transform, p.param
    period = float(p.period or 360.0)
    src_name, dst_name = c.edges[0]
    A, B = nodes_of(ctx.index, src_name), nodes_of(ctx.index, dst_name)
    # each comparison: (a, b, a2, b2) as member indices, and the transform's amount
    quads: list[tuple[int, int, int, int]] = []
    amounts: list[float] = []
    errors: list[float] = []
    if transform == "rotation":
        pa = torch.tensor([_num(a, param) for a in A], dtype=torch.float64)
        pb = torch.tensor([_num(b, param) for b in B], dtype=torch.float64)
        # resid[a, b, b2, a2] = how far (a2, b2) is from the relative angle of (a, b);
        # the nearest partner a2 of every (a, b, b2) in one tensor op
        rel = pa[:, None] - pb[None, :]  # [A, B]
        want = rel[:, :, None, None] + pb[None, None, :, None]  # [A, B, B2, 1]
        resid = _circ_t(pa[None, None, None, :] - want, period).abs()
        err_t, best_t = resid.min(dim=3)
        err, best = err_t.tolist(), best_t.tolist()
        turn = _circ_t(pb[None, :] - pb[:, None], period).tolist()  # [B, B2]
        for ia in range(len(A)):
            for ib in range(len(B)):
                for ib2 in range(len(B)):
                    if ib2 != ib:
                        quads.append((ia, ib, best[ia][ib][ib2], ib2))
                        amounts.append(turn[ib][ib2])
                        errors.append(err[ia][ib][ib2])
    elif transform == "reflection":
        ma, mb = _mirror_map(A, param), _mirror_map(B, param)
        ia_of = {a.name: n for n, a in enumerate(A)}
        ib_of = {b.name: n for n, b in enumerate(B)}
        seen = set()
        for ia, a in enumerate(A):
            for ib, b in enumerate(B):
                ia2, ib2 = ia_of[ma[a.name].name], ib_of[mb[b.name].name]
                key = frozenset([(ia, ib), (ia2, ib2)])
                if key not in seen:
                    seen.add(key)
                    quads.append((ia, ib, ia2, ib2))
                    amounts.append(0.0)
                    errors.append(0.0)
    elif transform == "scale":
        sa = [_num(a, param) for a in A]
        sb = [_num(b, param) for b in B]
        if min(sa + sb) <= 0:
            raise Unmeasurable(f"scale({param}) needs positive parameter values")
        for ia in range(len(A)):
            for ib in range(len(B)):
                for ib2 in range(len(B)):
                    if ib2 == ib:
                        continue
                    ratio = sb[ib2] / sb[ib]
                    off = [abs(math.log(sa[o] / sa[ia] / ratio)) for o in range(len(A))]
                    ia2 = min(range(len(A)), key=off.__getitem__)
                    quads.append((ia, ib, ia2, ib2))
                    amounts.append(ratio)
                    errors.append(off[ia2])
    else:
        raise Unmeasurable(f"unknown transform `{transform}` (known: rotation, reflection, scale)")
    if not quads:
        raise Unmeasurable("the families give no pair of connections to compare")

    # every member-to-member edge once, then both sides of all comparisons by indexing
    located = [[ctx.edge(a.name, b.name) for b in B] for a in A]
    groups = {id(gg) for row in located for gg, _ in row}
    if len(groups) != 1:
        raise Unmeasurable("the members of each family must lie in one layer")
    g = located[0][0][0]
    pos = torch.tensor([[i for _, i in row] for row in located])  # [A, B]
    eff = g.stat("eff")
    used = pos.flatten().tolist()
    eh = max(eff[i][0] for i in used)
    ew = max(eff[i][1] for i in used)
    if eh == 1 and ew == 1:
        raise Unmeasurable("the connections are 1x1 kernels: there is nothing to transform")
    q = torch.tensor(quads)
    i1, i2 = pos[q[:, 0], q[:, 1]], pos[q[:, 2], q[:, 3]]
    k1, k2 = crop(g.kern[i1], eh, ew), crop(g.kern[i2], eh, ew)
    amount = torch.tensor(amounts, dtype=torch.float64)
    opposite = float("nan")
    if transform == "rotation":
        moved = resample(k1, _rot(amount))
        opposite = _mean(pearson(resample(k1, _rot(-amount)), k2, _disc(eh, ew)))
    elif transform == "reflection":
        # a flip is exact on the grid: compare whole kernels, no disc needed
        moved = torch.flip(k1, dims=[-1])
        disc = torch.ones(eh, ew, dtype=torch.bool)
    else:
        inv = (1.0 / amount)[:, None, None] * torch.eye(2, dtype=torch.float64)
        moved = resample(k1, inv)
    if transform != "reflection":
        disc = _disc(eh, ew)
    corr = _mean(pearson(moved, k2, disc))
    baseline = _mean(pearson(k1, k2, disc))
    measured = {
        "correlation": corr,
        "pairs": float(len(quads)),
        "baseline": baseline,
        "param_error": sum(errors) / len(errors),
    }
    if transform == "rotation":
        measured["opposite"] = opposite
    detail = (
        f"{len(quads)} connection pairs {src_name} -> {dst_name} correlate {fmt(corr)} on "
        f"average after {transform} (untransformed: {fmt(baseline)})"
    )
    klists = g.kernel_lists()
    kernels = {
        f"{a.name}->{b.name}": klists[located[ia][ib][1]]
        for ia, a in enumerate(A)
        for ib, b in enumerate(B)
    }
    return Outcome(measured, detail, kernels)


def _mean(x: torch.Tensor) -> float:
    ok = ~torch.isnan(x)
    return float(x[ok].mean()) if bool(ok.any()) else float("nan")
