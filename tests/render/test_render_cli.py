"""`circ render` end to end: every output format, and the E302 path without Graphviz."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from circuitdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
CAR = ROOT / "specs" / "inceptionv1" / "car.circ"
pytestmark = pytest.mark.skipif(not CAR.is_file(), reason="specs/inceptionv1/car.circ not here")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
@pytest.mark.parametrize("suffix", [".dot", ".svg", ".png", ".pdf", ".html"])
def test_circ_render_writes_each_format(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"car{suffix}"
    assert main(["render", str(CAR), "-o", str(out)]) == 0
    assert out.stat().st_size > 1000
    if suffix == ".html":
        page = out.read_text(encoding="utf-8")
        # The spec's source is read from the path the circuit came from.
        assert "windows -&gt; car : excites at top" in page and 'id="L15"' in page


def test_circ_render_without_graphviz(
    tmp_path: Path, no_graphviz: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "car.svg"
    assert main(["render", str(CAR), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error[E302]" in err and "apt-get install graphviz" in err
    assert not out.exists()
    assert (tmp_path / "car.dot").read_text(encoding="utf-8").startswith('digraph "car_detector"')
