"""The package's import graph, read from the source (every `import`, lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "circuitdsl"


def module_name(path: Path) -> str:
    """`circuitdsl/check/sign.py` -> `circuitdsl.check.sign`; a package is its `__init__`."""
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except those under `if TYPE_CHECKING:` (imports for annotations
    only, which never run)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _imported(tree: ast.AST, current: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every module named by an import statement anywhere in `tree` (functions included).

    `from circuitdsl.check import sign` names the module `circuitdsl.check.sign`, not the
    package `circuitdsl.check` (whose `__init__` may re-export from its submodules).
    """
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = current.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                root = ".".join([*base, node.module] if node.module else base)
            else:
                root = node.module or ""
            for alias in node.names:
                sub = f"{root}.{alias.name}"
                names.add(sub if sub in modules else root)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def import_graph() -> nx.DiGraph:
    """Module -> module it imports, for every module of the package, plus the external
    top-level packages it imports (as nodes named e.g. `torch`)."""
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target in _imported(tree, name, path.name == "__init__.py", set(modules)):
            if target in modules:
                if target != name:
                    graph.add_edge(name, target)
            elif not target.startswith("circuitdsl"):
                graph.add_edge(name, target.split(".")[0])
    return graph
