"""The calibration of the default thresholds (docs/claims.md, "Calibration"), pinned small.

`bench/calibration.py` makes the documented table; these tests run its machinery on a
fixed seed at a size that takes seconds, so a default (or a statistic) that lets random
claims pass more than 5 % of the time, or fails planted circuits, breaks the suite:

* the null false-pass rate of each kind is measured exactly, as the mean `base_rate` of
  random claims (each the share of *all* inputs of the claim's target that would pass);
* planted true claims (3 x the RMS input norm, as in the table) pass at least 95 %.
"""

from __future__ import annotations

import copy
import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from circuitdsl.check import check
from circuitdsl.tools.planting import circuit

ROOT = Path(__file__).resolve().parents[2]
# `among top k` has no default to calibrate: its chance rate is k / C by definition
RANKS = ("among top 10 inputs", "among top 10 excitatory")


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "calibration_bench", ROOT / "bench/calibration.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cal() -> ModuleType:
    return _bench()


def _chance(cal: ModuleType, fmt: Any, kind: Any, n: int, seed: str) -> dict[str, float]:
    """Mean base rate of n random claims of `kind`, per source layer and overall."""
    feats, claims = cal._null_claims(fmt, kind, n, random.Random(seed))
    rep = check(circuit(feats, claims), fmt.adapter(copy.deepcopy(fmt.model)))
    layer = {f.name: f.layer for f in feats}
    rates: dict[str, list[float]] = {}
    for c, r in zip(claims, rep.claims, strict=True):
        assert r.status in ("pass", "fail"), (c.id, r.detail)
        rates.setdefault(layer[c.edges[0][0]], []).append(r.measured["base_rate"])
        rates.setdefault("all", []).append(r.measured["base_rate"])
    return {k: sum(v) / len(v) for k, v in rates.items()}


def test_small_cnn_null_and_planted_rates_at_the_defaults(cal: ModuleType) -> None:
    fmt = cal.Small(0)
    scale = cal._scales(fmt)
    for j, kind in enumerate(cal.KINDS):
        if kind.name in RANKS:
            continue
        chance = _chance(cal, fmt, kind, 64, f"test/null/{j}")["all"]
        assert chance <= 0.05, (kind.name, chance)
        m, feats, claims = cal._planted(fmt, kind, 20, random.Random(f"test/{j}"), 3.0, scale)
        rep = check(circuit(feats, claims), fmt.adapter(m))
        passed = sum(r.status == "pass" for r in rep.claims) / len(rep.claims)
        assert passed >= 0.95, (kind.name, [(r.status, r.measured) for r in rep.claims])


@pytest.mark.slow
def test_inceptionv1_comparisons_stay_under_5_percent_in_every_layer_pair(cal: ModuleType) -> None:
    """Exact chance rates of the two comparison defaults, per layer pair, over every
    (target, first source, second source) of random InceptionV1 weights.

    Expanded norms vary more there than in a small CNN, most behind a pool:
    `ratio >= 1.5` passed 7.3 % of random pairs on mixed3b -> mixed4a (4.6 % overall).
    """
    from circuitdsl.language.claims import RULES

    (ratio,) = RULES["stronger"].defaults
    (diff,) = RULES["more"].defaults
    fmt = cal.Inception(0)
    adapter = fmt.adapter(copy.deepcopy(fmt.model))
    for src, dst, targets, _ in fmt.pairs():
        w = adapter.weights(src, dst)[targets]
        norm = w.flatten(2).norm(dim=2)  # [targets, inputs]
        total = w.sum(dim=(2, 3))
        z = total / total.pow(2).mean(dim=1, keepdim=True).sqrt()
        off = ~torch.eye(norm.shape[1], dtype=torch.bool)  # first source != second
        r = norm[:, :, None] / norm[:, None, :]
        d = z[:, :, None] - z[:, None, :]
        p_ratio = float((r >= ratio.value)[:, off].float().mean())
        p_diff = float((d >= diff.value)[:, off].float().mean())
        assert p_ratio <= 0.05 and p_diff <= 0.05, (src, dst, p_ratio, p_diff)


def test_a_comparison_null_leaves_out_the_second_connection() -> None:
    """`a -> t similar to b -> t`: replacing a by b compares b with itself (cosine 1),
    which is no chance pass; the base rate is over the other inputs only."""
    from circuitdsl.check import TensorBound
    from circuitdsl.tools.planting import claim, feature

    g = torch.Generator().manual_seed(0)
    block = torch.linalg.qr(torch.randn(25, 4, generator=g))[0].T.reshape(1, 4, 5, 5)
    feats = [feature(n, "l1", i) for i, n in enumerate("abcd")] + [feature("t", "l2", 0)]
    cs = [
        claim("sim", "compare", [("a", "t"), ("b", "t")], measure="similar"),
        claim("more", "compare", [("a", "t"), ("b", "t")], measure="norm"),
    ]
    rep = check(circuit(feats, cs), TensorBound({("l1", "l2"): block}))
    sim, more = rep.claims
    assert sim.status == "fail" and sim.measured["base_rate"] == 0.0  # was 1/4: b itself
    assert more.measured["base_rate"] == 0.0  # orthonormal kernels: no ratio >= 1.6
