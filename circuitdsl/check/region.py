"""Where in the kernel a connection acts: `excites at top`, `strongest at bottom`.

Regions follow PyTorch's cross-correlation convention: kernel row 0 multiplies the
input row above the output position, so `top` is the top rows of the kernel. Named
regions are defined for any kernel size (see `common.region_mask`); a 1x1 kernel has
none, and a claim about one is an error. Kernels are taken at their target's
effective size (the centred part that holds all its nonzero weights), so a unit in
a mixed layer's 3x3 branch is judged on its 3x3 kernel even if the adapter pads the
block to 5x5.

`region` claim (`excites at R` / `inhibits at R` / `weak at R`): like a sign claim
restricted to R. `total = sum_{p in R} w[p]`, `z = total(a->b) / RMS_i total_R(i->b)`
over every channel i of a's layer. Defaults as for sign claims.

`strongest` claim (`strongest at R`): `margin = (mean_R w - max_Q mean_Q w) / RMS(w)`
where Q runs over the named regions disjoint from R (w negated for `inhibits`), and
`share = sum_R w+ / sum w+` (the region's part of the positive weight). Default
`margin > 0.4` (R's mean signed weight beats every other region's by 0.4 of the
kernel's RMS) and `percentile >= 95` (docs/claims.md, "Calibration").
"""

from __future__ import annotations

import functools

import torch

from circuitdsl.check.common import (
    CircuitIndex,
    Outcome,
    Unmeasurable,
    embed_mask,
    fmt,
    region_label,
    region_mask,
    unmeasurable,
)
from circuitdsl.check.context import Context, Group
from circuitdsl.language.claims import NAMED_REGIONS
from circuitdsl.language.ir import Claim, Feature
from circuitdsl.language.kinds import Region, RegionClaim, StrongestClaim


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """The one edge of a region claim."""
    return [(circuit.feature(s), circuit.feature(d)) for s, d in claim.edges[:1]]


def _payload(c: Claim) -> RegionClaim | StrongestClaim:
    p = c.payload
    if not isinstance(p, (RegionClaim, StrongestClaim)):
        raise Unmeasurable(f"a {c.kind} claim carries a {type(p).__name__}, not a region claim")
    return p


def _key(region: Region) -> str:
    """A hashable spelling of a region (`name:top`, `rows:0:1:0:4`) for caches."""
    if region.name is not None:
        return f"name:{region.name}"
    assert region.rows is not None
    (r0, r1) = region.rows
    if region.cols is None:  # every column, whatever the kernel's width
        return f"rows:{int(r0)}:{int(r1)}"
    (c0, c1) = region.cols
    return f"rows:{int(r0)}:{int(r1)}:{int(c0)}:{int(c1)}"


def _unkey(key: str) -> Region:
    kind, *rest = key.split(":")
    if kind == "name":
        return Region(name=rest[0])
    if len(rest) == 2:
        return Region(rows=(int(rest[0]), int(rest[1])))
    r0, r1, c0, c1 = (int(v) for v in rest)
    return Region(rows=(r0, r1), cols=(c0, c1))


@functools.lru_cache(maxsize=4096)
def _mask(key: str, eh: int, ew: int, kh: int, kw: int) -> torch.Tensor:
    return embed_mask(region_mask(_unkey(key), eh, ew), kh, kw)


@functools.lru_cache(maxsize=1024)
def _competitors(key: str, eh: int, ew: int, kh: int, kw: int) -> tuple[list[str], torch.Tensor]:
    """Names and [P, n] float masks of the named regions disjoint from the claimed one."""
    own = _mask(key, eh, ew, kh, kw)
    names, cols = [], []
    for name in NAMED_REGIONS:
        try:
            m = _mask(f"name:{name}", eh, ew, kh, kw)
        except Unmeasurable:
            continue
        if not bool((m & own).any()):
            names.append(name)
            cols.append(m.flatten().float())
    if not names:
        raise Unmeasurable(f"no named region of a {eh}x{ew} kernel is disjoint from this one")
    return names, torch.stack(cols, dim=1)


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Region z (kind `region`) or margin/share (kind `strongest`), batched per mask."""
    results: list[Outcome | None] = [None] * len(claims)
    buckets: dict[tuple[tuple[str, str], str, tuple[int, int], str], list[int]] = {}
    located: dict[int, tuple[Group, int]] = {}
    for n, c in enumerate(claims):
        try:
            g, i = located[n] = ctx.edge(*c.edges[0])
            eh, ew = g.stat("eff")[i]
            if eh == 1 and ew == 1:
                raise Unmeasurable(
                    f"{c.edges[0][0]} -> {c.edges[0][1]} is a 1x1 connection: it has no "
                    "spatial regions"
                )
            rkey = _key(_payload(c).region)
            _mask(rkey, eh, ew, g.kh, g.kw)  # an empty region fails here, for this claim
            buckets.setdefault((g.key, rkey, (eh, ew), c.kind), []).append(n)
        except Unmeasurable as exc:
            results[n] = unmeasurable(exc)
    # every regional sum a layer pair needs, computed in one pass over its weights,
    # then every `region` claim of the pair at once
    by_group: dict[tuple[str, str], list[tuple[int, torch.Tensor]]] = {}
    for (gk, rkey, (eh, ew), kind), members in buckets.items():
        if kind == "region":
            g = located[members[0]][0]
            # A named region of a centred, zero-padded kernel covers the same nonzero
            # cells at the block's size as at the kernel's own size (both are "strictly
            # above the centre line", ...), and region claims only sum weights: using the
            # block-size mask lets 3x3 and 5x5 targets share one column of the matmul.
            # Explicit rows/cols are indices of the effective kernel and keep its size.
            odd = g.kh % 2 == 1 and g.kw % 2 == 1
            mh, mw = (g.kh, g.kw) if odd and rkey.startswith("name:") else (eh, ew)
            mask = _mask(rkey, mh, mw, g.kh, g.kw)
            by_group.setdefault(gk, []).extend((n, mask) for n in members)
    for gk, items in by_group.items():
        g = ctx.groups[gk]
        masks: dict[bytes, tuple[int, torch.Tensor]] = {}
        for _, m in items:
            masks.setdefault(m.numpy().tobytes(), (len(masks), m))
        cols = torch.stack([m.flatten().to(g.kern.dtype) for _, m in masks.values()])
        which = torch.tensor([masks[m.numpy().tobytes()][0] for _, m in items])
        idx = torch.tensor([located[n][1] for n, _ in items])
        # regional sums of every input, only for the targets of region claims
        uniq, inv = torch.unique(g.t_idx[idx], return_inverse=True)
        sub = g.inputs.index_select(0, uniq)
        sums = (sub.reshape(-1, sub.shape[-2] * sub.shape[-1]) @ cols.T).view(
            len(uniq), g.c_src, -1
        )
        rms_all = sums.pow(2).mean(dim=1).sqrt()  # [targets, masks]
        tot = (g.kern[idx].flatten(1) * cols[which]).sum(dim=1)
        rms = rms_all[inv, which]
        # a channel source's null is every input: its rows are views of these, computed
        # once for all claims (a direction source's null is drawn per claim)
        sums_z = sums / rms_all[:, None, :]
        sums_abs_z = sums_z.abs()
        rows = zip(items, tot.tolist(), rms.tolist(), inv.tolist(), which.tolist(), strict=True)
        for (n, _), t, r, u, w in rows:
            try:
                i = located[n][1]
                out = _region_outcome(claims[n], g, i, t, r)
                if g.null_draws(i) is None:
                    out.null = {"z": sums_z[u, :, w], "total": sums[u, :, w]}
                    out.null["abs_z"] = sums_abs_z[u, :, w]
                else:
                    null_total = g.null_values(i, sums[u, :, w])
                    null_z = null_total / r
                    out.null = {"z": null_z, "total": null_total, "abs_z": null_z.abs()}
                results[n] = out
            except Unmeasurable as exc:
                results[n] = unmeasurable(exc)
    for (_gk, rkey, (eh, ew), kind), members in buckets.items():
        if kind == "region":
            continue
        try:
            _bucket(claims, located, results, members, rkey, eh, ew)
        except Unmeasurable as exc:
            for n in members:
                results[n] = unmeasurable(exc)
    return [r if r is not None else unmeasurable(Unmeasurable("not measured")) for r in results]


def _bucket(
    claims: list[Claim],
    located: dict[int, tuple[Group, int]],
    results: list[Outcome | None],
    members: list[int],
    rkey: str,
    eh: int,
    ew: int,
) -> None:
    """Measure `strongest` claims sharing a layer pair, a region and a kernel size."""
    g = located[members[0]][0]
    idx = torch.tensor([located[n][1] for n in members])
    kern = g.kern[idx]
    mask = _mask(rkey, eh, ew, g.kh, g.kw)
    names, comp = _competitors(rkey, eh, ew, g.kh, g.kw)
    sign = torch.tensor([-1.0 if _payload(claims[n]).sign == "inhibits" else 1.0 for n in members])
    w = kern.flatten(1) * sign[:, None]
    m = mask.flatten()
    own = w[:, m].mean(dim=1)
    others = (w @ comp) / comp.sum(dim=0)
    best, which = others.max(dim=1)
    # RMS over the effective kernel only: padding zeros must not inflate margins
    rms = w.pow(2).sum(dim=1).div(eh * ew).sqrt()
    pos = w.clamp_min(0)
    share = pos[:, m].sum(dim=1) / pos.sum(dim=1)
    rows = zip(
        members,
        own.tolist(),
        best.tolist(),
        which.tolist(),
        rms.tolist(),
        share.tolist(),
        strict=True,
    )
    nulls = _strongest_nulls(g, [located[n][1] for n in members], m, comp, eh * ew, sign)
    for pos_, (n, o, b, wi, r, s) in enumerate(rows):
        c = claims[n]
        src, dst = c.edges[0]
        null = nulls[pos_]
        if r <= 0:
            results[n] = unmeasurable(Unmeasurable(f"the kernel {src} -> {dst} is all zeros"))
            continue
        margin = (o - b) / r
        p = _payload(c)
        word = "inhibition" if p.sign == "inhibits" else "excitation"
        detail = (
            f"{src} -> {dst}: mean {word} at {region_label(p.region)} is "
            f"{fmt(margin)} kernel-RMS above the strongest other region ({names[wi]})"
        )
        results[n] = Outcome(
            {"margin": margin, "share": s},
            detail,
            {f"{src}->{dst}": g.kernel_lists()[located[n][1]]},
            null=null,
        )


def _strongest_nulls(
    g: Group, edges: list[int], m: torch.Tensor, comp: torch.Tensor, cells: int, sign: torch.Tensor
) -> list[dict[str, torch.Tensor]]:
    """`margin` and `share` of every null source's kernel into each edge's target.

    A channel source's null sources are every input of its target: those edges are
    stacked and measured in one batch (chunked); a direction source's drawn null one by
    one."""
    out: list[dict[str, torch.Tensor] | None] = [None] * len(edges)
    for chunk, kernels in g.channel_null_batches(edges):
        w = kernels.flatten(2) * sign[chunk][:, None, None]  # [k, C_src, cells]
        for p, stats in zip(chunk, _null_stats(w, m, comp, cells), strict=True):
            out[p] = stats
    for p, i in enumerate(edges):
        if out[p] is None:  # a direction source: its drawn null, one by one
            kernels = g.null_kernels(i).flatten(1)[None] * sign[p]
            out[p] = _null_stats(kernels, m, comp, cells)[0]
    return [o for o in out if o is not None]


def _null_stats(
    w: torch.Tensor, m: torch.Tensor, comp: torch.Tensor, cells: int
) -> list[dict[str, torch.Tensor]]:
    """Per claim (dim 0) the margin and share of each null kernel (dim 1) in `w`."""
    own = w[..., m].mean(dim=-1)
    best = ((w @ comp) / comp.sum(dim=0)).max(dim=-1).values
    rms = w.pow(2).sum(dim=-1).div(cells).sqrt()
    pos = w.clamp_min(0)
    margin = torch.where(rms > 0, (own - best) / rms.clamp_min(1e-30), torch.nan)
    share = pos[..., m].sum(dim=-1) / pos.sum(dim=-1)
    return [{"margin": margin[k], "share": share[k]} for k in range(len(w))]


def _region_outcome(c: Claim, g: Group, i: int, total: float, rms: float) -> Outcome:
    src, dst = c.edges[0]
    where = region_label(_payload(c).region)
    if rms <= 0:
        raise Unmeasurable(
            f"every input into {dst} sums to zero at {where}; the region z is undefined"
        )
    z = total / rms
    detail = (
        f"{src} -> {dst}: weight sum at {where} {fmt(total)} is {fmt(z)} RMS of the "
        f"{where} sums of all {g.c_src} inputs from {g.key[0]}"
    )
    return Outcome(
        {"z": z, "total": total, "abs_z": abs(z)},
        detail,
        {f"{src}->{dst}": g.kernel_lists()[i]},
    )
