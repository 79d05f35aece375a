"""Write a circuit diagram to a file: DOT text, or SVG / PNG / PDF / HTML through Graphviz.

Graphviz's `dot` program is called directly (`dot -Tsvg`, reading the DOT text on
stdin) rather than through the `graphviz` package's helpers, so that "is Graphviz
installed" has exactly one answer, `shutil.which("dot")`, and the error for its
absence is ours (E302) with the install command, not a library's traceback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from circuitdsl.language.atomic import write_atomic
from circuitdsl.language.diagnostics import (
    E_GRAPHVIZ,
    E_OUTPUT,
    Diagnostic,
    DiagnosticError,
)

__all__ = ["FORMATS", "INSTALL_HELP", "dot_available", "run_dot"]

FORMATS = (".dot", ".gv", ".svg", ".png", ".pdf", ".html")
INSTALL_HELP = (
    "install Graphviz: apt-get install graphviz / brew install graphviz / "
    "conda install -c conda-forge graphviz"
)
# Raster output for papers and slides: Graphviz's default 96 dpi looks blurry there.
PNG_DPI = 150
DOT_TIMEOUT_S = 300


def dot_available() -> bool:
    """Whether Graphviz's `dot` program is on PATH."""
    return shutil.which("dot") is not None


def run_dot(dot_text: str, fmt: str) -> bytes:
    """Lay out `dot_text` with Graphviz's `dot` and return the `-T{fmt}` output.

    Raises `DiagnosticError` E302 when `dot` is not installed and E301 when it fails.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_GRAPHVIZ,
                    f"cannot draw the diagram as {fmt.upper()}: Graphviz's `dot` program "
                    "is not installed (not found on PATH)",
                    help=INSTALL_HELP,
                )
            ]
        )
    args = [exe, f"-T{fmt}"]
    if fmt == "png":
        args.append(f"-Gdpi={PNG_DPI}")
    try:
        proc = subprocess.run(
            args, input=dot_text.encode("utf-8"), capture_output=True, timeout=DOT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiagnosticError(
            [Diagnostic(E_OUTPUT, f"Graphviz could not draw the diagram as {fmt}: {exc}")]
        ) from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DiagnosticError(
            [
                Diagnostic(
                    E_OUTPUT,
                    f"Graphviz failed to draw the diagram as {fmt} (exit {proc.returncode})",
                    notes=tuple(err[:5]),
                    help="this is a bug in circuitdsl's DOT output; please report it with the spec",
                )
            ]
        )
    return proc.stdout


def _write(path: Path, data: bytes) -> None:
    # Atomic: a failed write (full disk) leaves an existing diagram as it was (E301).
    # A missing folder is an error here, as it always was for rendered files.
    write_atomic(path, data, make_parents=False)
