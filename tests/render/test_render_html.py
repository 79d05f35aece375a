"""The HTML report: self-contained, claims table linked to the marked source, kernels."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from render_samples import CAR_SOURCE

from circuitdsl.language.ir import Circuit
from circuitdsl.render import kernel_svg, report_table_html, to_html
from circuitdsl.report.model import Report
from circuitdsl.report.style import POS_HEX

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)
            elif key in ("href", "xlink:href") and value:
                self.hrefs.append(value)
            elif key == "src" and value:
                self.srcs.append(value)


def _parse(page: str) -> _Collector:
    c = _Collector()
    c.feed(page)
    return c


@needs_dot
def test_page_is_self_contained(car: Circuit, car_checked: Report) -> None:
    page = to_html(car, car_checked, CAR_SOURCE)
    doc = _parse(page)
    # Nothing is fetched: no external scripts, styles, images or fonts.
    assert not doc.srcs
    assert "<link" not in page and "@import" not in page and "url(" not in page
    external = [h for h in doc.hrefs if re.match(r"(https?:)?//", h)]
    assert external == []
    assert "svg" in doc.tags and "style" in doc.tags


@needs_dot
def test_table_links_to_marked_source_lines(car: Circuit, car_checked: Report) -> None:
    page = to_html(car, car_checked, CAR_SOURCE)
    doc = _parse(page)
    # Every internal link has a target.
    for href in doc.hrefs:
        if href.startswith("#"):
            assert href[1:] in doc.ids, f"dangling link {href}"
    assert '<a href="#L13">specs/car.circ:13</a>' in page
    # The wheels line holds the failing claim, so it is marked as failing and links back.
    line13 = re.search(r'<span class="ln st-fail" id="L13">.*?</span></span>', page)
    assert line13 and "wheels" in line13.group(0) and 'href="#c5"' in line13.group(0)
    assert '<span class="ln st-pass" id="L11">' in page
    assert '<span class="ln" id="L1">' in page  # unmarked comment line


@needs_dot
def test_claims_table_has_numbers_and_coloured_verdicts(car: Circuit, car_checked: Report) -> None:
    page = to_html(car, car_checked, CAR_SOURCE)
    row = re.search(r'<tr id="c5" class="claim st-fail".*?</tr>', page)
    assert row is not None
    text = row.group(0)
    assert "car.wheels_top" in text and "z = 0.4" in text and "z &lt;= -1" in text
    assert "#c00020" in text and "✗ fail" in text
    assert page.count('class="claim st-pass"') == 7


@needs_dot
def test_kernels_are_inline_svg_rects(car: Circuit, car_checked: Report) -> None:
    page = to_html(car, car_checked, CAR_SOURCE)
    gallery = page.split("<h2>Kernels</h2>")[1].split("<h2>")[0]
    assert gallery.count('class="kcard') == 3  # windows, car_body, wheels -> car
    assert gallery.count("<rect ") >= 3 * 25
    assert f'fill="{POS_HEX}"' in gallery
    assert 'class="kcard st-fail"' in gallery


def test_kernel_svg_parses_and_scales() -> None:
    svg = kernel_svg([[1.0, -1.0], [0.0, 0.5]])
    root = ET.fromstring(svg)
    fills = [r.get("fill") for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert fills[:4] == [POS_HEX, "#0571b0", "#ffffff", "#e58090"]
    assert kernel_svg([]) == ""


def test_page_without_graphviz_still_renders(
    car: Circuit, car_checked: Report, no_graphviz: None
) -> None:
    page = to_html(car, car_checked, CAR_SOURCE)
    assert "Graphviz is not installed" in page and "apt-get install graphviz" in page
    assert "digraph" in page  # the DOT source, for rendering elsewhere
    assert 'id="c5"' in page


def test_page_without_report_or_source(car: Circuit, no_graphviz: None) -> None:
    page = to_html(car)  # specs/car.circ does not exist here
    assert "Not checked yet for model inceptionv1" in page
    assert "not checked" in page and "z &gt;= 1" in page  # thresholds from the spec
    assert "The spec source is not available." in page


def test_source_is_read_from_the_circuit_path(car: Circuit, tmp_path, no_graphviz: None) -> None:
    from dataclasses import replace

    spec = tmp_path / "car.circ"
    spec.write_text(CAR_SOURCE, encoding="utf-8")
    moved = replace(
        car,
        path=str(spec),
        claims=tuple(
            replace(c, span=replace(c.span, file=str(spec))) if c.span else c for c in car.claims
        ),
    )
    page = to_html(moved)
    assert '<span class="ln st-none" id="L11">' in page


@needs_dot
def test_quantified_claims_summarise_marks(curves: Circuit, curves_checked: Report) -> None:
    source = "\n".join(f"line {i}" for i in range(1, 25))
    page = to_html(curves, curves_checked, source)
    line18 = re.search(r'<span class="ln st-fail" id="L18">.*?</span></span>', page)
    assert line18 and "more (2 failing in all)" in line18.group(0)
    # The `for` line (the claims' origin) is marked as well.
    assert '<span class="ln st-fail" id="L16">' in page


def test_report_table_html_for_jupyter(car_checked: Report) -> None:
    table = report_table_html(car_checked)
    assert table == car_checked._repr_html_()
    assert "<style" not in table  # inline styles only: notebooks may drop <style>
    assert "7 passed" in table and "1 failed" in table
    assert table.count("<tr id=") == 8
    assert "<svg" in table  # kernel thumbnails


def test_big_kernel_galleries_fold_passing_cards(
    curves: Circuit, curves_checked: Report, no_graphviz: None
) -> None:
    page = to_html(curves, curves_checked)
    gallery = page.split("<h2>Kernels</h2>")[1].split("<h2>")[0]
    assert "2 of 90 connections have a failing claim:" in gallery
    head, folded = gallery.split("<details>")
    assert head.count('class="kcard st-fail"') == 2
    assert folded.count('class="kcard') == 88 and "the other 88 kernels" in folded
