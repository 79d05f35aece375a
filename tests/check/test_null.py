"""The null behind every verdict: percentiles, base rates and aggregate verdicts."""

from __future__ import annotations

import json
import math

import pytest
import torch
from small_model import Small

import circuitdsl
from circuitdsl.check import check
from circuitdsl.check.aggregate import upper_tail
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.language.syntax import fmt, parser
from circuitdsl.report.model import Report

SPEC = """
circuit nulls
family src(orientation: angle) in conv1 { 0: 0deg, 1: 90deg, 2: 180deg }
family dst(orientation: angle) in conv2 { 2: 0deg, 4: 90deg, 6: 180deg, 8: 270deg }
for a in src, b in dst {
  a -> b : excites
}
for a in src, b in dst with alpha 0.5 {
  a -> b : weak
}
src -> dst[2] : excites
"""


def test_upper_tail_is_the_binomial_tail_when_rates_are_equal() -> None:
    n, p = 20, 0.15
    for k in (0, 3, 7, 20):
        want = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
        assert upper_tail([p] * n, k) == pytest.approx(want, rel=1e-12)
    # Poisson-binomial: two certain passes and one coin
    assert upper_tail([1.0, 1.0, 0.5], 3) == pytest.approx(0.5)
    assert upper_tail([0.0, 0.5], 2) == 0.0


def test_percentile_and_base_rate_of_a_sign_claim(small: Small) -> None:
    spec = circuitdsl.loads(SPEC, "nulls.circ")
    rep = check(spec.circuit, small.bound)
    block = small.conv2  # conv1 -> conv2
    r = rep.result("src[1]->dst[4].excites")
    totals = block[4].sum(dim=(1, 2)).double()
    z_all = totals / totals.pow(2).mean().sqrt()
    z = float(z_all[1])
    assert r.measured["z"] == pytest.approx(z, rel=1e-5)
    assert r.measured["percentile"] == pytest.approx(100 * float((z_all <= z).double().mean()))
    assert r.measured["base_rate"] == pytest.approx(float((z_all >= 1.0).double().mean()))


def test_aggregates_one_per_line_with_exact_p(small: Small) -> None:
    spec = circuitdsl.loads(SPEC, "nulls.circ")
    rep = check(spec.circuit, small.bound)
    assert [a.text for a in rep.aggregates] == [
        "for a in src, b in dst { a -> b : excites }",
        "for a in src, b in dst { a -> b : weak }",
        "src -> dst[2] : excites",
    ]
    exc, weak, whole = rep.aggregates
    members = [c for c in rep.claims if c.id.endswith(".excites") and c.id.startswith("src[")]
    assert exc.of == 12 and exc.passed == sum(c.status == "pass" for c in members)
    rates = [c.measured["base_rate"] for c in members]
    assert exc.base_rate == pytest.approx(sum(rates) / 12)
    assert exc.p_value == pytest.approx(upper_tail(rates, exc.passed))
    assert exc.source == "nulls.circ:6" and exc.alpha == 0.01
    assert weak.alpha == 0.5 and weak.status == ("pass" if weak.p_value <= 0.5 else "fail")
    # a family used as a whole: one claim, its null from random 3-channel directions
    assert whole.of == 1 and 0.0 <= whole.base_rate <= 1.0
    data = json.loads(rep.to_json())
    assert data["aggregates"][0]["of"] == 12
    assert set(data["aggregates"][0]) >= {
        "source",
        "text",
        "status",
        "passed",
        "of",
        "base_rate",
        "p_value",
    }
    back = Report.from_json(rep.to_json())
    assert back.aggregates == rep.aggregates
    assert rep.to_text().index("aggregates:") < rep.to_text().index("src[0]->dst[2]")
    # an aggregate that fails makes the report fail even if its claims pass
    assert rep.ok == (
        all(c.status == "pass" for c in rep.claims)
        and all(a.status == "pass" for a in rep.aggregates)
    )


def test_planted_structure_beats_the_null(small: Small) -> None:
    """A real connection sits at the top of its target's inputs; the null rate is small."""
    text = """
circuit planted
feature windows = conv2:3
feature car = mixed:5
windows -> car : excites at top
"""
    rep = check(circuitdsl.loads(text, "p.circ").circuit, small.bound)
    r = rep.claims[0]
    assert r.status == "pass" and r.measured["percentile"] == 100.0
    assert r.measured["base_rate"] < 0.2


def test_alpha_syntax_round_trips_and_is_checked() -> None:
    text = (
        "circuit a\nalpha 0.001\nfamily f(o: angle) in l1 { 0: 0deg }\n"
        "family g(o: angle) in l2 { 0: 0deg }\n"
        "for x in f, y in g with alpha 0.05 {\n  x -> y : excites with alpha 0.02\n}\n"
    )
    spec = circuitdsl.loads(text, "a.circ")
    assert [c.alpha for c in spec.circuit.claims] == [0.02]
    out = fmt.format_spec(parser.parse(text, "a.circ"))
    assert "alpha 0.001" in out and "with alpha 0.05 {" in out and "with alpha 0.02" in out
    assert fmt.format_spec(parser.parse(out, "a.circ")) == out
    no_line = circuitdsl.loads(text.replace(" with alpha 0.02", ""), "a.circ")
    assert [c.alpha for c in no_line.circuit.claims] == [0.05]
    spec_level = circuitdsl.loads(
        text.replace(" with alpha 0.02", "").replace(" with alpha 0.05", ""), "a.circ"
    )
    assert [c.alpha for c in spec_level.circuit.claims] == [0.001]
    with pytest.raises(DiagnosticError) as err:
        circuitdsl.loads(text.replace("0.001", "2"), "a.circ")
    assert err.value.diagnostics[0].code == "E108"


def test_a_direction_null_is_seeded(small: Small) -> None:
    spec = circuitdsl.loads(SPEC, "nulls.circ")
    a = check(spec.circuit, small.bound).result("src->dst[2].excites").measured
    b = check(spec.circuit, small.bound).result("src->dst[2].excites").measured
    assert a["base_rate"] == b["base_rate"] and a["percentile"] == b["percentile"]
    assert torch.is_tensor(torch.tensor(a["base_rate"]))
