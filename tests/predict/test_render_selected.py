"""Regression: a spec with behaviour selectors is drawn with the members its check chose.

`circ render --model` used to draw such a family from the spec alone, before any model
chose it: "0 members", its claims missing (issue 15). The drawing now uses the spec
compiled with the report's choices, also when the report is read back from JSON.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from predict_models import tuned_adapter

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.cli import main
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.render.dot import to_dot
from circuitdsl.render.rerender import circuit_for_report
from circuitdsl.report.model import Report

ROOT = Path(__file__).parents[2]
SPEC = """circuit chosen
family lines(orientation: angle) = top 4 of conv1 by line(length = 9) over orientation
expect lines prefers orientation self.orientation ± 10deg on line()
"""


def test_family_chosen_by_behaviour_is_drawn_with_its_members() -> None:
    spec = circuitdsl.loads(SPEC, "s.circ")
    report = check_spec(spec.circuit, tuned_adapter(), program=spec.program)
    assert len(report.claims) == 4
    # the bug: the spec alone has no members and no claims to draw
    assert "0 members" in to_dot(spec.circuit, report)
    circuit = circuit_for_report(spec, report)
    dot = to_dot(circuit, report)
    assert "0 members" not in dot and "4 members" in dot
    for c in report.claims:  # every measured claim is on the drawing
        member = re.search(r"lines\[(\d+)\]", c.id)
        assert member is not None and f"lines[{member.group(1)}]" in dot
    # read back from JSON (no model): the same drawing
    again = Report.from_json(report.to_json())
    assert to_dot(circuit_for_report(spec, again), again) == dot


def test_a_report_without_the_choices_is_a_diagnostic() -> None:
    spec = circuitdsl.loads(SPEC, "s.circ")
    report = check_spec(spec.circuit, tuned_adapter(), program=spec.program)
    old = Report.from_dict(
        {**report.to_dict(), "selections": [], "runs": [{**report.to_run_dict(), "selections": []}]}
    )
    with pytest.raises(DiagnosticError, match="does not record the choices"):
        circuit_for_report(spec, old)


def test_a_selector_without_its_choice_is_a_diagnostic_at_the_selector() -> None:
    """`apply_selections` with choices for some selectors only: the others are E300,
    each at its own selector, all reported together."""
    from circuitdsl.measure.select import apply_selections, materialise

    text = SPEC + "family more(orientation: angle) = top 2 of conv1 by line() over orientation\n"
    spec = circuitdsl.loads(text, "s.circ")
    program, selections = materialise(spec.program, tuned_adapter())
    assert [s.name for s in selections] == ["lines", "more"]
    assert apply_selections(spec.program, selections) == program  # the same rewrite
    with pytest.raises(DiagnosticError) as err:
        apply_selections(spec.program, [])
    found = err.value.diagnostics
    assert [x.span.line for x in found if x.span is not None] == [2, 4]
    assert all("does not say which channels" in x.message for x in found)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
def test_cli_check_render_and_render_from_the_report_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    spec = "specs/curvenet/universal.circ"
    drawn, saved, redrawn = tmp_path / "a.dot", tmp_path / "r.json", tmp_path / "b.dot"
    code = main(["check", spec, "-o", str(saved), "--render", str(drawn)])
    assert code in (0, 1)  # the echo claims are a finding, not this test's subject
    text = drawn.read_text()
    assert "3 members" in text and "0 members" not in text
    # re-drawn from the saved report, without a model: identical
    assert main(["render", spec, "--report", str(saved), "-o", str(redrawn)]) == 0
    assert redrawn.read_text() == text


def test_only_selects_claims_after_the_choice() -> None:
    """`-k` (check_spec's `only`) filters the claims that exist once a selector chose."""
    spec = circuitdsl.loads(SPEC, "s.circ")
    everything = check_spec(spec.circuit, tuned_adapter(), program=spec.program)
    first = everything.claims[0].id
    one = check_spec(
        spec.circuit, tuned_adapter(), program=spec.program, only=lambda cid: cid == first
    )
    assert [c.id for c in one.claims] == [first]
    assert one.selection_data == everything.selection_data  # the choice is unchanged
