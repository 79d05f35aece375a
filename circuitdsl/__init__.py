"""circuitdsl: state a circuit in a neural network, and have the machine check it.

The pipeline, one module per pass::

    .circ text --parse--> AST --resolve--> typed AST --compile--> Circuit (ir.py)
    Circuit + model adapter --bind--> BoundCircuit --check--> Report --render--> DOT/SVG/HTML
"""

from circuitdsl.api import Spec, load, loads
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError
from circuitdsl.version import __version__

__all__ = ["Diagnostic", "DiagnosticError", "Spec", "__version__", "load", "loads"]
