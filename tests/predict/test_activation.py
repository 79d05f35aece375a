"""Activation claims on planted models: tuning, response, echo, invariance, batching."""

from __future__ import annotations

import pytest
import torch
from predict_models import planted_adapter, tuned_adapter

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.measure.responses import Plan, Source
from circuitdsl.models.probe import Runner, centre
from circuitdsl.report.model import Report

HEADER = """
circuit tuned
family line_det(orientation: angle) in conv1 { 0: 0deg, 1: 45deg, 2: 90deg, 3: 135deg }
feature opp = conv2:0
"""


def run(body: str) -> Report:
    return check_spec(circuitdsl.loads(HEADER + body).circuit, tuned_adapter())


def test_prefers_recovers_planted_orientations() -> None:
    rep = run("expect line_det prefers orientation self.orientation ± 10deg on line()")
    assert [c.status for c in rep.claims] == ["pass"] * 4, [c.detail for c in rep.claims]
    for c, want in zip(rep.claims, (0, 45, 90, 135), strict=True):
        assert c.measured["preferred"] == pytest.approx(want, abs=5)
        assert c.measured["error"] <= 5


def test_prefers_wrong_value_fails_with_circular_error() -> None:
    (r,) = run("expect line_det[0] prefers orientation 170deg ± 5deg on line()").claims
    # 0 deg and 170 deg are 10 deg apart on the 180 deg circle of lines, not 170
    assert r.status == "fail" and r.measured["error"] == pytest.approx(10, abs=2.5)


def test_responds_z_is_high_at_preferred_and_low_orthogonal() -> None:
    rep = run(
        "expect line_det[2] responds to line(orientation = 90deg) as hi\n"
        "expect line_det[2] responds to line(orientation = 0deg) as lo\n"
    )
    hi, lo = rep.claims[0], rep.claims[1]
    assert hi.status == "pass" and hi.measured["z"] >= 2
    assert lo.status == "fail" and lo.measured["z"] < 0


def test_echo_on_line_is_orthogonal_and_half_turn_for_curves() -> None:
    # conv2:0 = line 0deg minus line 90deg: its response to the orthogonal line is negative
    (r,) = run("expect opp no echo on line(orientation = 90deg)").claims
    assert r.status == "pass" and r.measured["echo"] < 0 and r.measured["echo_ratio"] == 0
    # a line detector is symmetric under a half turn: a curve's echo is strong
    (r,) = run("expect line_det[0] no echo on line()").claims
    assert r.measured["echo_ratio"] < 0.1  # orthogonal line (line period 180: echo at +90)


def test_colour_invariance_of_a_colour_blind_kernel() -> None:
    (r,) = run("expect line_det[1] invariant to brightness on line(orientation = 45deg)").claims
    # responses scale with the stroke's brightness 0.4..1: cv is large, the claim fails
    assert r.status == "fail" and r.measured["cv"] > 0.25
    (r,) = run("expect line_det[1] invariant to colour on line(orientation = 45deg)").claims
    # white excites three times as much as a primary colour: not invariant either
    assert r.measured["max"] > 2 * r.measured["min"] > 0


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        ("expect opp responds to squiggle()", "E100", "unknown stimulus `squiggle`"),
        ("expect opp responds to line(lenght = 3)", "E104", "no parameter `lenght`"),
        ("expect opp invariant to texture on line()", "E108", "`texture` is not measured"),
        ("expect opp prefers twist 3 ± 1 on line()", "E104", "`twist` to sweep"),
    ],
)
def test_bad_stimulus_and_aspect_are_diagnostics(line: str, code: str, words: str) -> None:
    with pytest.raises(DiagnosticError) as info:
        circuitdsl.loads(HEADER + line + "\n")
    assert [(d.code, words in d.message) for d in info.value.diagnostics] == [(code, True)]


def test_unmeasurable_claims_are_errors_not_tracebacks() -> None:
    rep = run("expect opp no echo on circle()\n")
    assert [c.status for c in rep.claims] == ["error"]
    assert "no orientation" in rep.claims[0].detail


def test_stimuli_are_shared_and_the_model_runs_once() -> None:
    adapter = planted_adapter()
    calls = []
    orig = Runner.centres

    def counting(self, images, nodes, canvas=None):  # type: ignore[no-untyped-def]
        calls.append(len(images))
        return orig(self, images, nodes, canvas)

    Runner.centres = counting  # type: ignore[method-assign]
    try:
        src = "circuit c\nfeature a = conv2:0\nfeature b = conv2:1\n" + "".join(
            f"expect {f} responds to line(orientation = {o}deg) as {f}{o}\n"
            for f in "ab"
            for o in (0, 45)
        )
        rep = check_spec(circuitdsl.loads(src).circuit, adapter)
    finally:
        Runner.centres = orig  # type: ignore[method-assign]
    assert all(c.status in ("pass", "fail") for c in rep.claims)
    assert len(calls) == 1  # one batched run for all four claims
    assert calls[0] < 4 * 100  # the reference set is rendered once, not per claim


def test_centre_of_even_and_odd_maps() -> None:
    t = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert centre(t).item() == pytest.approx((5 + 6 + 9 + 10) / 4)
    t = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert centre(t).item() == 4.0
    # the units the geometry names on a canvas: (row, column, rows, columns)
    assert centre(torch.arange(16.0).reshape(1, 1, 4, 4), (1, 2, 1, 1)).item() == 6.0


def test_plan_deduplicates() -> None:
    from circuitdsl.models.geometry import Canvas

    plan = Plan(lambda node: Canvas((16, 16), (0.0, 0.0)))
    src = Source(plan, lambda layer: layer)

    class F:
        layer, channels, coefficients = "conv1", (0,), (1.0,)

    src.sweep(F, "line", {}, "orientation", [0, 45])
    src.one(F, "line", {"orientation": 45})
    assert plan.count == 2  # the sweep's 45deg image is the stated stimulus: one key
    src.sweep(F, "line", {}, "orientation", [0, 45, 90])
    assert plan.count == 3
    # a sweep value with other parameters set is the same image as `one` of it (the keys
    # once listed the swept parameter last, so it was drawn and pushed twice)
    src.sweep(F, "line", {"length": 9}, "orientation", [0, 45])
    src.one(F, "line", {"orientation": 45, "length": 9})
    assert plan.count == 5


def test_model_preprocess_is_applied_to_stimuli() -> None:
    from predict_models import Planted

    from circuitdsl.models.base import TracedAdapter

    def dark(x: torch.Tensor) -> torch.Tensor:
        return 3.0 * x  # a model that expects images in [0, 3]

    plain = planted_adapter()
    inverted = TracedAdapter(
        "inv",
        Planted(),
        weights_path=None,
        example_input=torch.zeros(1, 3, 16, 16),
        preprocess=dark,
    )
    src = "circuit c\nfeature a = conv1:0\nexpect a responds to line()\n"
    spec = circuitdsl.loads(src)
    a0 = check_spec(spec.circuit, plain).claims[0].measured["activation"]
    a1 = check_spec(spec.circuit, inverted).claims[0].measured["activation"]
    assert a0 > 0 and a1 == pytest.approx(3 * a0)  # conv1 has no bias: linear in the input
