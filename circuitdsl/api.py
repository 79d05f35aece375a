"""The Python API, in the `json` idiom: `load`, `loads`, then `Spec.check` / `Spec.render`.

    >>> import circuitdsl
    >>> spec = circuitdsl.loads('''
    ... circuit tiny
    ... feature a = conv1:0
    ... feature b = conv2:3
    ... a -> b : excites
    ... ''')
    >>> [c.id for c in spec.claims]
    ['a->b.excites']

Heavy imports (torch, graphviz) happen inside the methods that need them, so the
front end starts fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdsl.language import diagnostics as d
from circuitdsl.language import ir
from circuitdsl.language.compile import compile_circuit
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span
from circuitdsl.language.loader import Program, load_program, program_from_text
from circuitdsl.language.resolve import resolve
from circuitdsl.language.syntax.parser import gc_paused

if TYPE_CHECKING:
    from circuitdsl.report.model import Report


@dataclass(frozen=True)
class Spec:
    """A compiled spec: the circuit IR plus the text it came from."""

    circuit: ir.Circuit
    program: Program

    @property
    def claims(self) -> tuple[ir.Claim, ...]:
        return self.circuit.claims

    @property
    def sources(self) -> dict[str, str]:
        return self.program.sources

    def to_json(self) -> str:
        return self.circuit.to_json()

    def graph(self) -> Any:
        """The networkx MultiDiGraph view (see circuitdsl.language.graph)."""
        from circuitdsl.language.graph import to_networkx

        return to_networkx(self.circuit)

    def check(
        self,
        model: Any = None,
        *,
        weights: str | Path | None = None,
        preprocess: Any = None,
    ) -> Report:
        """Bind to `model` and measure every claim.

        `model` is a name (default: the spec's `model` line), a loaded adapter, or an
        `nn.Module` object (`spec.check(my_net, preprocess="imagenet")`). `preprocess`
        (a preset name, a `circuitdsl.models.Preprocess` or a callable on images in
        [0, 1]) replaces the model's own input transform and the spec's.
        """
        from circuitdsl.check.api import check_spec

        return check_spec(self.circuit, model, weights, program=self.program, preprocess=preprocess)

    def _repr_svg_(self) -> str | None:
        """Jupyter shows the diagram; without Graphviz, it falls back to the text repr."""
        from circuitdsl.render.html import circuit_svg

        try:
            return circuit_svg(self.circuit)
        except DiagnosticError:
            return None


@contextmanager
def _front_end(path: str | Path) -> Iterator[None]:
    """Run a front-end pass: collector paused, runaway nesting reported as a diagnostic.

    The front end only builds (AST, then IR) and creates no garbage cycles, so the cyclic
    collector is paused (see `gc_paused`): left on, it rescans the growing AST again and
    again, and the cost per line grows with the spec's size. The passes recurse over
    expressions, so a condition nested a thousand levels deep exhausts Python's stack.
    """
    try:
        with gc_paused():
            yield
    except RecursionError:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_SYNTAX,
                    f"`{path}` nests expressions too deeply to compile",
                    Span(str(path), 1, 1, 1, 1),
                    help="split the condition into several `where` clauses or claims",
                )
            ]
        ) from None


def compile_program(program: Program) -> Spec:
    """resolve -> compile for an already-parsed program."""
    with _front_end(program.main.path):
        return Spec(compile_circuit(resolve(program)), program)


def load(path: str | Path) -> Spec:
    """Read, parse, resolve and compile a .circ file (and the files it imports)."""
    with _front_end(path):
        return compile_program(load_program(path))


def loads(text: str, path: str = "<string>") -> Spec:
    """Like `load`, from text in memory."""
    with _front_end(path):
        return compile_program(program_from_text(text, path))
