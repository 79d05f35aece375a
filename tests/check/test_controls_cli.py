"""`circ check --control`: the spec re-run on control weights, with its false-pass rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitdsl.cli import main

ROOT = Path(__file__).parents[2]


def test_control_reports_false_passes(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    spec = "specs/curvenet/curve_hypotheses.circ"
    main(["check", spec, "--format", "json"])
    real = json.loads(capfd.readouterr().out)
    assert "control" not in real and len(real["aggregates"]) == 5
    main(["check", spec, "--control", "negated", "--format", "json"])
    neg = json.loads(capfd.readouterr().out)
    fp = neg["control"]["false_passes"]
    assert neg["control"]["kind"] == "negated" and fp["of"] == 64
    assert fp["claims"] == sum(c["status"] == "pass" for c in neg["claims"])
    assert all(a["status"] == "fail" for a in neg["aggregates"])
    # the line that passes on the real weights fails on the sign-flipped ones
    assert any(a["status"] == "pass" for a in real["aggregates"])
    main(["check", spec, "--control", "null"])
    assert "control: null -- every pass below is a false pass" in capfd.readouterr().out


def test_unknown_control_is_a_usage_error(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "x.circ", "--control", "bogus"]) == 2
    assert "--control" in capfd.readouterr().err
