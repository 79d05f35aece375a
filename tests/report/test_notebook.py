"""What a notebook shows: a short report repr, and errors that keep location and hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_samples import demo_report

import circuitdsl
from circuitdsl.language.diagnostics import DiagnosticError


def test_report_repr_is_one_short_line() -> None:
    text = repr(demo_report())
    assert len(text) < 100 and "\n" not in text
    assert "5 claims" in text and "1 failed" in text


def _error(tmp_path: Path) -> DiagnosticError:
    spec = tmp_path / "typo.circ"
    spec.write_text("circuit t\nfeature a = conv1:0\nfeature body = conv2:1\na -> bdy : excites\n")
    with pytest.raises(DiagnosticError) as info:
        circuitdsl.load(spec)
    return info.value


def test_raised_error_renders_like_the_cli_in_ipython(tmp_path: Path) -> None:
    err = _error(tmp_path)
    lines = err._render_traceback_()
    text = "\n".join(lines)
    assert f"{tmp_path / 'typo.circ'}:4:" in text  # location
    assert "4 | a -> bdy : excites" in text and "^" in text  # source line and caret
    assert "help:" in text and "\x1b[" not in text


def test_error_html_keeps_location_and_hint(tmp_path: Path) -> None:
    err = _error(tmp_path)
    page = err._repr_html_()
    assert page.startswith("<pre") and "typo.circ:4:" in page
    assert ">help</b>:" in page and "a -&gt; bdy : excites" in page


def test_html_page_states_the_provenance() -> None:
    from circuitdsl.render.html import to_html

    rep = demo_report()
    circuit = circuitdsl.loads("circuit demo\nfeature a = conv1:0\n", "specs/demo.circ").circuit
    page = to_html(circuit, rep, source_text="")
    assert "torch 2.4.0" in page and "weights sha256 abababababab…" in page


def test_spec_svg_shrinks_to_the_notebook_instead_of_clipping() -> None:
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` not installed")
    spec = circuitdsl.load(Path(__file__).parents[2] / "specs" / "inceptionv1" / "car.circ")
    svg = spec._repr_svg_()
    assert svg is not None and svg.startswith('<svg style="max-width:100%;height:auto" ')
    assert "viewBox=" in svg.split(">", 1)[0]  # scaling keeps the drawing's aspect
