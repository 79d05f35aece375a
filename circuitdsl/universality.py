"""The universality table: one spec checked on several models, claims x models.

`circ check SPEC --model A --model B` prints each model's report and then this table;
a cell shows the verdict and the claim's headline statistic, so one glance tells which
claims hold on every model and which are particular to some.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from circuitdsl.report import ClaimResult, Report

# The statistic shown in a cell, by preference: the one the verdict hinges on.
_HEADLINE = ("change", "error", "echo_ratio", "cv", "z", "correlation", "ratio", "rank")
_MARK = {"pass": "pass", "fail": "FAIL", "error": "error"}


def _cell(result: ClaimResult | None) -> str:
    if result is None:
        return "-"
    text = _MARK.get(result.status, result.status)
    for stat in (*_HEADLINE, *result.measured):
        if stat in result.measured:
            v = result.measured[stat]
            return f"{text} {stat}={'nan' if math.isnan(v) else f'{v:.3g}'}"
    return text


def universality_table(reports: Sequence[Report]) -> str:
    """A plain-text table, claims down and models across, plus a holds-everywhere count."""
    ids: list[str] = []
    for r in reports:
        ids.extend(c.id for c in r.claims if c.id not in ids)
    by_model = [{c.id: c for c in r.claims} for r in reports]
    head = ["claim", *(r.model for r in reports)]
    rows = [[cid, *(_cell(m.get(cid)) for m in by_model)] for cid in ids]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    out = ["universality: claims x models", line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    everywhere = sum(all(m.get(cid) and m[cid].status == "pass" for m in by_model) for cid in ids)
    out.append(f"{everywhere}/{len(ids)} claims hold on all {len(reports)} models")
    return "\n".join(out) + "\n"
