"""Open the HTML report in headless Chromium: it draws something and logs no errors.

Chromium writes every console message (errors, failed loads, uncaught exceptions)
to stderr as `...:CONSOLE:<line>] "message"` with `--enable-logging=stderr`; the
report's own script logs nothing, so any such line is a problem. A deliberately
broken page checks that this detector works at all.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from render_samples import CAR_SOURCE

from circuitdsl.language.ir import Circuit
from circuitdsl.render import render, to_html
from circuitdsl.report.model import Report

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium/chrome binary on PATH"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed"),
]
CONSOLE = re.compile(r":CONSOLE(?::|\()\d+\)?\]\s*(.*)")


def _chromium(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={page.parent / 'chromium-profile'}",
        *extra,
        page.resolve().as_uri(),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _console(stderr: str) -> list[str]:
    return [m.group(1) for m in map(CONSOLE.search, stderr.splitlines()) if m]


def _screenshot(page: Path, tmp_path: Path, size: str = "1200,900") -> tuple[Path, list[str]]:
    shot = tmp_path / "shot.png"
    proc = _chromium(page, f"--screenshot={shot}", f"--window-size={size}")
    assert shot.is_file(), f"chromium wrote no screenshot:\n{proc.stderr[-2000:]}"
    return shot, _console(proc.stderr)


def _non_white(shot: Path) -> int:
    from PIL import Image

    with Image.open(shot) as img:
        return sum(img.convert("L").histogram()[:240])


def test_console_detector_sees_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><p>x</p><script>notDefined();</script></body></html>",
        encoding="utf-8",
    )
    _, console = _screenshot(bad, tmp_path, "400,300")
    assert any("notDefined" in line for line in console)


def test_report_page_renders_without_console_errors(
    car: Circuit, car_checked: Report, tmp_path: Path
) -> None:
    page = tmp_path / "car.html"
    page.write_text(to_html(car, car_checked, CAR_SOURCE), encoding="utf-8")
    shot, console = _screenshot(page, tmp_path)
    assert console == []
    # The top of the page is the title and the diagram: plenty of ink, not a blank page.
    assert _non_white(shot) > 20_000
    # The page's script ran to the end (it marks the body when done).
    dom = _chromium(page, "--dump-dom")
    assert 'data-ready="1"' in dom.stdout
    assert _console(dom.stderr) == []


def test_family_report_page_renders(
    curves: Circuit, curves_checked: Report, tmp_path: Path
) -> None:
    page = render(curves, tmp_path / "curves.html", curves_checked)
    shot, console = _screenshot(page, tmp_path, "1200,1400")
    assert console == []
    assert _non_white(shot) > 20_000


# Appended to a copy of the page: measure every text of the diagram as drawn on screen
# (its font size in the SVG's units times the SVG's scale to CSS pixels) and whether the
# page itself stays within the window (a wide diagram scrolls inside its box).
_MEASURE = """<script>
(function () {
  var sizes = [];
  var texts = document.querySelectorAll(".diagram svg text");
  for (var i = 0; i < texts.length; i++) {
    var t = texts[i];
    if (!t.textContent.trim()) { continue; }
    var m = t.getScreenCTM();
    var scale = Math.sqrt(m.a * m.a + m.b * m.b);
    sizes.push(parseFloat(getComputedStyle(t).fontSize) * scale);
  }
  sizes.sort(function (a, b) { return a - b; });
  document.body.setAttribute("data-texts", String(sizes.length));
  document.body.setAttribute("data-min-px", sizes.length ? sizes[0].toFixed(2) : "0");
  document.body.setAttribute("data-page-width", String(document.documentElement.scrollWidth));
})();
</script></body>"""


def _text_sizes(page: Path, tmp_path: Path, width: int = 1400) -> dict[str, float]:
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE), "utf-8")
    dom = _chromium(probe, f"--window-size={width},900", "--dump-dom")
    assert _console(dom.stderr) == []
    found = dict(re.findall(r'data-(texts|min-px|page-width)="([\d.]+)"', dom.stdout))
    assert found, f"the measuring script did not run:\n{dom.stderr[-2000:]}"
    return {k: float(v) for k, v in found.items()}


def test_diagram_text_is_readable_at_1400px(
    curves: Circuit, curves_checked: Report, tmp_path: Path
) -> None:
    page = render(curves, tmp_path / "curves.html", curves_checked)
    got = _text_sizes(page, tmp_path)
    assert got["texts"] > 20  # a family grid: member headers, marks, captions
    assert got["min-px"] >= 10, got
    assert got["page-width"] <= 1400  # the page does not grow sideways with the diagram


def test_readme_main_job_page_is_readable_at_1400px(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circuitdsl.cli import main

    monkeypatch.chdir(Path(__file__).parents[2])
    page = tmp_path / "curve_circuit.html"
    assert main(["check", "specs/curvenet/curve_circuit.circ", "-qq", "--render", str(page)]) == 0
    got = _text_sizes(page, tmp_path)
    assert got["texts"] > 100 and got["min-px"] >= 10, got
    assert got["page-width"] <= 1400
