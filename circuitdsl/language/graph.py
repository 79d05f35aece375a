"""The circuit as a graph: networkx view of an `ir.Circuit`, and its GraphML form.

Nodes are features and families (attributes: layer, channels, coefficients, label,
family, parameters); edges are claims (key = claim id; attributes: kind, text,
arguments, thresholds, source location). Claims about one node (`within`,
activation claims) are listed on that node; claims about a whole layer
(`banding`) on the graph. The JSON form is `Circuit.to_json()`, lossless.
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx

from circuitdsl.language import ir


def to_networkx(circuit: ir.Circuit) -> nx.MultiDiGraph:
    """A MultiDiGraph with one node per feature/family and one edge per (claim, edge)."""
    g = nx.MultiDiGraph(
        name=circuit.name,
        description=circuit.description or "",
        citations=list(circuit.citations),
        model=circuit.model or "",
        layer_claims=[],
    )
    for f in circuit.features:
        g.add_node(
            f.name,
            node_type="feature",
            kind=f.kind,
            layer=f.layer,
            channels=list(f.channels),
            coefficients=list(f.coefficients),
            label=f.label or "",
            family=f.family or "",
            params={p.name: p.value for p in f.params},
            ref=f.ref,
            claims=[],
        )
    for fam in circuit.families:
        g.add_node(
            fam.name,
            node_type="family",
            kind="family",
            layer=fam.layer,
            members=list(fam.members),
            label=fam.label or "",
            params=dict(fam.param_types),
            claims=[],
        )
    for c in circuit.claims:
        attrs = {
            "claim": c.id,
            "kind": c.kind,
            "text": c.text,
            "args": ir._jsonable(c.payload.to_dict()),
            "thresholds": [[t.stat, t.op, t.value] for t in c.thresholds],
            "source": c.span.location if c.span else "",
        }
        if c.edges:
            for i, (s, t) in enumerate(c.edges):
                key = c.id if len(c.edges) == 1 else f"{c.id}#{i}"
                g.add_edge(s, t, key=key, role=_role(c, i), **attrs)
        elif c.subjects:
            for s in c.subjects:
                if s in g:
                    g.nodes[s]["claims"].append(attrs)
        else:
            g.graph["layer_claims"].append(attrs)
    return g


def _role(claim: ir.Claim, index: int) -> str:
    if claim.kind == "compare":
        return "stronger" if index == 0 else "weaker"
    if claim.kind == "union":
        return "member"
    return "claim"


def to_graphml(circuit: ir.Circuit) -> str:
    """GraphML text. Structured attributes are stored as JSON strings (GraphML has no lists)."""
    g = to_networkx(circuit)
    flat = nx.MultiDiGraph()
    flat.graph.update({k: _flatten(v) for k, v in g.graph.items()})
    for n, attrs in g.nodes(data=True):
        flat.add_node(n, **{k: _flatten(v) for k, v in attrs.items()})
    for s, t, k, attrs in g.edges(keys=True, data=True):
        flat.add_edge(s, t, key=k, **{a: _flatten(v) for a, v in attrs.items()})
    return "\n".join(nx.generate_graphml(flat, prettyprint=True)) + "\n"


def _flatten(value: Any) -> str | int | float | bool:
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True)
