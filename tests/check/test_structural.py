"""Relative banding and `not` for structural claims (issue 13, new kinds)."""

from __future__ import annotations

import pytest
from small_model import Small

import circuitdsl
from circuitdsl.check import check
from circuitdsl.language.syntax import fmt, parser

SPEC = """circuit structural
feature car = mixed:5
feature one = mixed:1
weights into band : banded horizontal more than vertical
weights into band : banded vertical more than horizontal
weights into band : not banded vertical
weights into band : not banded horizontal
not car within mixed_1x1
not one within mixed_1x1
"""


def test_relative_banding_and_negation(small: Small) -> None:
    rep = check(circuitdsl.loads(SPEC, "s.circ").circuit, small.bound)
    r = {c.id: c for c in rep.claims}
    rel = r["band.banded_horizontal_more_than_vertical"]
    assert rel.status == "pass" and rel.measured["ratio"] == pytest.approx(
        rel.measured["banding"] / rel.measured["other"]
    )
    assert r["band.banded_vertical_more_than_horizontal"].status == "fail"
    assert r["band.not_banded_vertical"].status == "pass"
    assert r["band.not_banded_horizontal"].status == "fail"
    assert r["band.not_banded_vertical"].expected_text() == {"banding": "not >= 0.5"}
    assert r["car.not_within_mixed_1x1"].status == "pass"  # car is in the 5x5 branch
    assert r["one.not_within_mixed_1x1"].status == "fail"


def test_structural_syntax_round_trips() -> None:
    assert fmt.format_spec(parser.parse(SPEC, "s.circ")) == SPEC
    with pytest.raises(circuitdsl.DiagnosticError) as err:
        circuitdsl.loads(SPEC.replace("more than vertical", "more than horizontal"), "s.circ")
    assert err.value.diagnostics[0].code == "E108"


def test_proportion_of_top_inputs() -> None:
    """`most of the top k inputs of T from L inhibit`: count, fraction, binomial p."""
    import torch

    from circuitdsl.check import TensorBound
    from circuitdsl.check.aggregate import upper_tail

    g = torch.Generator().manual_seed(2)
    block = 0.01 * torch.randn(1, 40, 3, 3, generator=g)
    block[0, :8] = -1.0 - torch.rand(8, 1, 1, generator=g)  # the 8 largest all inhibit
    text = (
        "circuit p\nfeature t = l2:0\n"
        "most of the top 8 inputs of t from l1 inhibit\n"
        "most of the top 8 inputs of t from l1 excite\n"
        "most of the top 50 inputs of t from l1 inhibit as too_many\n"
    )
    rep = check(circuitdsl.loads(text, "p.circ").circuit, TensorBound({("l1", "l2"): block}))
    inh, exc, many = rep.claims
    share = float((block[0].sum(dim=(1, 2)) < 0).double().mean())
    assert inh.status == "pass" and inh.measured["fraction"] == 1.0
    assert inh.measured["p_value"] == pytest.approx(upper_tail([share] * 8, 8))
    assert exc.status == "fail" and exc.measured["count"] == 0
    assert many.status == "error" and "only 40 channels" in many.detail
    assert fmt.format_spec(parser.parse(text, "p.circ")) == text
