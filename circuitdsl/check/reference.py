"""A slow, per-claim reference implementation of the weight statistics.

Written directly from the formulas in docs/claims.md, one claim at a time, with
numpy and the bound circuit's per-feature API (`BoundCircuit.kernel`,
`BoundCircuit.all_inputs`), sharing no code with the batched engine except the
region and template definitions. Two uses: the tests cross-check the engine against
it on random claims, and `bench/check.py` times it as the naive baseline (it fetches
and reduces the weights anew for every claim).

`null_one` and `null_stats` recompute the null (docs/claims.md, "The null") the same
way: the claim's statistic for every input of its target, then `percentile` and
`base_rate` from their definitions. Only channel sources: a direction source's null is
drawn at random, which only the engine's seeded draw reproduces.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from circuitdsl.check.common import Unmeasurable, region_mask
from circuitdsl.check.shape import ALONG_Z, template
from circuitdsl.language.claims import NAMED_REGIONS
from circuitdsl.language.ir import Claim, Threshold
from circuitdsl.language.kinds import Region


def _pair(bound: Any, src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """(kernel [h, w], all inputs into dst [C, h, w]) at the target's cropped size."""
    layer = bound.features[src].layer
    inputs = bound.all_inputs(layer, dst).detach().double().numpy()
    kernel = bound.kernel(src, dst).detach().double().numpy()
    return kernel, inputs


def _z(kernel: np.ndarray, inputs: np.ndarray, mask: np.ndarray | None = None) -> float:
    if mask is None:
        mask = np.ones(kernel.shape, dtype=bool)
    totals = (inputs * mask).sum(axis=(1, 2))
    rms = math.sqrt(float(np.mean(totals**2)))
    if rms == 0:
        raise Unmeasurable("no inputs")
    return float((kernel * mask).sum()) / rms


def _strongest(kernels: np.ndarray, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """`margin` and `share` of each kernel in ``[n, h, w]`` for a `strongest` payload:
    the region's mean minus the best non-overlapping named region's, in kernel RMS, and
    the region's share of the positive weight (NaN for a zero kernel)."""
    w = -kernels if p.sign == "inhibits" else kernels
    own = region_mask(p.region, *kernels.shape[1:]).numpy()
    others = []
    for name in NAMED_REGIONS:
        try:
            m = region_mask(Region(name=name), *kernels.shape[1:]).numpy()
        except Unmeasurable:
            continue
        if not (m & own).any():
            others.append(w[:, m].mean(axis=1))
    rms = np.sqrt((w**2).mean(axis=(1, 2)))
    pos = np.clip(w, 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero kernel: NaN
        margin = (w[:, own].mean(axis=1) - np.max(others, axis=0)) / rms
        share = pos[:, own].sum(axis=1) / pos.sum(axis=(1, 2))
    return np.where(rms > 0, margin, np.nan), share


def measure_one(claim: Claim, bound: Any) -> dict[str, float]:
    """The main statistic(s) of one weight claim, computed from scratch."""
    kind = claim.kind
    p: Any = claim.payload  # the kind's payload (language/kinds.py)
    if kind == "sign":
        k, inp = _pair(bound, *claim.edges[0])
        z = _z(k, inp)
        return {"z": z, "total": float(k.sum()), "abs_z": abs(z)}
    if kind == "region":
        k, inp = _pair(bound, *claim.edges[0])
        mask = region_mask(p.region, *k.shape).numpy()
        z = _z(k, inp, mask)
        return {"z": z, "total": float((k * mask).sum())}
    if kind == "strongest":
        k, _ = _pair(bound, *claim.edges[0])
        margin, share = _strongest(k[None], p)
        return {"margin": float(margin[0]), "share": float(share[0])}
    if kind == "rank":
        src, dst = claim.edges[0]
        k, inp = _pair(bound, src, dst)
        pol = p.polarity
        if pol == "any":
            row, val = np.linalg.norm(inp.reshape(len(inp), -1), axis=1), np.linalg.norm(k)
        else:
            s = 1.0 if pol == "excitatory" else -1.0
            row, val = s * inp.sum(axis=(1, 2)), s * k.sum()
        return {"rank": float(1 + np.sum(row > val + 1e-12 * abs(val)))}
    if kind == "compare":
        k0, _ = _pair(bound, *claim.edges[0])
        k1, _ = _pair(bound, *claim.edges[1])
        return {"ratio": float(np.linalg.norm(k0) / np.linalg.norm(k1))}
    if kind == "shape":
        k, _ = _pair(bound, *claim.edges[0])
        t = template(p.shape, float(p.orientation), *k.shape, p.radius).numpy()
        part = np.clip(-k if p.sign == "inhibits" else k, 0, None)
        a, b = part - part.mean(), t - t.mean()
        den = np.linalg.norm(a) * np.linalg.norm(b)
        return {"correlation": float((a * b).sum() / den) if den > 1e-12 else float("nan")}
    if kind == "union":
        zs = [_z(*_pair(bound, s, d)) for s, d in claim.edges]
        sign = p.sign
        z = max(zs) if sign == "inhibits" else min(zs)
        return {"z": z}
    if kind == "within":
        inside = total = 0
        for name in claim.subjects:
            for f in bound.members(name):
                for ch in f.channels:
                    total += 1
                    where = bound.adapter.branch_of(f.layer, ch)
                    inside += where is not None and where[0] == p.branch
        return {"fraction": inside / total}
    raise Unmeasurable(f"no reference statistic for `{kind}`")


def _thresholds(claim: Claim) -> list[Threshold]:
    """The claim's thresholds, then those its words imply for statistics it leaves open."""
    implied: list[Threshold] = []
    p: Any = claim.payload
    if claim.kind == "rank":
        implied.append(Threshold("rank", "<=", float(p.k)))
    if claim.kind == "shape":
        down = p.sign == "inhibits"
        implied.append(Threshold("z", "<=", -ALONG_Z) if down else Threshold("z", ">=", ALONG_Z))
    own = {t.stat for t in claim.thresholds}
    return list(claim.thresholds) + [t for t in implied if t.stat not in own]


def null_one(claim: Claim, bound: Any) -> dict[str, np.ndarray]:
    """The claim's statistics with its source replaced by each input of its target (the
    kinds that have a null, channel sources only; else empty)."""
    kind = claim.kind
    p: Any = claim.payload  # the kind's payload (language/kinds.py)
    if kind not in ("sign", "region", "strongest", "rank", "compare", "shape"):
        return {}
    if not bound.features[claim.edges[0][0]].feature.is_channel:
        return {}
    if kind == "compare" and p.measure != "norm":
        return {}
    k, inp = _pair(bound, *claim.edges[0])
    n = len(inp)
    totals = inp.sum(axis=(1, 2))
    if kind == "sign":
        z = totals / math.sqrt(float(np.mean(totals**2)))
        return {"z": z, "total": totals, "abs_z": np.abs(z)}
    if kind == "region":
        mask = region_mask(p.region, *k.shape).numpy()
        sums = (inp * mask).sum(axis=(1, 2))
        z = sums / math.sqrt(float(np.mean(sums**2)))
        return {"z": z, "total": sums, "abs_z": np.abs(z)}
    if kind == "rank":
        return {"rank": np.arange(1, n + 1, dtype=np.float64)}
    if kind == "compare":
        k1, _ = _pair(bound, *claim.edges[1])
        (s0, d0), (s1, d1) = claim.edges[:2]
        f0, f1 = bound.features[s0], bound.features[s1]
        if d1 == d0 and f1.layer == f0.layer and f1.feature.is_channel:
            # every input but the second connection's own source (compared with itself)
            inp = np.delete(inp, f1.feature.channels[0], axis=0)
        norms = np.linalg.norm(inp.reshape(len(inp), -1), axis=1)
        return {"ratio": norms / np.linalg.norm(k1)}
    if kind == "strongest":
        margin, share = _strongest(inp, p)
        return {"margin": margin, "share": share}
    # shape: each input's part of the claimed sign, correlated with the template
    t = template(p.shape, float(p.orientation), *k.shape, p.radius).numpy()
    part = np.clip(-inp if p.sign == "inhibits" else inp, 0, None).reshape(n, -1)
    a = part - part.mean(axis=1, keepdims=True)
    b = (t - t.mean()).reshape(-1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(den > 1e-12, (a @ b) / den, np.nan)
    z = totals / math.sqrt(float(np.mean(totals**2)))
    return {"correlation": corr, "z": z}


def null_stats(
    claim: Claim, measured: dict[str, float], null: dict[str, np.ndarray]
) -> dict[str, float]:
    """`percentile` and `base_rate` from their definitions (docs/claims.md, "The null").

    The primary statistic is the first thresholded one the null has; `percentile` is
    100 x the share of null values the measured one matches or beats in its threshold's
    direction (undefined null values count as beaten); `base_rate` the share of null
    sources for which every threshold holds.
    """
    rules = _thresholds(claim)
    primary = next((t for t in rules if t.stat in null), None)
    if primary is None or primary.stat not in measured:
        return {}
    values = null[primary.stat]
    v = measured[primary.stat]
    higher = primary.op in (">=", ">")
    out: dict[str, float] = {}
    finite = np.abs(values[np.isfinite(values)])
    scale = max(abs(v), float(finite.max()) if len(finite) else 0.0)
    tol = 1e-5 * scale  # the claim's own source is in the null, from another reduction
    beaten = [(x != x) or (x <= v + tol if higher else x >= v - tol) for x in values.tolist()]
    out["percentile"] = 100.0 * sum(beaten) / len(values)
    holds = np.ones(len(values), dtype=bool)
    for t in rules:
        if t.stat == "percentile":
            w = values if higher else -values
            nan = np.isnan(w)
            ordered = np.sort(w[~nan])
            counts = np.searchsorted(ordered, np.where(nan, 0.0, w), side="right")
            own = np.where(nan, nan.sum(), counts + nan.sum()) * 100.0 / len(w)
            holds &= np.array([t.holds(float(p)) for p in own])
        elif t.stat in null:
            holds &= np.array([x == x and t.holds(float(x)) for x in null[t.stat].tolist()])
        else:
            return out
    out["base_rate"] = float(holds.mean())
    return out
