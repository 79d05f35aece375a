"""`a -> b : excites along line θ | arc θ` -- the shape of the positive weights.

Coordinates: x to the right, y up (row 0 is the top), origin at the kernel centre;
angles in degrees counter-clockwise from +x, as on a clock face read mathematically.

* `line θ`: the line through the centre with direction θ (θ and θ+180 are the same
  line). Template `T(p) = max(0, 1 - d(p))`, d = perpendicular distance in cells.
* `arc θ`: the circle arc through the centre whose tangent there points along θ and
  which bends to the left of that direction (counter-clockwise), radius R
  (default `(k - 1) / 2`, a half circle that spans the kernel; `radius` overrides): circle centre
  `c = R (-sin θ, cos θ)`, `T(p) = max(0, 1 - | |p - c| - R |)`. As R grows the arc
  tends to `line θ`; `arc θ+180` bends the other way. `arc 0` is a smile.

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
    pearson,
    unmeasurable,
)
from circuitdsl.check.context import Context, Group
from circuitdsl.ir import Claim, Feature

KINDS = ("shape",)


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
        cx, cy = -r * math.sin(t), r * math.cos(t)
        d = (((x - cx) ** 2 + (y - cy) ** 2).sqrt() - r).abs()
    else:
        raise Unmeasurable(f"unknown shape `{shape}` (known: line, arc)")
    return (1 - d).clamp_min(0).to(torch.float32)


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """Template correlations, batched per (layer pair, kernel size, template)."""
    results: list[Outcome | None] = [None] * len(claims)
    buckets: dict[tuple, list[int]] = {}
    located: list[tuple[Group, int]] = []
    for n, c in enumerate(claims):
        try:
            g, i = ctx.edge(*c.edges[0])
        except Unmeasurable as exc:
            results[n] = unmeasurable(exc)
            located.append((None, -1))  # type: ignore[arg-type]
            continue
        located.append((g, i))
        eh, ew = g.stat("eff")[i]
        if eh == 1 and ew == 1:
            results[n] = unmeasurable(
                Unmeasurable(f"{c.edges[0][0]} -> {c.edges[0][1]} is 1x1: it has no shape")
            )
            continue
        radius = c.args.get("radius")
        key = (
            g.key,
            eh,
            ew,
            str(c.args["shape"]),
            float(c.args["orientation"]),
            None if radius is None else float(radius),
            c.args.get("sign") == "inhibits",
        )
        buckets.setdefault(key, []).append(n)
    for (_gk, eh, ew, shape, theta, radius, neg), members in buckets.items():
        g = located[members[0]][0]
        try:
            tmpl = template(shape, theta, eh, ew, radius)
        except Unmeasurable as exc:
            for n in members:
                results[n] = unmeasurable(exc)
            continue
        idx = torch.tensor([located[n][1] for n in members])
        k = crop(g.kern[idx], eh, ew)
        part = (-k if neg else k).clamp_min(0)
        corr = pearson(part, tmpl.expand_as(part))
        for n, r in zip(members, corr.tolist(), strict=True):
            src, dst = claims[n].edges[0]
            what = "negative" if neg else "positive"
            if math.isnan(r):
                detail = f"{src} -> {dst}: the kernel has no {what} weights to correlate"
            else:
                detail = (
                    f"{src} -> {dst}: {what} weights correlate {fmt(r)} with a {shape} at "
                    f"{theta:g} deg"
                )
            results[n] = Outcome(
                {"correlation": r}, detail, {f"{src}->{dst}": g.kernel_lists()[located[n][1]]}
            )
    return [r for r in results if r is not None]
