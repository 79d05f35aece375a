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
    assert r["band.not_banded_vertical"].expected == {"banding": "not >= 0.5"}
    assert r["car.not_within_mixed_1x1"].status == "pass"  # car is in the 5x5 branch
    assert r["one.not_within_mixed_1x1"].status == "fail"


def test_structural_syntax_round_trips() -> None:
    assert fmt.format_spec(parser.parse(SPEC, "s.circ")) == SPEC
    with pytest.raises(circuitdsl.DiagnosticError) as err:
        circuitdsl.loads(SPEC.replace("more than vertical", "more than horizontal"), "s.circ")
    assert err.value.diagnostics[0].code == "E108"
