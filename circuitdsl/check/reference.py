"""A slow, per-claim reference implementation of the weight statistics.

Written directly from the formulas in docs/claims.md, one claim at a time, with
numpy and the bound circuit's per-feature API (`BoundCircuit.kernel`,
`BoundCircuit.all_inputs`), sharing no code with the batched engine except the
region and template definitions. Two uses: the tests cross-check the engine against
it on random claims, and `bench/check.py` times it as the naive baseline (it fetches
and reduces the weights anew for every claim).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from circuitdsl.check.common import Unmeasurable, region_mask
from circuitdsl.check.shape import template
from circuitdsl.language.claims import NAMED_REGIONS
from circuitdsl.language.ir import Claim
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
        w = -k if p.sign == "inhibits" else k
        own = region_mask(p.region, *k.shape).numpy()
        others = []
        for name in NAMED_REGIONS:
            try:
                m = region_mask(Region(name=name), *k.shape).numpy()
            except Unmeasurable:
                continue
            if not (m & own).any():
                others.append(w[m].mean())
        rms = math.sqrt(float((w**2).mean()))
        pos = np.clip(w, 0, None)
        with np.errstate(invalid="ignore", divide="ignore"):  # no positive weight: NaN share
            share = pos[own].sum() / pos.sum()
        return {"margin": (w[own].mean() - max(others)) / rms, "share": float(share)}
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
