"""The layout's promises, checked on the source: data flows one way through the layers,
there are no import cycles (lazy imports included), and the language core never needs torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from import_graph import import_graph

REPO = Path(__file__).resolve().parents[2]

# Lowest first. A module may import from its own layer or any layer below it.
LAYERS = [
    ("circuitdsl.version",),
    ("circuitdsl.language",),
    ("circuitdsl.zoo.nets",),  # the shipped networks' definitions (plain nn.Modules)
    ("circuitdsl.models", "circuitdsl.zoo"),
    ("circuitdsl.measure",),
    ("circuitdsl.report",),  # the Report the checker fills in, and its text/JSON/HTML forms
    ("circuitdsl.check",),
    ("circuitdsl.render",),
    ("circuitdsl.api", "circuitdsl.sweep"),  # a sweep runs api-level checks in workers
    ("circuitdsl.tools",),  # `suggest` checks its draft through the pipeline
    ("circuitdsl.cli", "circuitdsl.__main__", "circuitdsl"),
]
# The zoo's training and census scripts measure the nets they train: they sit on top.
SCRIPTS = {
    "circuitdsl.zoo.train": "circuitdsl.api",
    "circuitdsl.zoo.census": "circuitdsl.api",
    "circuitdsl.zoo.data": "circuitdsl.api",
}
TORCH_LIKE = {"torch", "torchvision", "numpy", "safetensors", "timm", "PIL", "h5py"}


def layer_of(module: str) -> int:
    """Index into LAYERS of the most specific prefix naming `module`."""
    if module in SCRIPTS:
        return layer_of(SCRIPTS[module])
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def _package(graph: nx.DiGraph) -> nx.DiGraph:
    return graph.subgraph(n for n in graph if n.startswith("circuitdsl"))


def test_no_import_cycles(graph: nx.DiGraph) -> None:
    cycles = sorted(nx.simple_cycles(_package(graph)), key=len)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:10])


def test_every_import_goes_down_the_layers(graph: nx.DiGraph) -> None:
    upward = [
        f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)})"
        for a, b in _package(graph).edges
        if layer_of(b) > layer_of(a)
    ]
    assert not upward, "imports against the flow:\n" + "\n".join(sorted(upward))


def test_language_core_never_reaches_torch(graph: nx.DiGraph) -> None:
    core = [n for n in graph if n.startswith("circuitdsl.language")]
    assert len(core) >= 10
    reached = set().union(*(nx.descendants(graph, n) for n in core))
    assert not reached & TORCH_LIKE
    assert not {n for n in reached if n.startswith("circuitdsl.") and layer_of(n) > 1}


def test_the_graph_sees_lazy_imports(graph: nx.DiGraph) -> None:
    """Guard for the checker itself: an import inside a function counts."""
    assert graph.has_edge("circuitdsl.api", "circuitdsl.check.api")  # imported in Spec.check


def test_every_shipped_spec_loads_with_torch_blocked() -> None:
    specs = sorted(str(p.relative_to(REPO)) for p in (REPO / "specs").rglob("*.circ"))
    assert len(specs) >= 8
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None\n"
        "import circuitdsl\n"
        f"for path in {specs!r}:\n"
        "    circuitdsl.load(path)\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
