"""Independent checks of the statistics: recompute them with numpy from the formulas
in docs/claims.md and compare with the checker's report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitdsl.check import TensorBound, check
from circuitdsl.check.banding import banding
from circuitdsl.check.common import region_mask
from circuitdsl.language.kinds import Region
from circuitdsl.tools.planting import circuit, claim, feature


def _tiny(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, 4, 3, 3)).astype(np.float32)


def test_z_by_hand() -> None:
    w = _tiny()
    feats = [feature("a", "L0", 2), feature("b", "L1", 1)]
    c = claim("z", "sign", [("a", "b")], sign="excites")
    res = check(circuit(feats, [c]), TensorBound({("L0", "L1"): torch.from_numpy(w)}))
    totals = w[1].sum(axis=(1, 2))  # every input into b
    z = totals[2] / np.sqrt(np.mean(totals**2))
    r = res.result("z")
    assert r.measured["z"] == pytest.approx(z, rel=1e-5)
    assert r.measured["total"] == pytest.approx(totals[2], rel=1e-5)
    assert r.status == ("pass" if z >= 1 else "fail")


def test_direction_features_by_hand() -> None:
    w = _tiny(1)
    feats = [
        feature("a", "L0", [0, 3], [0.5, -2.0]),
        feature("b", "L1", [1, 2], [1.0, 0.25]),
    ]
    c = claim("z", "sign", [("a", "b")], sign="inhibits")
    r = check(circuit(feats, [c]), TensorBound({("L0", "L1"): torch.from_numpy(w)})).result("z")
    into_b = 1.0 * w[1] + 0.25 * w[2]  # [C_src, 3, 3]
    kernel = 0.5 * into_b[0] - 2.0 * into_b[3]
    totals = into_b.sum(axis=(1, 2))
    assert r.measured["z"] == pytest.approx(kernel.sum() / np.sqrt(np.mean(totals**2)), rel=1e-5)
    assert np.allclose(np.array(r.kernels["a->b"]), kernel, atol=1e-6)


def test_region_z_by_hand() -> None:
    w = _tiny(2)
    feats = [feature("a", "L0", 0), feature("b", "L1", 2)]
    c = claim("r", "region", [("a", "b")], sign="excites", region={"name": "bottom"})
    r = check(circuit(feats, [c]), TensorBound({("L0", "L1"): torch.from_numpy(w)})).result("r")
    bottom = w[2][:, 2, :].sum(axis=1)  # row 2 of a 3x3 kernel is below the middle
    assert r.measured["z"] == pytest.approx(bottom[0] / np.sqrt(np.mean(bottom**2)), rel=1e-5)


def test_rank_by_hand() -> None:
    w = _tiny(3)
    feats = [feature("a", "L0", 1), feature("b", "L1", 0)]
    claims = [
        claim("any", "rank", [("a", "b")], k=1, polarity="any"),
        claim("exc", "rank", [("a", "b")], k=1, polarity="excitatory"),
    ]
    rep = check(circuit(feats, claims), TensorBound({("L0", "L1"): torch.from_numpy(w)}))
    norms = np.linalg.norm(w[0].reshape(4, -1), axis=1)
    totals = w[0].sum(axis=(1, 2))
    assert rep.result("any").measured["rank"] == 1 + np.sum(norms > norms[1])
    assert rep.result("exc").measured["rank"] == 1 + np.sum(totals > totals[1])


def test_region_masks() -> None:
    top = region_mask(Region(name="top"), 5, 5)
    assert top[:2].all() and not top[2:].any()
    assert region_mask(Region(name="center"), 3, 3).sum() == 1
    assert region_mask(Region(name="bottom_left"), 3, 3).nonzero().tolist() == [[2, 0]]
    assert region_mask(Region(rows=(0, 0), cols=(1, 2)), 3, 3).sum() == 2


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(2, 6),
    w=st.integers(2, 6),
    seed=st.integers(0, 10_000),
    horizontal=st.booleans(),
)
def test_banding_matches_numpy(h: int, w: int, seed: int, horizontal: bool) -> None:
    k = np.random.default_rng(seed).normal(size=(3, 2, h, w))
    c = k - k.mean(axis=(2, 3), keepdims=True)
    axis = 3 if horizontal else 2
    means = c.mean(axis=axis, keepdims=True)
    want = (np.broadcast_to(means, c.shape) ** 2).sum() / (c**2).sum()
    got = banding(torch.from_numpy(k), "horizontal" if horizontal else "vertical")
    assert got == pytest.approx(want, rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 1000))
def test_statistics_are_scale_invariant(scale: float, seed: int) -> None:
    w = torch.from_numpy(_tiny(seed))
    feats = [feature("a", "L0", 1), feature("b", "L1", 2)]
    claims = [
        claim("z", "sign", [("a", "b")], sign="excites"),
        claim("r", "region", [("a", "b")], sign="excites", region={"name": "top"}),
        claim("s", "strongest", [("a", "b")], sign="excites", region={"name": "left"}),
        claim("k", "rank", [("a", "b")], k=2, polarity="any"),
    ]
    cir = circuit(feats, claims)
    one = check(cir, TensorBound({("L0", "L1"): w}))
    big = check(cir, TensorBound({("L0", "L1"): w * scale}))
    for a, b in zip(one.claims, big.claims, strict=True):
        assert a.status == b.status
        for stat in ("z", "margin", "rank", "strength"):
            if stat in a.measured:
                assert b.measured[stat] == pytest.approx(a.measured[stat], rel=1e-4, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 9), w=st.integers(2, 9))
def test_named_regions_are_consistent(h: int, w: int) -> None:
    """top/bottom and left/right are mirror images, disjoint, and never cross the centre."""
    top, bottom = region_mask(Region(name="top"), h, w), region_mask(Region(name="bottom"), h, w)
    left, right = region_mask(Region(name="left"), h, w), region_mask(Region(name="right"), h, w)
    assert not (top & bottom).any() and not (left & right).any()
    assert torch.equal(torch.flip(top, [0]), bottom)
    assert torch.equal(torch.flip(left, [1]), right)
    assert top.sum() == (h // 2) * w  # rows strictly above the centre line
    corner = region_mask(Region(name="top_left"), h, w)
    assert torch.equal(corner, top & left)
    centre = region_mask(Region(name="center"), h, w)
    assert centre.sum() == (1 + (h % 2 == 0)) * (1 + (w % 2 == 0))
    if h % 2:  # an even kernel's 2x2 centre straddles the centre line (docs/claims.md)
        assert not (centre & top).any()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6))
def test_rank_is_within_range_and_matches_sorting(seed: int, k: int) -> None:
    w = torch.from_numpy(np.random.default_rng(seed).normal(size=(2, 6, 3, 3)).astype("f4"))
    feats = [feature(f"s{i}", "L0", i) for i in range(6)] + [feature("t", "L1", 1)]
    claims = [claim(f"r{i}", "rank", [(f"s{i}", "t")], k=k, polarity="any") for i in range(6)]
    rep = check(circuit(feats, claims), TensorBound({("L0", "L1"): w}))
    ranks = [rep.result(f"r{i}").measured["rank"] for i in range(6)]
    order = np.argsort(-np.linalg.norm(w[1].numpy().reshape(6, -1), axis=1))
    assert sorted(ranks) == [1, 2, 3, 4, 5, 6]
    assert [ranks[i] for i in order] == [1, 2, 3, 4, 5, 6]
    assert sum(rep.result(f"r{i}").status == "pass" for i in range(6)) == k
