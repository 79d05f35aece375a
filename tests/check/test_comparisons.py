"""Signed comparisons, kernel similarity, tie margins, and `excites along` needing excitation."""

from __future__ import annotations

import pytest
import torch

import circuitdsl
from circuitdsl.check import TensorBound, check
from circuitdsl.language.syntax import fmt, parser
from circuitdsl.tools.planting import arc_kernel


def _bound() -> TensorBound:
    g = torch.Generator().manual_seed(0)
    block = 0.05 * torch.randn(3, 6, 5, 5, generator=g)
    gabor = torch.outer(torch.tensor([1.0, 0.5, -1.0, 0.5, 1.0]), torch.ones(5))
    block[0, 0] = 2.0 * gabor  # a -> t: a Gabor-like kernel
    block[0, 1] = -1.0 * gabor  # b -> t: its negative (negative reciprocal)
    block[0, 2] = 1.0 * gabor + 0.05 * torch.randn(5, 5, generator=g)  # c -> t: a weaker copy
    block[0, 3] = block[0, 0].clone()  # d -> t: an exact tie with a
    # e -> u: an arc in its positive weights, but strongly inhibitory as a whole
    arc = arc_kernel(5, 90.0)
    block[1, 4] = torch.where(arc > 0, arc, torch.full_like(arc, -1.5))
    block[2, 5] = arc_kernel(5, 90.0) + 0.3  # f -> v: an excitatory arc
    return TensorBound({("l1", "l2"): block})


SPEC = """
circuit comparisons
feature a = l1:0
feature b = l1:1
feature c = l1:2
feature d = l1:3
feature e = l1:4
feature f = l1:5
feature t = l2:0
feature u = l2:1
feature v = l2:2
a -> t opposite to b -> t
a -> t similar to c -> t
a -> t similar to b -> t as not_similar
a -> t excites more than c -> t (difference >= 0.5)
c -> t excites more than a -> t (difference >= 0.5) as reverse
b -> t inhibits more than c -> t (difference >= 0.5)
a -> t stronger than d -> t as tie
a -> t stronger than b -> t
e -> u : excites along arc 90deg
f -> v : excites along arc 90deg
"""


def test_comparisons_and_similarity() -> None:
    rep = check(circuitdsl.loads(SPEC, "cmp.circ").circuit, _bound())
    r = {c.id: c for c in rep.claims}
    opp = r["a->t.opposite_to.b->t"]
    assert opp.status == "pass" and opp.measured["cosine"] == pytest.approx(-1.0, abs=1e-6)
    assert r["a->t.similar_to.c->t"].status == "pass"
    assert r["not_similar"].status == "fail"
    more = r["a->t.excites_more_than.c->t"]
    assert more.status == "pass" and more.measured["difference"] > 0.5
    assert r["reverse"].status == "fail"
    assert r["b->t.inhibits_more_than.c->t"].status == "pass"
    # an exact tie does not pass `stronger than` (tie margin: ratio >= 1.6)
    assert r["tie"].measured["ratio"] == pytest.approx(1.0) and r["tie"].status == "fail"
    assert r["a->t.stronger_than.b->t"].status == "pass"  # 2x the norm, either sign
    # the arc shape alone does not make an inhibitory connection `excite along`
    inh = r["e->u.excites_along_arc"]
    assert inh.measured["correlation"] > 0.5 and inh.measured["z"] < 0
    assert inh.status == "fail"
    assert r["f->v.excites_along_arc"].status == "pass"
    assert 0 <= opp.measured["percentile"] <= 100 and "base_rate" in opp.measured


def test_comparison_words_round_trip_through_fmt() -> None:
    text = (
        "circuit c\nfeature a = l1:0\nfeature b = l1:1\nfeature t = l2:0\n"
        "a -> t excites more than b -> t (difference >= 1)\n"
        "a -> t inhibits more than b -> t\na -> t similar to b -> t\n"
        "a -> t opposite to b -> t as opp\na -> t stronger than b -> t\n"
    )
    out = fmt.format_spec(parser.parse(text, "c.circ"))
    assert out == text
    claims = circuitdsl.loads(text, "c.circ").circuit.claims
    assert [c.payload.measure for c in claims] == [
        "excites",
        "inhibits",
        "similar",
        "opposite",
        "norm",
    ]
    assert claims[0].thresholds[0].value == 1.0
