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

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdsl.language import diagnostics as d
from circuitdsl.language import ir
from circuitdsl.language.compile import MAX_INSTANCES, compile_circuit
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span
from circuitdsl.language.loader import Program, load_program, program_from_text
from circuitdsl.language.resolve import resolve
from circuitdsl.language.syntax.parser import gc_paused

if TYPE_CHECKING:
    from circuitdsl.report.model import Report
    from circuitdsl.sweep import SweepTable


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
        progress: Any = None,
        device: str = "cpu",
        allow_factories: bool | Collection[str] = (),
        **options: Any,
    ) -> Report:
        """Bind to `model` and measure every claim.

        `model` is a name (default: the spec's `model` line), a loaded adapter, or an
        `nn.Module` object (`spec.check(my_net, preprocess="imagenet")`). `preprocess`
        (a preset name, a `circuitdsl.models.Preprocess` or a callable on images in
        [0, 1]) replaces the model's own input transform and the spec's. `progress`:
        True / False / None (on when stderr is a terminal) / a
        `circuitdsl.models.progress.Progress` / a callable ``(done, total)``; `options`:
        ``max_memory``, ``cache``, ``precision`` (see
        `circuitdsl.check.api.check_spec`). A spec's own
        `model "pkg.mod:fn"` line runs code, so it is refused (E220) unless
        `allow_factories` is True or names it; `model=` is always used.
        """
        from circuitdsl.check.api import check_spec

        return check_spec(
            self.circuit,
            model,
            weights,
            program=self.program,
            preprocess=preprocess,
            allow_factories=allow_factories,
            progress=progress,
            device=device,
            **options,
        )

    def check_checkpoints(
        self,
        model: str | None,
        checkpoints: str | Sequence[str | Path],
        *,
        workers: int | None = None,
        executor: str = "local",
        ray_address: str | None = None,
        allow_factories: bool | Collection[str] = (),
    ) -> SweepTable:
        """Every claim on every checkpoint of `model` (a glob, a list file or a list of
        paths), on a local process pool (default) or Ray: the claims x checkpoints table
        (`circuitdsl.sweep`). With `model=None` the spec's model is used; a factory
        there needs `allow_factories` (E220)."""
        from circuitdsl.sweep import check_checkpoints

        return check_checkpoints(
            self,
            model,
            checkpoints,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            allow_factories=allow_factories,
        )

    def check_models(
        self,
        models: Sequence[str | tuple[str, str | Path | None]],
        *,
        workers: int | None = None,
        executor: str = "local",
        ray_address: str | None = None,
    ) -> list[Report]:
        """One report per model (name, or ``(name, weights)``), checked in parallel, for
        `circuitdsl.report.universality.universality_table`."""
        from circuitdsl.sweep import check_models

        reports, _ = check_models(
            self, models, workers=workers, executor=executor, ray_address=ray_address
        )
        return reports

    def _repr_svg_(self) -> str | None:
        """Jupyter shows the diagram; without Graphviz, it falls back to the text repr."""
        from circuitdsl.render.html import circuit_svg

        try:
            svg = circuit_svg(self.circuit)
        except DiagnosticError:
            return None
        # Graphviz sizes the SVG in points; a diagram wider than the notebook's output
        # area was clipped there. Let it shrink to fit, keeping its aspect (viewBox).
        return svg.replace("<svg ", '<svg style="max-width:100%;height:auto" ', 1)


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


def compile_program(program: Program, *, max_instances: int = MAX_INSTANCES) -> Spec:
    """resolve -> compile for an already-parsed program.

    `max_instances` bounds how many combinations the `for` quantifiers may expand to
    (E113 beyond it); it is the caller's setting, never the spec's.
    """
    with _front_end(program.main.path):
        return Spec(compile_circuit(resolve(program), max_instances=max_instances), program)


def load(path: str | Path, *, max_instances: int = MAX_INSTANCES) -> Spec:
    """Read, parse, resolve and compile a .circ file (and the files it imports)."""
    with _front_end(path):
        return compile_program(load_program(path), max_instances=max_instances)


def loads(text: str, path: str = "<string>", *, max_instances: int = MAX_INSTANCES) -> Spec:
    """Like `load`, from text in memory."""
    with _front_end(path):
        return compile_program(program_from_text(text, path), max_instances=max_instances)
