"""The documentation stays true: every diagnostic code and every construct is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import circuitdsl
from circuitdsl.language.diagnostics import CODES

ROOT = Path(__file__).parents[1]


def test_every_code_is_documented() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    for code, entry in CODES.items():
        assert f"| {code} | {entry.name} |" in text, code


def _examples() -> list[str]:
    text = (ROOT / "docs" / "language.md").read_text()
    return re.findall(r"```circ\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("index", range(len(_examples())))
def test_language_examples_compile(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "specs" / "inceptionv1")  # examples may import features.circ
    example = _examples()[index]
    circuitdsl.loads(example, f"example{index}.circ")
