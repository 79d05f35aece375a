"""Features declared by behaviour: syntax, diagnostics, choice on a model, the report."""

from __future__ import annotations

import pytest
from predict_models import tuned_adapter

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.language.loader import program_from_text
from circuitdsl.language.syntax.fmt import format_spec
from circuitdsl.measure.select import has_selectors, materialise

SPEC = """circuit chosen
feature vertical = top 1 of conv1 by line(orientation = 90deg) "the best vertical line unit"
family lines(orientation: angle) = top 4 of conv1 by line(length = 9) over orientation
family any2 = top 2 of conv1 by line()
expect lines prefers orientation self.orientation ± 10deg on line()
"""


def test_selector_round_trips_through_fmt() -> None:
    program = program_from_text(SPEC, "s.circ")
    text = format_spec(program.main)
    assert text == SPEC
    assert format_spec(program_from_text(text, "s.circ").main) == text
    assert has_selectors(program)


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        ("feature f = top 2 of conv1 by line()", "E108", "a feature is one channel"),
        ("feature f = top 0 of conv1 by line()", "E108", "whole number >= 1"),
        ("feature f = top 1 of conv1 by lien()", "E100", "unknown stimulus `lien`"),
        ("feature f = top 1 of conv1 by line(lenght = 3)", "E104", "no parameter `lenght`"),
        ("family f(size: number) = top 2 of conv1 by line() over orientation", "E104", "size"),
        ("family f = top 2 of conv1 by line() over twist", "E104", "`twist` to sweep"),
    ],
)
def test_bad_selectors_are_diagnostics(line: str, code: str, words: str) -> None:
    with pytest.raises(DiagnosticError) as info:
        circuitdsl.loads("circuit bad\n" + line + "\n")
    diags = info.value.diagnostics
    assert any(d.code == code and words in d.message for d in diags), [
        (d.code, d.message) for d in diags
    ]
    assert all(d.span is not None and d.span.line == 2 for d in diags)


def test_compile_without_a_model_keeps_selectors_unresolved() -> None:
    spec = circuitdsl.loads(SPEC)
    assert spec.circuit.feature("vertical").channels == ()
    assert spec.circuit.family("lines").members == ()
    assert spec.claims == ()  # claims over a chosen family expand once it is chosen


def test_choice_on_a_planted_model() -> None:
    program, chosen = materialise(program_from_text(SPEC, "s.circ"), tuned_adapter())
    by_name = {c.name: c for c in chosen}
    assert by_name["vertical"].channels == (2,)  # conv1:2 is the planted 90deg detector
    lines = by_name["lines"]
    assert sorted(lines.channels) == [0, 1, 2, 3]
    assert lines.values is not None
    for ch, v in zip(lines.channels, lines.values, strict=True):
        assert min(abs(v - 45 * ch), 180 - abs(v - 45 * ch)) <= 10
    text = format_spec(program.main)
    assert "feature vertical = conv1:2" in text
    assert "family lines(orientation: angle) in conv1 {" in text


def test_report_lists_choices_and_claims_expand() -> None:
    program = program_from_text(SPEC, "s.circ")
    spec = circuitdsl.loads(SPEC)
    rep = check_spec(spec.circuit, tuned_adapter(), program=program)
    assert len(rep.claims) == 4 and all(c.status == "pass" for c in rep.claims)
    assert any(s.startswith("vertical = top 1 of conv1") and "conv1:2" in s for s in rep.selections)
    assert "selected: lines = top 4 of conv1" in rep.to_text()
    assert rep.to_dict()["selected"] == list(rep.selections)


def test_unknown_layer_and_too_many_channels_at_bind_time() -> None:
    src = "circuit b\nfeature f = top 1 of conv9 by line()\nfamily g = top 9 of conv1 by line()\n"
    with pytest.raises(DiagnosticError) as info:
        materialise(program_from_text(src, "b.circ"), tuned_adapter())
    codes = sorted(d.code for d in info.value.diagnostics)
    assert codes == ["E108", "E201"]
    assert all(d.span is not None for d in info.value.diagnostics)
