"""Read a spec and every file it imports: bytes -> text -> `ast.Spec`, with cycle detection.

Paths in `import "x.circ"` are relative to the importing file. Each file is read
and parsed once, however often it is imported.
"""

from __future__ import annotations

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


def read_text(path: Path, display: str, at: Span | None = None) -> str:
    """A file's text, or a diagnostic saying why it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_FILE,
                    f"cannot find `{display}`",
                    at,
                    help="check the path; imports are relative to the importing file",
                )
            ]
        ) from None
    except OSError as err:
        raise DiagnosticError(
            [Diagnostic(d.E_FILE, f"cannot read `{display}`: {err.strerror}", at)]
        ) from None
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


def load_program(path: str | Path) -> Program:
    """Read and parse `path` and, transitively, every file it imports."""
    root = Path(path)
    main = parse(read_text(root, str(path)), str(path))
    program = Program(main, {str(path): main})
    _follow_imports(program, main, root, chain=[str(root.resolve())])
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
        key = str(target.resolve())
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


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def _short(key: str) -> str:
    return Path(key).name
