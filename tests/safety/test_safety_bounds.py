"""Bounded work with clear errors, and the minimised fuzz cases of issue 16 as regressions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import circuitdsl
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span, render
from tests.safety.harness import circ

ROOT = Path(__file__).parents[2]
BASE = 'circuit c "x"\nmodel curvenet\nfeature a = conv1:0\nfeature b = conv2:3\n'
MEMBERS = ", ".join(f"{i}: {i}deg" for i in range(100))
FAMILIES = (
    f"family f(o: angle) in conv2 {{ {MEMBERS} }}\nfamily g(o: angle) in conv3 {{ {MEMBERS} }}\n"
)


def _write(tmp_path: Path, text: str, name: str = "s.circ") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- quantifier expansion -----------------------------------------------------------


def test_a_huge_for_is_refused_at_once(tmp_path: Path) -> None:
    spec = _write(
        tmp_path,
        'circuit c "x"\n' + FAMILIES + "for a in f, b in g, c in f, e in g { a -> b : excites }\n",
    )
    start = time.monotonic()
    result = circ("compile", str(spec))
    assert time.monotonic() - start < 10  # was minutes and gigabytes
    assert result.code == 2 and "E113" in result.err
    assert "100,000,000 combinations" in result.err and "--max-instances" in result.err


def test_the_instance_limit_is_settable_and_counts_nested_loops(tmp_path: Path) -> None:
    body = 'circuit c "x"\n' + FAMILIES + "for a in f { for b in g { a -> b : excites } }\n"
    spec = _write(tmp_path, body)
    # 100 outer + 100 x 100 inner = 10,100 instances, 10,000 claims
    assert circ("compile", str(spec), "--max-instances", "10099").code == 2
    result = circ("compile", str(spec), "--max-instances", "10100")
    assert result.code == 0 and len(json.loads(result.out)["claims"]) == 10_000
    with pytest.raises(DiagnosticError) as err:
        circuitdsl.loads(body, max_instances=500)
    assert err.value.diagnostics[0].code == "E113"
    assert circ("compile", str(spec), "--max-instances", "0").code == 2  # a usage error


# ---- diagnostics output -------------------------------------------------------------


def test_many_errors_on_one_long_line_print_a_bounded_report(tmp_path: Path) -> None:
    # 6,000 unknown families on one 94 KB line: each error used to reprint the whole line
    # (the fuzzed 136 KB spec wrote 2 GB to stderr).
    loop = "for " + ", ".join(f"v{i} in n{i}" for i in range(6000)) + " { a -> b : excites }"
    spec = _write(tmp_path, BASE + loop + "\n")
    start = time.monotonic()
    result = circ("compile", str(spec))
    assert result.code == 2 and time.monotonic() - start < 30
    assert result.err.count("error[E100]") == 50
    assert "... and 5950 more diagnostics in" in result.err
    assert len(result.err) < 50 * 800  # about 300 characters per diagnostic


def test_a_long_source_line_is_cut_around_the_caret() -> None:
    text = "a" * 5000 + " bad " + "b" * 5000
    diag = Diagnostic("E100", "no feature named `bad`", Span("f.circ", 1, 5002, 1, 5005))
    out = render([diag], {"f.circ": text}, colour=False)
    quoted = out.splitlines()[2]
    caret = out.splitlines()[3]
    assert len(quoted) < 220 and quoted.count("…") == 2 and " bad " in quoted
    col = caret.index("^")
    assert quoted[col : col + 3] == "bad"


# ---- imports and odd files ----------------------------------------------------------


def _import(tmp_path: Path, target: str) -> Path:
    return _write(tmp_path, f'import "{target}"\n' + BASE, "main.circ")


def test_imports_of_odd_files_are_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "loop1.circ").symlink_to(tmp_path / "loop2.circ")
    (tmp_path / "loop2.circ").symlink_to(tmp_path / "loop1.circ")
    os.mkfifo(tmp_path / "fifo.circ")
    (tmp_path / "folder.circ").mkdir()
    cases = {
        "loop1.circ": "loop of symbolic links",
        "/dev/zero": "not a regular file",  # used to read until memory ran out
        "fifo.circ": "not a regular file",  # used to hang
        "folder.circ": "is a directory",
    }
    for target, words in cases.items():
        result = circ("check", str(_import(tmp_path, target)))
        assert result.code == 2 and "E003" in result.err and words in result.err, target


def test_a_nul_byte_in_an_import_path(tmp_path: Path) -> None:
    spec = tmp_path / "nul.circ"
    spec.write_bytes(b'import "a\x00b.circ"\n' + BASE.encode())
    result = circ("compile", str(spec))
    assert result.code == 2 and "E003" in result.err and "NUL byte" in result.err


def test_a_spec_that_is_not_a_file(tmp_path: Path) -> None:
    result = circ("compile", str(tmp_path))
    assert result.code == 2 and "E003" in result.err and "directory" in result.err
    result = circ("fmt", "/dev/null")
    assert result.code == 2 and "E003" in result.err


# ---- numbers, BOM, JSON -------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "family f(o: angle) = top {k} of conv2 by curve(radius = 8) over orientation",
        "a -> b : among top {k} inputs",
        "a -> b : excites (z >= {k})",
        "feature c = conv3:{k}",
    ],
)
def test_a_400_digit_number_is_a_diagnostic(tmp_path: Path, line: str) -> None:
    spec = _write(tmp_path, BASE + line.format(k="9" * 400) + "\n")
    result = circ("compile", str(spec))
    assert result.code == 2 and "E108" in result.err and "too large" in result.err
    assert max(len(ln) for ln in result.err.splitlines()) < 400  # not the 400 digits, twice


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    spec = tmp_path / "bom.circ"
    spec.write_bytes(b"\xef\xbb\xbf" + BASE.encode() + b"a -> b : excites\n")
    result = circ("compile", str(spec))
    assert result.code == 0 and json.loads(result.out)["circuit"] == "c"
    assert circuitdsl.loads("\ufeff" + BASE).circuit.name == "c"


def _strict(text: str) -> object:
    def refuse(word: str) -> object:
        raise AssertionError(f"{word} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict(tmp_path: Path) -> None:
    big = "1" + "0" * 300  # 1e300: a large but finite float
    spec = _write(tmp_path, BASE + f"a -> b : excites (z >= {big}), among top 3 inputs\n")
    result = circ("compile", str(spec))
    assert result.code == 0
    data = _strict(result.out)
    assert any(t[2] == 1e300 for c in data["claims"] for t in c["thresholds"])


def test_fmt_keeps_an_invalid_grouped_comparison_invalid(tmp_path: Path) -> None:
    text = BASE + "feature e = conv2:4\n{a, b} -> e stronger than a -> b\n"
    spec = _write(tmp_path, text)
    result = circ("fmt", str(spec))
    assert result.code == 2 and "E010" in result.err
    assert spec.read_text() == text  # no member silently dropped


def test_a_closed_stdout_pipe_exits_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "circuitdsl", "compile", "specs/inceptionv1/car.circ"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before circ writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert err == ""
