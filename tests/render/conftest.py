"""Fixtures for the renderer's tests: hand-built circuits, fake reports, golden files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from render_samples import car_circuit, car_report, curve_circuit, curve_report

from circuitdsl.language.ir import Circuit
from circuitdsl.report.model import Report

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def car() -> Circuit:
    return car_circuit()


@pytest.fixture
def car_checked() -> Report:
    return car_report()


@pytest.fixture
def curves() -> Circuit:
    return curve_circuit()


@pytest.fixture
def curves_checked() -> Report:
    return curve_report()


@pytest.fixture
def no_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which there is no `dot` (nor anything else)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _check_golden(name: str, text: str) -> None:
    """Compare `text` with golden/NAME; CIRCUITDSL_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("CIRCUITDSL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"missing golden file {path}; run with CIRCUITDSL_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (
        f"{name} differs from its golden file; if the change is intended, "
        "regenerate with CIRCUITDSL_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """`golden(name, text)`: assert `text` equals tests/render/golden/NAME."""
    return _check_golden
