"""Read a spec and every file it imports: bytes -> text -> `ast.Spec`, with cycle detection.

Paths in `import "x.circ"` are relative to the importing file. Each file is read
and parsed once, however often it is imported.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span
from circuitdsl.language.syntax import ast
from circuitdsl.language.syntax.parser import parse


@dataclass
class Program:
    """The main spec and everything it imports, keyed by display path."""

    main: ast.Spec
    modules: dict[str, ast.Spec] = field(default_factory=dict)
    # import statement -> the display path it refers to
    targets: dict[int, str] = field(default_factory=dict)

    @property
    def sources(self) -> dict[str, str]:
        """Display path -> text, for rendering diagnostics."""
        return {p: m.source for p, m in self.modules.items()}

    def target(self, decl: ast.ImportDecl) -> ast.Spec:
        return self.modules[self.targets[id(decl)]]


#: The largest spec file read (a sanity bound: the largest shipped spec is a few KB).
MAX_SPEC_BYTES = 64 << 20


def read_text(
    path: Path, display: str, at: Span | None = None, *, regular_only: bool = True
) -> str:
    """A file's text, or a diagnostic saying why it cannot be read.

    Only regular files are read: `import "/dev/zero"` would read until memory runs
    out and a FIFO would block forever. The spec named on the command line may be a
    pipe (`regular_only=False`, `circ check <(gen)`); its read is still bounded by
    `MAX_SPEC_BYTES`. A UTF-8 byte-order mark at the start is dropped (editors on
    Windows write one).
    """

    def fail(message: str, help: str | None = None) -> DiagnosticError:
        return DiagnosticError([Diagnostic(d.E_FILE, message, at, help=help)])

    if "\x00" in str(path):
        raise fail(
            f"cannot read `{_printable(display)}`: the path contains a NUL byte",
            help="remove the NUL character from the path",
        )
    try:
        info = path.stat()  # follows links: a loop raises ELOOP / RuntimeError
    except FileNotFoundError:
        raise fail(
            f"cannot find `{display}`",
            help="check the path; imports are relative to the importing file",
        ) from None
    except (OSError, RuntimeError, ValueError) as err:
        raise fail(f"cannot read `{display}`: {_reason(err)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise fail(f"cannot read `{display}`: it is a directory", help="name a .circ file")
    if regular_only and not stat.S_ISREG(info.st_mode):
        raise fail(
            f"cannot read `{display}`: it is not a regular file (a device, FIFO or socket)",
            help="specs and imports must be ordinary .circ files",
        )
    if info.st_size > MAX_SPEC_BYTES:
        raise fail(
            f"cannot read `{display}`: it is {info.st_size:,} bytes, more than the"
            f" {MAX_SPEC_BYTES:,} a spec may have"
        )
    try:
        with path.open("rb") as fh:  # bounded even if the file grows meanwhile
            data = fh.read(MAX_SPEC_BYTES + 1)
    except (OSError, RuntimeError, ValueError) as err:
        raise fail(f"cannot read `{display}`: {_reason(err)}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise fail(f"cannot read `{display}`: it is larger than {MAX_SPEC_BYTES:,} bytes")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_NOT_UTF8,
                    f"`{display}` is not UTF-8 text (byte 0x{data[err.start]:02x} "
                    f"at offset {err.start})",
                    Span(display, line, col, line, col + 1),
                    help="save the file as UTF-8; .circ specs are text files",
                )
            ]
        ) from None


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno == errno.ELOOP:
        return "the path is a loop of symbolic links"
    if isinstance(err, RuntimeError) and "loop" in str(err).lower():
        return "the path is a loop of symbolic links"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return str(err)


def _printable(text: str) -> str:
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def load_program(path: str | Path) -> Program:
    """Read and parse `path` and, transitively, every file it imports."""
    root = Path(path)
    main = parse(read_text(root, str(path), regular_only=False), str(path))
    program = Program(main, {str(path): main})
    _follow_imports(program, main, root, chain=[_key(root)])
    return program


def program_from_text(text: str, path: str = "<string>") -> Program:
    """A program from text in memory; its imports resolve against the working directory."""
    main = parse(text, path)
    program = Program(main, {path: main})
    _follow_imports(program, main, Path(path), chain=[path])
    return program


def _follow_imports(program: Program, spec: ast.Spec, path: Path, chain: list[str]) -> None:
    for stmt in spec.statements:
        if not isinstance(stmt, ast.ImportDecl):
            continue
        target = path.parent / stmt.path
        if "\x00" in stmt.path:
            read_text(target, stmt.path, stmt.span)  # raises the NUL-byte diagnostic
        key = _key(target)
        display = _display(target)
        program.targets[id(stmt)] = display
        if key in chain:
            cycle = [*chain[chain.index(key) :], key]
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_IMPORT_CYCLE,
                        f"import cycle: {' -> '.join(_short(c) for c in cycle)}",
                        stmt.span,
                        help="move the shared features into a file that both import",
                    )
                ]
            )
        if display in program.modules:
            continue
        module = parse(read_text(target, display, stmt.span), display)
        program.modules[display] = module
        _follow_imports(program, module, target, [*chain, key])


def _key(path: Path) -> str:
    """The file's identity for cycle detection; a path that cannot resolve (a link loop,
    an odd name) keys by its absolute spelling and fails in `read_text` with a diagnostic."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError, ValueError):
        return os.path.abspath(path)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (OSError, RuntimeError, ValueError):
        return _printable(os.path.normpath(str(path)))


def _short(key: str) -> str:
    return Path(key).name
