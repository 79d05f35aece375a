"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

UPDATE_GOLDEN = bool(os.environ.get("CIRCUITDSL_UPDATE_GOLDEN"))


def check_golden(path: Path, actual: str) -> None:
    """Compare `actual` with the golden file; rewrite it when CIRCUITDSL_UPDATE_GOLDEN=1."""
    if UPDATE_GOLDEN or not path.exists():
        if not UPDATE_GOLDEN:
            pytest.fail(f"golden file {path} is missing; run with CIRCUITDSL_UPDATE_GOLDEN=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path} differs (CIRCUITDSL_UPDATE_GOLDEN=1 to regenerate)"


# Tests measure; they do not read activations cached by an earlier run (tests of the
# cache switch it on explicitly, in a temporary folder).
os.environ.setdefault("CIRCUITDSL_NO_CACHE", "1")
