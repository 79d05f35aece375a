"""Nothing lost: fmt in place, `-o` and rendered files are written atomically.

A full disk is simulated by a file object whose `write` stores half the bytes and then
raises `OSError(ENOSPC)`: the original file must be byte-identical afterwards, the exit
status 2 with an E301 diagnostic, and no temporary file left behind.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from circuitdsl.language import atomic
from circuitdsl.language.atomic import refuse_overwrite, write_atomic
from circuitdsl.language.diagnostics import DiagnosticError
from tests.safety.harness import circ

UGLY = 'circuit c "x"\nfeature a=conv1:0\nfeature b = conv2:3\na->b:excites\n'


class _FullDisk:
    """A file object that accepts half of what is written, then reports a full disk."""

    def __init__(self, real: object) -> None:
        self.real = real

    def write(self, data: bytes) -> int:
        self.real.write(data[: len(data) // 2])  # type: ignore[attr-defined]
        self.real.flush()  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()  # type: ignore[attr-defined]


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode)))


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fmt_on_a_full_disk_keeps_the_spec(tmp_path: Path, full_disk: None) -> None:
    spec = tmp_path / "ugly.circ"
    spec.write_text(UGLY)
    result = circ("fmt", str(spec))
    assert result.code == 2 and "E301" in result.err and "No space left" in result.err
    assert spec.read_text() == UGLY  # not cut mid-statement
    assert _only(tmp_path) == ["ugly.circ"]  # the temporary file is gone


@pytest.mark.parametrize("command", ["check", "compile"])
def test_output_on_a_full_disk_keeps_the_old_output(
    tmp_path: Path, full_disk: None, command: str
) -> None:
    spec = tmp_path / "s.circ"
    spec.write_text('circuit c "x"\nmodel curvenet\nfeature a = conv1:0\n')
    out = tmp_path / "out.json"
    out.write_text('{"old": true}\n')
    args = [command, str(spec), "-o", str(out)]
    if command == "check":
        args += ["--format", "json"]
    result = circ(*args)
    assert result.code == 2 and "E301" in result.err
    assert json.loads(out.read_text()) == {"old": True}  # still the old, valid JSON
    assert _only(tmp_path) == ["out.json", "s.circ"]


def test_render_on_a_full_disk_keeps_the_old_diagram(tmp_path: Path, full_disk: None) -> None:
    spec = tmp_path / "s.circ"
    spec.write_text('circuit c "x"\nfeature a = conv1:0\nfeature b = conv2:1\na -> b : excites\n')
    out = tmp_path / "d.dot"
    out.write_text("digraph old {}\n")
    result = circ("render", str(spec), "-o", str(out))
    assert result.code == 2 and "E301" in result.err
    assert out.read_text() == "digraph old {}\n"


def test_fmt_of_a_read_only_spec_is_a_diagnostic(tmp_path: Path) -> None:
    spec = tmp_path / "ro.circ"
    spec.write_text(UGLY)
    spec.chmod(stat.S_IRUSR | stat.S_IRGRP)
    try:
        result = circ("fmt", str(spec))
    finally:
        spec.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert result.code == 2 and "E301" in result.err and "read-only" in result.err
    assert spec.read_text() == UGLY


def test_fmt_rewrites_atomically_and_keeps_permissions(tmp_path: Path) -> None:
    spec = tmp_path / "ugly.circ"
    spec.write_text(UGLY)
    spec.chmod(0o640)
    assert circ("fmt", str(spec)).code == 0
    assert spec.read_text().splitlines()[1] == "feature a = conv1:0"
    assert stat.S_IMODE(spec.stat().st_mode) == 0o640
    assert _only(tmp_path) == ["ugly.circ"]


@pytest.mark.parametrize(
    "args",
    [
        ["check", "{spec}", "-o", "{spec}"],
        ["check", "{spec}", "--render", "{spec}"],
        ["check", "{spec}", "-o", "{link}"],  # the same file through a symbolic link
        ["compile", "{spec}", "-o", "{spec}"],
        ["render", "{spec}", "-o", "{spec}"],
    ],
)
def test_an_output_that_is_an_input_is_refused(tmp_path: Path, args: list[str]) -> None:
    spec = tmp_path / "x.circ"
    spec.write_text('circuit c "x"\nmodel curvenet\nfeature a = conv1:0\n')
    (tmp_path / "link.dot").symlink_to(spec)
    before = spec.read_bytes()
    filled = [a.format(spec=spec, link=tmp_path / "link.dot") for a in args]
    result = circ(*filled)
    assert result.code == 2 and "E301" in result.err and "input" in result.err
    assert spec.read_bytes() == before


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "f.txt"
    write_atomic(target, "one\n")
    write_atomic(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    with pytest.raises(DiagnosticError) as err:
        write_atomic(tmp_path, "x")  # a directory
    assert err.value.diagnostics[0].code == "E301"
    with pytest.raises(DiagnosticError):
        refuse_overwrite(target, [tmp_path / "deep" / ".." / "deep" / "f.txt"])
    refuse_overwrite(tmp_path / "other.txt", [target, None])
    refuse_overwrite("-", [target])


def test_write_atomic_cleans_up_after_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new")
    assert target.read_text() == "old" and _only(tmp_path) == ["f.txt"]


def test_broken_pipe_on_stdout_ends_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def fileno(self) -> int:
            raise ValueError("no descriptor")  # not a real file: nothing to redirect

    spec = tmp_path / "s.circ"
    spec.write_text('circuit c "x"\nfeature a = conv1:0\n')
    from circuitdsl.cli import main

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["compile", str(spec)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_new_file_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    """The temporary file is mkstemp's 0600; a new output must not stay private to its
    writer (a shared cache, a report for colleagues): it gets 0666 minus the umask."""
    from circuitdsl.language.atomic import write_atomic

    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644
