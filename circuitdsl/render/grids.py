"""The full weight grid of a family pair: the kernel of every member pair, claimed or not.

A diagram draws the claims between two families as one grid (rows: source members,
columns: target members). By default only the claimed cells carry a kernel, since the
check measured only those. `full_grid_kernels` reads the others from the model, so the
grid can be seen whole (`circ check --render X --full-grid`, `circ render --model M
--full-grid`): the claimed cells then stand out against what the rest of the pair's
weights look like.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from circuitdsl.language.ir import Circuit
from circuitdsl.report.model import Report


def grid_pairs(circuit: Circuit) -> list[tuple[str, str]]:
    """(source family, target family) for every pair some claim connects members of."""
    member_of = {m: fam.name for fam in circuit.families for m in fam.members}
    pairs: list[tuple[str, str]] = []
    for claim in circuit.claims:
        for src, dst in claim.edges:
            key = (member_of.get(src, ""), member_of.get(dst, ""))
            if all(key) and key[0] != key[1] and key not in pairs:
                pairs.append(key)
    return pairs


def full_grid_kernels(circuit: Circuit, adapter: Any) -> dict[str, list[list[float]]]:
    """`"a->b"` -> the kernel (row 0 at the top) for every member pair of every grid.

    `adapter` is a loaded model (`circuitdsl.models.base.load_model`); kernels are read as
    the checker reads them (`BoundCircuit.kernel`, cropped the same way).
    """
    from circuitdsl.models.bind import bind

    bound = bind(circuit, adapter)
    families = {f.name: f for f in circuit.families}
    out: dict[str, list[list[float]]] = {}
    for src_name, dst_name in grid_pairs(circuit):
        for a in families[src_name].members:
            for b in families[dst_name].members:
                out[f"{a}->{b}"] = bound.kernel(a, b).tolist()
    return out


def with_full_grids(report: Report, circuit: Circuit, adapter: Any) -> Report:
    """`report` with `grid_kernels` filled for `circuit`'s family grids."""
    return dataclasses.replace(report, grid_kernels=full_grid_kernels(circuit, adapter))
