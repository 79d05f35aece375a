"""Golden diagnostics: each case file marks its errors inline with `# E: CODE`.

Every marked line must produce a diagnostic with that code and no unmarked line may
produce one; the rendered text is compared with `golden/<case>.err`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import circuitdsl
from circuitdsl.language.diagnostics import DiagnosticError, render
from tests.conftest import check_golden

CASES = Path(__file__).parent / "cases"
GOLDEN = Path(__file__).parent / "golden"
MARK = re.compile(rb"#\s*E:\s*(E\d{3})")


def expectations(path: Path) -> set[tuple[int, str]]:
    found = set()
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        for code in MARK.findall(line):
            found.add((number, code.decode()))
    return found


def diagnose(path: Path, monkeypatch: pytest.MonkeyPatch) -> DiagnosticError:
    monkeypatch.chdir(path.parent)
    with pytest.raises(DiagnosticError) as info:
        circuitdsl.load(path.name)
    return info.value


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*.circ")))
def test_case(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = CASES / case
    err = diagnose(path, monkeypatch)
    got = {(diag.span.line if diag.span else 0, diag.code) for diag in err.diagnostics}
    expected = expectations(path)
    if expected:
        assert got == expected
    else:  # files without markers (empty, not UTF-8) fail on line 1
        assert {line for line, _ in got} == {1}
    sources = {case: path.read_text(encoding="utf-8", errors="replace")}
    check_golden(GOLDEN / f"{path.stem}.err", render(err.diagnostics, sources, colour=False) + "\n")


def test_every_resolve_error_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    err = diagnose(CASES / "resolve_errors.circ", monkeypatch)
    assert len(err.diagnostics) >= 20
    lines = [diag.span.line for diag in err.diagnostics if diag.span]
    assert lines == sorted(lines), "diagnostics are sorted by position"


def test_did_you_mean_for_names(monkeypatch: pytest.MonkeyPatch) -> None:
    err = diagnose(CASES / "resolve_errors.circ", monkeypatch)
    helps = {diag.message: diag.help for diag in err.diagnostics}
    assert helps["no feature or family named `windos`"] == "did you mean `windows`?"
    assert helps["unknown parameter type `angel`"] == "did you mean `angle`?"
    assert helps["unknown function `angle_betwen`"] == "did you mean `angle_between`?"
    assert "342, 388" in helps["`curve` has no member 999"]


def test_syntax_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    def help_of(case: str) -> str:
        return diagnose(CASES / case, monkeypatch).diagnostics[0].help or ""

    assert "colon" in help_of("syntax_missing_colon.circ")
    assert "did you mean `feature`" in help_of("syntax_keyword_typo.circ")
    assert "did you mean `excites`" in help_of("syntax_claim_word.circ")
    assert "30deg" in help_of("angle_unit.circ") or "unit" in help_of("angle_unit.circ")


def test_import_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    err = diagnose(CASES / "imports" / "cycle_a.circ", monkeypatch)
    (diag,) = err.diagnostics
    assert diag.code == "E105"
    assert "cycle_a.circ -> cycle_b.circ -> cycle_a.circ" in diag.message
    assert diag.span is not None and diag.span.file.endswith("cycle_b.circ")


def test_unknown_imported_name(monkeypatch: pytest.MonkeyPatch) -> None:
    err = diagnose(CASES / "imports" / "uses_lib.circ", monkeypatch)
    (diag,) = err.diagnostics
    assert diag.code == "E100" and "carr" in diag.message
    assert diag.help == "did you mean `car`?"


def test_missing_import(monkeypatch: pytest.MonkeyPatch) -> None:
    err = diagnose(CASES / "imports" / "missing.circ", monkeypatch)
    (diag,) = err.diagnostics
    assert diag.code == "E003" and diag.span is not None and diag.span.line == 2


def test_imports_bring_families_and_their_members(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES / "imports")
    spec = circuitdsl.load("good.circ")
    ids = [c.id for c in spec.claims]
    assert ids == [
        "early->car.excites",
        "early->curve[342].excites",
        "early->curve[388].excites",
    ]
    assert spec.circuit.feature("curve[388]").param("orientation") == 66.5
