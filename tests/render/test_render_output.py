"""Files through Graphviz: SVG/PNG/PDF are valid, and a missing `dot` is E302 + a .dot file."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from circuitdsl.language.diagnostics import E_GRAPHVIZ, E_OUTPUT, E_USAGE, DiagnosticError
from circuitdsl.language.diagnostics import render as show
from circuitdsl.language.ir import Circuit
from circuitdsl.render import circuit_svg, render, run_dot, to_dot
from circuitdsl.report.model import Report

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")


def test_dot_file_needs_no_graphviz(car: Circuit, tmp_path: Path, no_graphviz: None) -> None:
    out = render(car, tmp_path / "car.dot")
    assert out.read_text(encoding="utf-8") == to_dot(car)


@needs_dot
def test_svg_is_valid_xml(car: Circuit, car_checked: Report, tmp_path: Path) -> None:
    out = render(car, tmp_path / "car.svg", car_checked)
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = out.read_text(encoding="utf-8")
    assert "windows" in text and "✗" in text
    assert "#ca0020" in text  # the saturated kernel cell survives layout


@needs_dot
def test_png_has_magic_bytes_and_content(
    curves: Circuit, curves_checked: Report, tmp_path: Path
) -> None:
    from PIL import Image

    out = render(curves, tmp_path / "curves.png", curves_checked)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as img:
        assert img.width > 400 and img.height > 400
        grey = img.convert("L")
        dark = sum(grey.histogram()[:200])
    assert dark > 5000


@needs_dot
def test_pdf_is_a_pdf(car: Circuit, car_checked: Report, tmp_path: Path) -> None:
    out = render(car, tmp_path / "car.pdf", car_checked)
    data = out.read_bytes()
    assert data[:5] == b"%PDF-" and b"%%EOF" in data[-64:]


@needs_dot
def test_html_output(car: Circuit, car_checked: Report, tmp_path: Path) -> None:
    out = render(car, tmp_path / "car.html", car_checked)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf", ".html"])
def test_missing_graphviz_is_e302_and_writes_dot(
    car: Circuit, car_checked: Report, tmp_path: Path, no_graphviz: None, suffix: str
) -> None:
    target = tmp_path / f"car{suffix}"
    with pytest.raises(DiagnosticError) as info:
        render(car, target, car_checked)
    (diag,) = info.value.diagnostics
    assert diag.code == E_GRAPHVIZ
    assert "not installed" in diag.message and str(tmp_path / "car.dot") in diag.message
    assert "apt-get install graphviz" in (diag.help or "")
    assert "brew install graphviz" in (diag.help or "")
    assert not target.exists()
    assert (tmp_path / "car.dot").read_text(encoding="utf-8") == to_dot(car, car_checked)
    # It renders like every other diagnostic, install hint included.
    assert "error[E302]" in show(info.value.diagnostics, colour=False)


def test_circuit_svg_without_graphviz_is_e302(car: Circuit, no_graphviz: None) -> None:
    with pytest.raises(DiagnosticError) as info:
        circuit_svg(car)
    assert info.value.diagnostics[0].code == E_GRAPHVIZ


def test_unknown_format_is_a_usage_error(car: Circuit, tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as info:
        render(car, tmp_path / "car.jpeg")
    (diag,) = info.value.diagnostics
    assert diag.code == E_USAGE and ".svg" in (diag.help or "")


def test_unwritable_output_is_e301(car: Circuit, tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as info:
        render(car, tmp_path / "no" / "such" / "dir" / "car.dot")
    assert info.value.diagnostics[0].code == E_OUTPUT


@needs_dot
def test_graphviz_failure_is_e301() -> None:
    with pytest.raises(DiagnosticError) as info:
        run_dot("digraph { this is not dot", "svg")
    assert info.value.diagnostics[0].code == E_OUTPUT


@needs_dot
def test_circuit_svg_is_an_inline_svg_element(curves: Circuit, curves_checked: Report) -> None:
    svg = circuit_svg(curves, curves_checked)
    assert svg.startswith("<svg")
    ET.fromstring(svg)


@needs_dot
def test_node_images_are_inlined_in_svg(car: Circuit, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "wheel.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(png)
    svg = circuit_svg(car, node_images={"wheels": png})
    assert "data:image/png;base64," in svg and str(png) not in svg


@needs_dot
@pytest.mark.parametrize("which", ["car", "car_report", "curves", "curves_report", "grid_report"])
def test_graphviz_draws_samples_without_warnings(which: str) -> None:
    from render_samples import (
        car_circuit,
        car_report,
        curve_circuit,
        curve_report,
        small_family_report,
    )

    circuit, report = {
        "car": lambda: (car_circuit(), None),
        "car_report": lambda: (car_circuit(), car_report()),
        "curves": lambda: (curve_circuit(), None),
        "curves_report": lambda: (curve_circuit(), curve_report()),
        "grid_report": small_family_report,
    }[which]()
    proc = subprocess.run(
        ["dot", "-Tsvg"], input=to_dot(circuit, report).encode(), capture_output=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stderr.decode() == ""
