"""Edit predictions on planted models: the edit is applied, and only to a copy."""

from __future__ import annotations

import pytest
import torch
from predict_models import planted_adapter

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.report.model import Report

HEADER = """
circuit planted
feature lum = conv1:0
feature lum2 = conv1:1
family lums in conv1 { 0, 1 }
feature out = conv2:0
feature other = conv2:1
"""


def run(body: str, adapter=None) -> Report:  # type: ignore[no-untyped-def]
    spec = circuitdsl.loads(HEADER + body)
    return check_spec(spec.circuit, adapter or planted_adapter())


@pytest.mark.parametrize(
    ("edit", "change", "sign"),
    [
        ("remove negative (lum2 -> out)", "increases", 1),
        ("remove positive (lum -> out)", "decreases", -1),
        ("ablate lum2", "increases", 1),
        ("ablate lum", "decreases", -1),
        ("scale (lum -> out) by 2", "increases", 1),
        ("scale negative (lum2 -> out) by 3", "decreases", -1),
        ("remove (lums -> out)", "decreases", -1),
    ],
)
def test_edit_is_applied_with_planted_sign(edit: str, change: str, sign: int) -> None:
    rep = run(f"predict {edit}: out responds to line(orientation = 0deg) {change}")
    (r,) = rep.claims
    assert r.status == "pass", r.detail
    assert r.measured["change"] * sign > 1e-3  # nonzero, of the planted sign
    assert r.measured["before"] > 0


def test_wrong_direction_fails() -> None:
    (r,) = run("predict remove negative (lum2 -> out): out responds to line() decreases").claims
    assert r.status == "fail" and r.measured["change"] > 0


def test_unchanged_when_weights_are_zero() -> None:
    (r,) = run("predict remove (lum -> other): other responds to line() unchanged").claims
    assert r.status == "pass" and r.measured["change"] == 0.0
    assert "removed 9 weights" in r.detail and "sum 0 -> 0" in r.detail


def test_no_leak_into_original_model() -> None:
    adapter = planted_adapter()
    state = {k: v.clone() for k, v in adapter.module.state_dict().items()}
    cached = adapter.weights("conv1", "conv2").clone()
    cache_obj = adapter.weights("conv1", "conv2")
    x = torch.rand(4, 3, 16, 16)
    out = adapter.module(x).clone()
    acts = adapter.activations(x, ["conv2"])["conv2"].clone()
    body = """
predict remove negative (lum2 -> out), scale (lum -> out) by 5: out responds to line() increases
predict ablate lums: out responds to line() decreases
"""
    rep = run(body, adapter)
    assert [c.status for c in rep.claims] == ["pass", "pass"], [c.detail for c in rep.claims]
    for k, v in adapter.module.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert torch.equal(adapter.module(x), out)
    assert torch.equal(adapter.activations(x, ["conv2"])["conv2"], acts)
    assert adapter.weights("conv1", "conv2") is cache_obj
    assert torch.equal(cache_obj, cached)
    # a second check on the same adapter sees the original model again
    again = run(body, adapter)
    assert [c.measured for c in again.claims] == [c.measured for c in rep.claims]


def test_non_adjacent_edit_is_a_clear_error() -> None:
    src = """
circuit far
feature a = conv1:0
feature f = fc:0
feature r = relu2:0
predict remove (a -> r): r responds to line() decreases
"""
    rep = check_spec(circuitdsl.loads(src).circuit, planted_adapter())
    (r,) = rep.claims
    assert r.status == "pass"  # relu2 is conv2 up to a ReLU: the edit is direct
    src2 = src.replace("feature r = relu2:0", "feature r = relu2:0\nfeature b = conv2:0")
    src2 = src2.replace("remove (a -> r): r", "remove (r -> b): b")
    rep = check_spec(circuitdsl.loads(src2).circuit, planted_adapter())
    assert rep.claims[0].status == "error"


def test_edit_without_one_conv_is_a_linear_path_correction() -> None:
    from predict_models import tuned_adapter

    src = """
circuit far
feature a = conv1:0
feature c = conv2:0
feature r = relu1:0
predict remove (a -> c): c responds to line() decreases
predict scale (a -> r) by 2: r responds to line() increases
"""
    rep = check_spec(circuitdsl.loads(src).circuit, tuned_adapter())
    first, second = rep.claims
    assert first.status == "pass", first.detail
    assert "[direct conv]" in first.detail
    # conv1 -> relu1 has no convolution between them: the identity map of the
    # linearised network is doubled by a correction (relu1 + conv1 on channel 0)
    assert second.status == "pass", second.detail
    assert "[linear-path correction]" in second.detail
    assert second.measured["ratio"] > 1.0


@pytest.mark.parametrize(
    ("change", "holds"),
    [
        ("increases by at least 20%", lambda m: m["relative_change"] >= 0.2),
        ("increases by at least 1000%", lambda m: m["relative_change"] >= 10.0),
        ("increases to above 1.1 of", lambda m: m["ratio"] > 1.1),
        ("decreases by at least 20%", lambda m: m["relative_change"] <= -0.2),
        ("decreases to below 0.5 of", lambda m: m["ratio"] < 0.5),
        ("unchanged within 5%", lambda m: abs(m["relative_change"]) <= 0.05),
    ],
)
def test_sized_predictions(change: str, holds) -> None:  # type: ignore[no-untyped-def]
    """Every prediction reports before, after and relative change; sizes decide the verdict."""
    (r,) = run(f"predict remove negative (lum2 -> out): out responds to line() {change}").claims
    m = r.measured
    assert m["before"] > 0 and m["after"] > m["before"]  # the planted sign
    assert m["relative_change"] == pytest.approx((m["after"] - m["before"]) / m["before"])
    assert m["ratio"] == pytest.approx(m["after"] / m["before"])
    assert r.status == ("pass" if holds(m) else "fail"), (change, m)


def test_sized_predictions_on_a_known_change() -> None:
    """Halving the only input of `other` halves its response exactly: ratio 0.5."""
    body = """
predict scale (lum2 -> other) by 0.5: other responds to line() decreases to below 0.6 of
predict scale (lum2 -> other) by 0.5: other responds to line() decreases by at least 60% as big
predict scale (lum -> other) by 0.5: other responds to line() unchanged within 1%
"""
    a, b, c = run(body).claims
    assert a.measured["ratio"] == pytest.approx(0.5, abs=1e-5)
    assert a.status == "pass"
    assert b.status == "fail" and b.measured["relative_change"] == pytest.approx(-0.5, abs=1e-5)
    assert c.status == "pass" and c.measured["relative_change"] == 0.0
    assert "relative -50.0%" in a.detail


def test_sizes_survive_fmt() -> None:
    from circuitdsl.language.syntax import fmt, parser

    def format_spec(text: str) -> str:
        return fmt.format_spec(parser.parse(text, "sizes.circ"))

    text = HEADER + (
        "predict remove (lum -> out): out responds to line() increases   by at least 20.5%\n"
        "predict ablate lum: out responds to line() decreases to below 0.5 of\n"
        "predict ablate lum2: out no echo on curve() unchanged within 5%"
        " (abs_relative_change <= 0.1)\n"
    )
    once = format_spec(text)
    assert "increases by at least 20.5%\n" in once
    assert "decreases to below 0.5 of\n" in once
    assert "unchanged within 5% (abs_relative_change <= 0.1)\n" in once
    assert format_spec(once) == once
    texts = [c.text for c in circuitdsl.loads(once).circuit.claims]
    assert texts == [c.text for c in circuitdsl.loads(text).circuit.claims]
