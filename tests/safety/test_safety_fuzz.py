"""Generated and mutated specs through `circ` in-process: exit 0, 1 or 2, never 3.

Specs are written to disk (imports, BOMs, NUL bytes and links are part of the input)
and run through `circ compile`, `circ fmt --check`, `circ fmt` and `circ check`. Where
fmt rewrites a spec that compiled, the rewritten spec must compile to the same claims:
fmt may change layout, never meaning. Every run is tallied (harness.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.safety.harness import circ

ROOT = Path(__file__).parents[2]
SHIPPED = sorted((ROOT / "specs").rglob("*.circ"))
SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same inputs every run: a failure is reproducible from CI logs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---- generated specs ----------------------------------------------------------------


def _mostly(common: st.SearchStrategy[str], rare: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`common` nine times in ten: most specs get past the parser to imports, models and
    numbers, and one odd value per spec is the usual case, not the exception."""
    return st.integers(0, 9).flatmap(lambda r: common if r else rare)


NAMES = _mostly(
    st.sampled_from(["a", "b", "c", "fam"]),
    st.sampled_from(["feature", "for", "é", "a_1", "x" * 300]),
)
LAYERS = _mostly(
    st.sampled_from(["conv1", "conv2", "conv3"]),
    st.sampled_from(["fc", "mixed4b", "nope", "features.0"]),
)
NUMBERS = _mostly(
    st.integers(0, 40).map(str),
    st.sampled_from(["-1", "2.5", "0", "9" * 400, "1" + "0" * 308, "1" * 30]),
)
ANGLES = _mostly(
    st.integers(-400, 400).map(lambda n: f"{n}deg"), st.sampled_from(["9" * 400 + "deg", "5"])
)
MODELS = st.sampled_from(
    [
        "curvenet",
        "fashionnet",
        '"sys:exit"',
        '"os:abort"',
        '"tests.safety.sentinel:make"',
        "nosuchmodel",
        '"torchvision:nosuch"',
        '"a:b:c"',
        '""',
    ]
)
IMPORTS = st.sampled_from(
    [
        "/dev/zero",
        "/dev/null",
        "missing.circ",
        ".",
        "loop.circ",
        "fifo.circ",
        "self.circ",
        "lib.circ",
        "a\x00b.circ",
        "../" * 40 + "etc/passwd",
        "x" * 300 + ".circ",
    ]
)


@st.composite
def statements(draw: st.DrawFn) -> str:
    n, m = draw(NAMES), draw(NAMES)
    kind = draw(st.integers(0, 12))
    if kind == 0:
        return f"feature {n} = {draw(LAYERS)}:{draw(NUMBERS)}"
    if kind == 1:
        members = ", ".join(
            f"{draw(NUMBERS)}: {draw(ANGLES)}" for _ in range(draw(st.integers(0, 4)))
        )
        return f"family {n}(o: angle) in {draw(LAYERS)} {{ {members} }}"
    if kind == 2:
        word = draw(st.sampled_from(["excites", "inhibits", "excites at top", "inhibits at left"]))
        return f"{n} -> {m} : {word}"
    if kind == 3:
        return f"{n} -> {m} : among top {draw(NUMBERS)} inputs"
    if kind == 4:
        return f"{{{n}, {m}}} -> {draw(NAMES)} : excites"
    if kind == 5:
        return f"{n} -> {m} stronger than {draw(NAMES)} -> {m}"
    if kind == 6:
        cond = draw(st.sampled_from(["", f" where {n}.o <= {draw(ANGLES)}"]))
        return f"for {n} in {draw(NAMES)}, {m} in {draw(NAMES)}{cond} {{ {n} -> {m} : excites }}"
    if kind == 7:
        return f'import "{draw(IMPORTS)}"'
    if kind == 8:
        return f"model {draw(MODELS)}"
    if kind == 9:
        return f"{n} -> {m} : excites ({draw(NAMES)} >= {draw(NUMBERS)})"
    if kind == 10:
        return (
            f"family {n}(o: angle) = top {draw(NUMBERS)} of {draw(LAYERS)}"
            f" by curve(radius = {draw(NUMBERS)}) over orientation"
        )
    if kind == 11:
        if draw(st.integers(0, 9)) == 0:
            return draw(st.text(max_size=20))  # junk, now and then
        return f"feature {n} = top 1 of {draw(LAYERS)} by line(orientation = {draw(ANGLES)})"
    return f"{n} -> {m} : excites along line {draw(ANGLES)}"


@st.composite
def generated_specs(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.booleans()):
        lines.append(f'circuit {draw(NAMES)} "{draw(st.text(max_size=10))}"')
    lines.append(f"model {draw(MODELS)}")
    lines += draw(st.lists(statements(), max_size=12))
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data


@contextmanager
def _workspace() -> Iterator[Path]:
    """A folder with the odd files the generated imports name."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "loop.circ").symlink_to(folder / "loop.circ")
        os.mkfifo(folder / "fifo.circ")
        (folder / "lib.circ").write_text('circuit lib "lib"\nfeature a = conv1:0\n')
        shutil.copytree(ROOT / "specs", folder / "specs")
        yield folder


def _claims(out: str) -> list[tuple[str, str]]:
    return [(c["id"], json.dumps(c["thresholds"])) for c in json.loads(out)["claims"]]


def _run_all(folder: Path, spec: Path, *, check: bool) -> None:
    compiled = circ("compile", str(spec))
    circ("fmt", "--check", str(spec))
    before = spec.read_bytes()
    fmt = circ("fmt", str(spec))
    if fmt.code != 0:
        assert spec.read_bytes() == before  # a refused fmt changes nothing
    elif compiled.code == 0:
        again = circ("compile", str(spec))
        assert again.code == 0, again.err
        assert _claims(again.out) == _claims(compiled.out)  # layout changed, not meaning
        assert circ("fmt", "--check", str(spec)).code == 0  # idempotent
    if check:
        circ("check", str(spec), "--format", "json", "-o", str(folder / "report.json"))
    assert sorted(p.name for p in spec.parent.glob(".*.tmp")) == []


@settings(SETTINGS, max_examples=80)
@given(data=generated_specs())
def test_generated_specs(data: bytes) -> None:
    with _workspace() as folder:
        spec = folder / "self.circ"
        spec.write_bytes(data)
        # `check` only where no model loads: factories must be refused, others fail fast.
        text = data.decode("utf-8", "replace")
        quick = "curvenet" not in text and "fashionnet" not in text
        _run_all(folder, spec, check=quick)


# ---- mutated shipped specs ----------------------------------------------------------

INSERTS = st.sampled_from(
    [
        b"\x00",
        b"\xff",
        b"{",
        b"}",
        b'"',
        b"\n",
        b"->",
        b":",
        b"9" * 400,
        b"\xef\xbb\xbf",
        b'\nimport "/dev/zero"\n',
        b'\nmodel "os:abort"\n',
        b"\nfor a in line, b in line, c in line, e in line { a -> b : excites }\n",
        b" stronger than ",
        b"{line[20], line[8]} -> curve[11] stronger than line[3] -> curve[11]\n",
    ]
)


@st.composite
def mutated_specs(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(SHIPPED))
    data = path.read_bytes()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 4))
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 80)))
        if op == 0:
            data = data[:i] + data[j:]  # delete a stretch
        elif op == 1:
            data = data[:i] + draw(INSERTS) + data[i:]
        elif op == 2:
            data = data[:i] + data[i:j] * draw(st.integers(2, 5)) + data[j:]  # repeat
        elif op == 3 and i < len(data):
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
        else:
            lines = data.split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[k])  # move a copy of a line
            data = b"\n".join(lines)
    return str(path.relative_to(ROOT)), data


@settings(SETTINGS, max_examples=80)
@given(case=mutated_specs())
def test_mutated_shipped_specs(case: tuple[str, bytes]) -> None:
    rel, data = case
    with _workspace() as folder:
        spec = folder / rel  # beside the files it imports
        spec.write_bytes(data)
        _run_all(folder, spec, check=False)


@pytest.mark.slow  # loads curvenet for each example
@settings(SETTINGS, max_examples=12)
@given(case=mutated_specs().filter(lambda c: "curvenet" in c[0]))
def test_mutated_specs_checked_on_curvenet(case: tuple[str, bytes]) -> None:
    rel, data = case
    with _workspace() as folder:
        spec = folder / rel
        spec.write_bytes(data)
        circ("check", str(spec), "--format", "json", "-o", str(folder / "report.json"))
        report = folder / "report.json"
        if report.exists():
            json.loads(report.read_text(), parse_constant=lambda w: pytest.fail(w))
