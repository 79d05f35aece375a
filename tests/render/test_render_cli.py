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


CURVENET = ROOT / "specs" / "curvenet"


def test_check_render_of_several_runs_names_each_or_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    specs = ["specs/curvenet/curve_circuit.circ", "specs/curvenet/curve_hypotheses.circ"]
    one = tmp_path / "both.dot"
    assert main(["check", *specs, "--render", str(one)]) == 2  # before measuring anything
    err = capsys.readouterr().err
    assert "would draw 2 runs into one file" in err and "{spec}" in err
    assert not one.exists()
    template = str(tmp_path / "{spec}-{model}.dot")
    assert main(["check", *specs, "-q", "--render", template]) == 1  # the hypotheses fail
    drawn = sorted(p.name for p in tmp_path.glob("*.dot"))
    assert drawn == ["curve_circuit-curvenet.dot", "curve_hypotheses-curvenet.dot"]
    assert "curvenet_curve_hypotheses" in (tmp_path / drawn[1]).read_text()


def test_check_exits_2_when_the_drawing_fails(
    tmp_path: Path, no_graphviz: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.svg"
    spec = str(CURVENET / "curve_circuit.circ")
    assert main(["check", spec, "--render", str(out)]) == 2
    captured = capsys.readouterr()
    assert "31 passed" in captured.out  # the verdicts are still printed
    assert "error[E302]" in captured.err


def test_check_render_placeholders_also_for_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    spec = "specs/curvenet/curve_circuit.circ"
    assert main(["check", spec, "-qq", "--render", str(tmp_path / "{spec}-{model}.dot")]) == 0
    assert [p.name for p in tmp_path.glob("*.dot")] == ["curve_circuit-curvenet.dot"]


def test_full_grid_draws_every_member_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """By default a family grid has kernels only where claims are; --full-grid reads the
    others from the model, exactly as the checker reads the claimed ones."""
    import json

    monkeypatch.chdir(ROOT)
    spec = "specs/curvenet/curve_circuit.circ"
    plain, full, saved = tmp_path / "plain.dot", tmp_path / "full.dot", tmp_path / "r.json"
    assert main(["check", spec, "-qq", "--render", str(plain)]) == 0
    args = ["check", spec, "--render", str(full), "--full-grid", "--kernels", "-o", str(saved)]
    assert main(args) == 0
    empty = 'COLOR="#cccccc">·'
    assert plain.read_text().count(empty) > 50 and full.read_text().count(empty) == 0
    run = json.loads(saved.read_text())
    import jsonschema

    from circuitdsl.report.model import load_schema

    jsonschema.validate(run, load_schema())
    grid = run["grid_kernels"]
    assert len(grid) == 25 * 5 + 5 * 5  # line x curve and early_curve x curve, every pair
    claim = next(c for c in run["claims"] if c["id"] == "line[20]->curve[11].excites")
    assert grid["line[20]->curve[11]"] == claim["kernels"]["line[20]->curve[11]"]
    # a saved report with its grid kernels re-draws the same full grid without a model
    again = tmp_path / "again.dot"
    assert main(["render", spec, "--report", str(saved), "-o", str(again)]) == 0
    assert again.read_text() == full.read_text()
    assert main(["render", spec, "--full-grid", "-o", str(tmp_path / "x.dot")]) == 2
    assert "--full-grid draws weights" in capsys.readouterr().err
