"""Source spans, the one `Diagnostic` type, its code registry, and rendering.

Every user-facing error in circuitdsl -- a syntax error, an unknown layer, a corrupt
weight file -- is a `Diagnostic`. Passes collect them and raise `DiagnosticError`
once at the end of the pass; the CLI renders them like a compiler and exits 2.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A region of a source file: 1-based line and column, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @property
    def location(self) -> str:
        """`file:line`, the form used in reports."""
        return f"{self.file}:{self.line}"

    def to_json(self) -> list[object]:
        return [self.file, self.line, self.col, self.end_line, self.end_col]

    @classmethod
    def from_json(cls, data: Sequence[object]) -> Span:
        file, line, col, end_line, end_col = data
        return cls(str(file), _int(line), _int(col), _int(end_line), _int(end_col))


def _int(value: object) -> int:
    """A position read back from JSON (an int, or its text)."""
    if isinstance(value, (int, str)):
        return int(value)
    raise TypeError(f"a span position must be a number, not {value!r}")


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """A registered diagnostic code with a one-line summary (documented in docs/errors.md)."""

    code: str
    name: str
    summary: str


# The registry. Codes are stable: tests and docs/errors.md refer to them.
CODES: dict[str, ErrorCode] = {}


def _code(code: str, name: str, summary: str) -> str:
    CODES[code] = ErrorCode(code, name, summary)
    return code


# Input and syntax (E0xx)
E_NOT_UTF8 = _code("E001", "not-utf8", "the file is not valid UTF-8 text")
E_EMPTY = _code("E002", "empty-spec", "the spec contains no statements")
E_FILE = _code("E003", "file-not-found", "a spec or imported file cannot be read")
E_SYNTAX = _code("E010", "syntax", "the text does not follow the grammar")
E_UNEXPECTED_CHAR = _code("E011", "unexpected-character", "a character that starts no token")
E_UNCLOSED = _code("E012", "unclosed", "a string or brace is not closed")
# Names and types (E1xx)
E_UNKNOWN_NAME = _code("E100", "unknown-name", "a feature, family or variable is not defined")
E_DUPLICATE = _code("E101", "duplicate-name", "a name is defined twice")
E_PARAM_TYPE = _code("E102", "parameter-type", "a family parameter has a value of the wrong type")
E_PARAM_ARITY = _code("E103", "parameter-count", "a family member gives the wrong number of values")
E_UNKNOWN_PARAM = _code("E104", "unknown-parameter", "a family has no parameter of that name")
E_IMPORT_CYCLE = _code("E105", "import-cycle", "files import each other in a cycle")
E_UNKNOWN_STAT = _code("E106", "unknown-statistic", "a threshold names a statistic the claim lacks")
E_DUPLICATE_CLAIM = _code("E107", "duplicate-claim", "two claims have the same id")
E_BAD_VALUE = _code("E108", "bad-value", "a value is out of its allowed range")
E_TYPE = _code("E109", "type-mismatch", "an expression combines values of incompatible types")
E_DUPLICATE_CHANNEL = _code("E110", "duplicate-channel", "a family lists a channel twice")
E_NOT_A_FAMILY = _code("E111", "not-a-family", "a name used as a family is a single feature")
E_SELF_CLAIM = _code("E112", "self-claim", "a claim connects a feature to itself")
E_TOO_MANY = _code("E113", "too-many-instances", "quantifiers expand beyond the instance limit")
# Models and binding (E2xx)
E_UNKNOWN_MODEL = _code("E200", "unknown-model", "the model name is not known")
E_UNKNOWN_LAYER = _code("E201", "unknown-layer", "the model has no layer of that name")
E_CHANNEL_RANGE = _code("E202", "channel-out-of-range", "a channel index exceeds the layer size")
E_NOT_UPSTREAM = _code("E203", "not-upstream", "a claim's source layer does not feed its target")
E_WEIGHTS_MISSING = _code("E210", "weights-missing", "no weight file was given or found")
E_WEIGHTS_CORRUPT = _code("E211", "weights-corrupt", "the weight file cannot be read")
E_WEIGHTS_MISMATCH = _code("E212", "weights-mismatch", "the weight file does not fit the model")
E_WEIGHTS_UNSAFE = _code("E213", "weights-unsafe", "the file would execute code to load")
E_MODEL_FACTORY = _code("E214", "model-factory", "a model factory cannot be imported or called")
E_NO_MODEL = _code("E215", "no-model", "the spec names no model and none was given")
E_NOT_SUPPORTED = _code("E216", "not-supported", "the model cannot measure this claim")
E_WEIGHTS_INCOMPLETE = _code(
    "E217", "weights-incomplete", "a claim needs a parameter the weight file does not have"
)
E_PREPROCESS = _code("E218", "preprocessing", "the preprocessing named is unknown or does not fit")
E_SPEC_FACTORY = _code("E220", "spec-factory", "a spec names Python code that was not allowed")
E_WEIGHTS_DTYPE = _code("E221", "weights-dtype", "the weight file holds non-float tensors")
E_WEIGHTS_NONFINITE = _code("E222", "weights-nonfinite", "the weight file holds NaN or Inf")
# Command line and output (E3xx)
E_USAGE = _code("E300", "usage", "command-line arguments are wrong")
E_OUTPUT = _code("E301", "output", "an output file cannot be written")
E_GRAPHVIZ = _code("E302", "graphviz-missing", "Graphviz's `dot` program is not installed")
E_NO_CHECKPOINTS = _code("E310", "no-checkpoints", "--checkpoints names no weight file")
E_EXECUTOR = _code("E311", "executor", "a sweep's executor cannot start (no Ray, no cluster)")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem, with where it is and what to do about it."""

    code: str
    message: str
    span: Span | None = None
    help: str | None = None
    severity: str = "error"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code!r}")

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.col, self.code)

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": CODES[self.code].name,
            "severity": self.severity,
            "message": self.message,
            "span": self.span.to_json() if self.span else None,
            "help": self.help,
        }


class CircuitDSLError(Exception):
    """The root of every exception circuitdsl raises on purpose: `except CircuitDSLError`
    catches them all, and anything else escaping the package is a bug."""


class DiagnosticError(CircuitDSLError):
    """Raised by a pass that found problems; carries every diagnostic it collected."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(
            sorted(diagnostics, key=Diagnostic.sort_key)
        )
        super().__init__("\n".join(d.message for d in self.diagnostics))

    def rendered(self, *, colour: bool = False) -> str:
        """Every diagnostic as the CLI prints it: location, source line and caret, help
        (the source lines are read from the files the spans name, where they exist)."""
        return render(self.diagnostics, _read_sources(self.diagnostics), colour=colour)

    def _render_traceback_(self) -> list[str]:
        """IPython / Jupyter show a raised error with this instead of a traceback, so a
        notebook keeps the location, the source line and the hint."""
        return self.rendered().splitlines()

    def _repr_html_(self) -> str:
        """The error as a value in Jupyter: the rendered diagnostics, help highlighted."""
        import html

        blocks = []
        for diag in self.diagnostics:
            text = html.escape(render([diag], _read_sources([diag]), colour=False))
            text = text.replace("  help:", '  <b style="color:#0969da">help</b>:')
            head = html.escape(f"{diag.severity}[{diag.code}]")
            text = text.replace(head, f'<b style="color:#c00020">{head}</b>', 1)
            blocks.append(text)
        body = "\n\n".join(blocks)
        return (
            '<pre class="circuitdsl-diagnostics" style="white-space:pre-wrap;'
            f'background:#fff5f5;padding:8px;border-left:3px solid #c00020">{body}</pre>'
        )


def _read_sources(diagnostics: Iterable[Diagnostic]) -> dict[str, str]:
    out: dict[str, str] = {}
    for diag in diagnostics:
        name = diag.span.file if diag.span else None
        if name and name not in out:
            try:
                out[name] = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
    return out


class Unmeasurable(CircuitDSLError):
    """A claim that cannot be measured on this model (reported as status `error`)."""


class UnknownName(CircuitDSLError, KeyError):
    """A name looked up in a table of the Python API (a stimulus, a zoo model) is not there.

    A `KeyError`, as a failed lookup is in Python, but printed as its message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadArgument(CircuitDSLError, ValueError):
    """A Python API call got an argument it cannot use (e.g. a parameter a stimulus lacks)."""


def did_you_mean(word: str, candidates: Iterable[str], n: int = 3) -> str | None:
    """A `help:` text suggesting the closest candidates to `word`, or None.

    A namespaced candidate (`torchvision:resnet18`) is also compared by its last part, so
    `resnet18` suggests it rather than whatever unrelated name is spelt most alike."""
    pool = sorted(set(candidates))
    scored = []
    for candidate in pool:
        score = max(
            difflib.SequenceMatcher(None, word.lower(), form.lower()).ratio()
            for form in {candidate, candidate.rsplit(":", 1)[-1]}
        )
        if score >= 0.6:
            scored.append((score, candidate))
    if not scored:
        return None
    best = max(score for score, _ in scored)
    # Offer the runners-up only when they are about as close as the best match.
    close = [
        c for score, c in sorted(scored, key=lambda sc: (-sc[0], sc[1])) if score >= best - 0.1
    ]
    close = close[:n]
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


def _use_colour(stream: object) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


#: At most this many diagnostics are shown per file; the rest are counted.
MAX_PER_FILE = 50
#: A quoted source line longer than this is cut to a window around the caret.
MAX_LINE = 200


def _window(text: str, col: int, width: int, limit: int) -> tuple[str, int, int]:
    """`text` cut to about `limit` characters around columns [col, col+width), with `…`.

    Returns the shown text and the caret's column and width in it (1-based). A 136 KB
    line quoted once per error is gigabytes of output for ten thousand errors.
    """
    if len(text) <= limit:
        return text, col, width
    width = max(1, min(width, limit // 2))
    start = max(0, min(col - 1 - (limit - width) // 2, len(text) - limit))
    shown = text[start : start + limit]
    lead = "…" if start > 0 else ""
    tail = "…" if start + limit < len(text) else ""
    return lead + shown + tail, col - start + len(lead), width


def render(
    diagnostics: Iterable[Diagnostic],
    sources: Mapping[str, str] | None = None,
    *,
    colour: bool | None = None,
    max_per_file: int = MAX_PER_FILE,
    max_line: int = MAX_LINE,
) -> str:
    """Render diagnostics like a compiler: location, message, source line, caret, help.

    Only the first `max_per_file` diagnostics of each file are shown, then how many more
    there are; quoted source lines are cut to `max_line` characters around the caret.
    """
    sources = sources or {}
    colour = _use_colour(sys.stderr) if colour is None else colour
    split: dict[str, list[str]] = {}  # each file's lines, split once, not per diagnostic

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    blocks = []
    shown: dict[str, int] = {}
    hidden: dict[str, int] = {}
    for diag in diagnostics:
        key = diag.span.file if diag.span else ""
        if shown.get(key, 0) >= max_per_file:
            hidden[key] = hidden.get(key, 0) + 1
            continue
        shown[key] = shown.get(key, 0) + 1
        where = f"{diag.span}: " if diag.span else ""
        head = f"{where}{paint(diag.severity + '[' + diag.code + ']', '1;31')}: {diag.message}"
        lines = [head]
        if diag.span and diag.span.file in sources:
            if diag.span.file not in split:
                split[diag.span.file] = sources[diag.span.file].splitlines()
            source_lines = split[diag.span.file]
            if 1 <= diag.span.line <= len(source_lines):
                text = source_lines[diag.span.line - 1].expandtabs(1)
                gutter = str(diag.span.line)
                pad = " " * len(gutter)
                width = (
                    diag.span.end_col - diag.span.col
                    if diag.span.end_line == diag.span.line
                    else len(text) - diag.span.col + 1
                )
                text, col, width = _window(text, diag.span.col, width, max_line)
                caret = "^" + "~" * max(0, width - 1)
                lines += [
                    f"{pad} |",
                    f"{gutter} | {text}",
                    f"{pad} | {' ' * (col - 1)}{paint(caret, '1;31')}",
                ]
        lines += [f"  note: {note}" for note in diag.notes]
        if diag.help:
            lines.append(f"  {paint('help', '1;36')}: {diag.help}")
        blocks.append("\n".join(lines))
    for key, count in hidden.items():
        where = f"in `{key}`" if key else "without a location"
        blocks.append(
            f"... and {count} more diagnostic{'s' if count != 1 else ''} {where}"
            f" (the first {max_per_file} are shown)"
        )
    return "\n\n".join(blocks)
