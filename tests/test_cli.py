"""The `circ` command end to end: exit codes, positions on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from circuitdsl.cli import main

ROOT = Path(__file__).parents[1]
CASES = ROOT / "tests" / "frontend" / "cases"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "circuitdsl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_compile_to_stdout_is_json() -> None:
    result = run("compile", "specs/inceptionv1/car.circ")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["circuit"] == "car_detector"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("case", "position"),
    [
        ("syntax_missing_colon.circ", "syntax_missing_colon.circ:4:8"),
        ("resolve_errors.circ", "resolve_errors.circ:13:1"),
        ("not_utf8.circ", "not_utf8.circ:1:"),
        ("empty.circ", "empty.circ:1:1"),
    ],
)
def test_user_errors_exit_2_with_position_and_no_traceback(case: str, position: str) -> None:
    result = run("compile", case, cwd=CASES)
    assert result.returncode == 2
    assert position in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "no/such/spec.circ"]) == 2
    err = capsys.readouterr().err
    assert "cannot find `no/such/spec.circ`" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert "error[E300]" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def test_compile_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for suffix in (".json", ".graphml"):
        out = tmp_path / f"car{suffix}"
        assert main(["compile", "specs/inceptionv1/car.circ", "-o", str(out)]) == 0
        assert out.read_text().strip()
    assert main(["compile", "specs/inceptionv1/car.circ", "-o", str(tmp_path / "x.txt")]) == 2


def test_fmt_check_and_rewrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy = tmp_path / "messy.circ"
    messy.write_text(
        'circuit   m   # the name\nfeature a=conv1:0\nfeature b =conv2:1 "label"\n\n\n'
        "a->b:excites,inhibits at top(z>=2)\n# end\n"
    )
    assert main(["fmt", "--check", str(messy)]) == 1
    assert "would reformat" in capsys.readouterr().err
    assert main(["fmt", str(messy)]) == 0
    assert messy.read_text() == (
        'circuit m  # the name\nfeature a = conv1:0\nfeature b = conv2:1 "label"\n\n'
        "a -> b : excites, inhibits at top (z >= 2)\n# end\n"
    )
    assert main(["fmt", "--check", str(messy)]) == 0


def test_shipped_specs_are_formatted() -> None:
    specs = sorted(str(p) for p in (ROOT / "specs").rglob("*.circ"))
    assert main(["fmt", "--check", *specs]) == 0


def test_help_for_every_subcommand() -> None:
    for command in ("check", "compile", "render", "fmt", "layers"):
        result = run(command, "--help")
        assert result.returncode == 0
        assert "usage: circ" in result.stdout


def test_runaway_nesting_is_a_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.circ"
    condition = "(" * 3000 + "1 < 2" + ")" * 3000
    deep.write_text(
        "circuit deep\nfamily f(o: angle) in c { 1: 0deg }\nfeature b = d:0\n"
        f"for a in f where {condition} {{\n  a -> b : excites\n}}\n"
    )
    assert main(["compile", str(deep)]) == 2
    err = capsys.readouterr().err
    assert "too deeply" in err and "Traceback" not in err


def test_hints_point_the_right_way(capsys: pytest.CaptureFixture[str]) -> None:
    """`resnet18` is torchvision's, not `curvenet`; a wrong --weights path is a typo to
    fix, not a reason to retrain the shipped model."""
    spec = str(ROOT / "specs" / "curvenet" / "curve_circuit.circ")
    assert main(["check", spec, "--model", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "did you mean `torchvision:resnet18`?" in err
    assert main(["check", spec, "--weights", "no/such/file.safetensors"]) == 2
    err = capsys.readouterr().err
    assert "check the path given to --weights" in err and "zoo.train" not in err
