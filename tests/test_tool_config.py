"""`[tool.circ]` in pyproject.toml: project defaults the command line overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitdsl.cli import main, tool_config

ROOT = Path(__file__).parents[1]
SPEC = ROOT / "specs" / "curvenet" / "curve_circuit.circ"


def _project(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[tool.circ]\n{table}')
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    return sub


def test_defaults_apply_and_the_command_line_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(_project(tmp_path, 'format = "json"\njunit_family = "xunit1"\n'))
    config, path = tool_config()
    assert config == {"format": "json", "junit_family": "xunit1"}
    assert path == tmp_path / "pyproject.toml"  # found from a folder below it
    assert main(["check", str(SPEC), "-k", "line[22]"]) == 0
    doc = json.loads(capsys.readouterr().out)  # json, from [tool.circ]
    assert doc["summary"] == {"pass": 1, "fail": 0, "error": 0}  # line[22] -> curve[7]
    assert main(["check", str(SPEC), "-k", "line[22]", "--format", "text"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].strip("= ").startswith("1 passed")


def test_model_is_the_fallback_for_specs_without_a_model_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.circ"
    spec.write_text("circuit s\nfeature a = conv2:22\nfeature b = conv3:7\na -> b : excites\n")
    monkeypatch.chdir(_project(tmp_path, 'model = "curvenet"\n'))
    assert main(["check", str(spec)]) == 0
    assert "model curvenet" in capsys.readouterr().out


def test_bad_settings_are_diagnostics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(_project(tmp_path, 'modle = "curvenet"\ndevice = "tpu"\n'))
    assert main(["check", str(SPEC)]) == 2
    err = capsys.readouterr().err
    assert "has no setting `modle`" in err and 'device = \'tpu\' is not "cpu" | "cuda"' in err
