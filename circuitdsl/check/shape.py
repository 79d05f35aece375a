"""`a -> b : excites along line θ | arc θ` -- the shape of the positive weights.

Coordinates: x to the right, y up (row 0 is the top), origin at the kernel centre;
angles in degrees counter-clockwise from +x, as on a clock face read mathematically.

* `line θ`: the line through the centre with direction θ (θ and θ+180 are the same
  line). Template `T(p) = max(0, 1 - d(p))`, d = perpendicular distance in cells.
* `arc θ`: a curve of orientation θ in the stimuli's convention (docs/stimuli.md):
  the circle arc through the centre whose *convex side points towards θ*, radius R
  (default `(k - 1) / 2`, a half circle that spans the kernel; `radius` overrides):
  circle centre `c = -R (cos θ, sin θ)`, `T(p) = max(0, 1 - | |p - c| - R |)`. Its
  tangent at the centre runs along θ + 90°; as R grows the arc tends to
  `line (θ + 90°)`; `arc θ+180` bends the other way. `arc 0` bulges right, like `)`;
  `arc 90` bulges up, like `⌒` -- what `curve(orientation = 90deg)` draws.

Statistic: `correlation` = Pearson correlation between the kernel's positive part
`max(w, 0)` (negative part `max(-w, 0)` for `inhibits along`) and T over the
kernel's effective size. Default `correlation >= 0.5` (on 5x5 an arc template
correlates 0.19 with the opposite arc and 0.35 with the line of the same
orientation). A 1x1 kernel is an error.
"""

from __future__ import annotations

import functools
import math

import torch

from circuitdsl.check.common import (
    CircuitIndex,
    Outcome,
    Unmeasurable,
    crop,
    fmt,
    payload_of,
    pearson,
    unmeasurable,
)
from circuitdsl.check.context import Context, Group
from circuitdsl.language.ir import Claim, Feature, Threshold
from circuitdsl.language.kinds import ShapeClaim

#: `excites along S` implies `z >= ALONG_Z` (`inhibits along`: `z <= -ALONG_Z`): clearly
#: excitatory (inhibitory), without claiming the strength an `excites` claim does
ALONG_Z = 1.0


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """The one edge of a shape claim."""
    return [(circuit.feature(s), circuit.feature(d)) for s, d in claim.edges[:1]]


@functools.lru_cache(maxsize=1024)
def template(
    shape: str, theta: float, kh: int, kw: int, radius: float | None = None
) -> torch.Tensor:
    """The [kh, kw] template of a line or arc with orientation `theta` degrees."""
    rows = torch.arange(kh, dtype=torch.float64)[:, None].expand(kh, kw)
    cols = torch.arange(kw, dtype=torch.float64)[None, :].expand(kh, kw)
    x, y = cols - (kw - 1) / 2, (kh - 1) / 2 - rows
    t = math.radians(theta)
    if shape == "line":
        d = (x * math.sin(t) - y * math.cos(t)).abs()
    elif shape == "arc":
        r = radius if radius is not None else (max(kh, kw) - 1) / 2
        # the convex side points along theta: the circle's centre lies behind it
        cx, cy = -r * math.cos(t), -r * math.sin(t)
        d = (((x - cx) ** 2 + (y - cy) ** 2).sqrt() - r).abs()
    else:
        raise Unmeasurable(f"unknown shape `{shape}` (known: line, arc)")
    return (1 - d).clamp_min(0).to(torch.float32)


def _channel_nulls(
    g: Group,
    edges: list[int],
    negative: torch.Tensor,
    templates: torch.Tensor,
    eh: int,
    ew: int,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Position in `edges` -> (null correlations, null weight sums) for each edge whose
    source is a channel, whose null is every input of its target: one batched pearson
    over all of them (chunked) instead of one small call per claim."""
    out: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for chunk, kernels in g.channel_null_batches(edges):
        sign = torch.where(negative[chunk], -1.0, 1.0).to(kernels.dtype)[:, None, None, None]
        part = (sign * crop(kernels, eh, ew)).clamp_min(0)
        corr = pearson(part, templates[chunk][:, None].expand_as(part))
        sums = kernels.sum(dim=(2, 3))
        for row, p in enumerate(chunk):
            out[p] = (corr[row], sums[row])
    return out


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Template correlations, one batch per (layer pair, kernel size)."""
    results: list[Outcome | None] = [None] * len(claims)
    buckets: dict[tuple[tuple[str, str], int, int], list[int]] = {}
    located: dict[int, tuple[Group, int, torch.Tensor]] = {}
    for n, c in enumerate(claims):
        try:
            g, i = ctx.edge(*c.edges[0])
            eh, ew = g.stat("eff")[i]
            if eh == 1 and ew == 1:
                raise Unmeasurable(f"{c.edges[0][0]} -> {c.edges[0][1]} is 1x1: it has no shape")
            p = payload_of(c, ShapeClaim)
            tmpl = template(p.shape, float(p.orientation), eh, ew, p.radius)
        except Unmeasurable as exc:
            results[n] = unmeasurable(exc)
            continue
        located[n] = (g, i, tmpl)
        buckets.setdefault((g.key, eh, ew), []).append(n)
    for (_gk, eh, ew), members in buckets.items():
        g = located[members[0]][0]
        idx = torch.tensor([located[n][1] for n in members])
        neg = torch.tensor([payload_of(claims[n], ShapeClaim).sign == "inhibits" for n in members])
        k = crop(g.kern[idx], eh, ew)
        part = torch.where(neg[:, None, None], -k, k).clamp_min(0)
        tmpl = torch.stack([located[n][2] for n in members])
        corr = pearson(part, tmpl)
        klists = g.kernel_lists()
        nulls = _channel_nulls(g, [located[n][1] for n in members], neg, tmpl, eh, ew)
        for pos, (n, r) in enumerate(zip(members, corr.tolist(), strict=True)):
            c = claims[n]
            p = payload_of(c, ShapeClaim)
            src, dst = c.edges[0]
            what = "negative" if p.sign == "inhibits" else "positive"
            if math.isnan(r):
                detail = f"{src} -> {dst}: the kernel has no {what} weights to correlate"
            else:
                detail = (
                    f"{src} -> {dst}: {what} weights correlate {fmt(r)} with a "
                    f"{p.shape} at {float(p.orientation):g} deg"
                )
            i = located[n][1]
            inhibits = p.sign == "inhibits"
            sign = -1.0 if inhibits else 1.0
            rms = g.stat("rms_total")[i]
            z = g.stat("total")[i] / rms if rms > 0 else math.nan
            if pos in nulls:
                null_corr, null_sum = nulls[pos]
            else:  # a direction source: its null sources are drawn directions
                null_k = g.null_kernels(i)
                null_part = (sign * crop(null_k, eh, ew)).clamp_min(0)
                null_corr = pearson(null_part, located[n][2].expand_as(null_part))
                null_sum = null_k.sum(dim=(1, 2))
            null_z = null_sum / rms if rms > 0 else torch.full((len(null_sum),), math.nan)
            null = {"correlation": null_corr, "z": null_z}
            # `excites along S` says the connection excites, not only that its positive
            # part has the shape: the sign claim's threshold on z is implied
            implied = (
                Threshold("z", "<=", -ALONG_Z) if inhibits else Threshold("z", ">=", ALONG_Z),
            )
            detail += f"; weight sum z = {fmt(z)}"
            results[n] = Outcome(
                {"correlation": r, "z": z},
                detail,
                {f"{src}->{dst}": klists[i]},
                implied=implied,
                null=null,
            )
    return [r if r is not None else unmeasurable(Unmeasurable("not measured")) for r in results]
