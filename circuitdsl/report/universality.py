"""The universality table: one spec checked on several models, claims x models.

`circ check SPEC --model A --model B` prints each model's report and then this table;
a cell shows the verdict and the claim's headline statistic, so one glance tells which
claims hold on every model and which are particular to some.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import PurePath

from circuitdsl.report.model import ClaimResult, Report

# The statistic shown in a cell, by preference: the one the verdict hinges on.
_HEADLINE = ("change", "error", "echo_ratio", "cv", "z", "correlation", "ratio", "rank")
_MARK = {"pass": "pass", "fail": "FAIL", "error": "error"}


def _ranks(report: Report) -> dict[str, str]:
    """`curve[16]` -> `curve#1` for members chosen by behaviour (rank = selection order;
    for a family that tiles `over P`, the bin, so rows line up by bin).

    The same claim is about different channels on different models; rows line up by
    rank so that "the best curve unit" of each model shares a row.
    """
    out = {}
    if report.selection_data:  # numbers: a tiled family's rank is its bin
        for e in report.selection_data:
            out[f"{e['name']}[{e['channel']}]"] = f"{e['name']}#{e['rank']}"
        return out
    for text in report.selections:
        name, _, rest = text.partition(" = ")
        chans = re.findall(r"\b[\w.]+:(\d+) \((?:z|score)", rest.rsplit(": ", 1)[-1])
        for rank, ch in enumerate(chans, start=1):
            out[f"{name}[{ch}]"] = f"{name}#{rank}"
    return out


def _row_key(claim_id: str, ranks: dict[str, str]) -> str:
    for member, rank in ranks.items():
        claim_id = claim_id.replace(member, rank)
    return claim_id


def _cell(result: ClaimResult | None, member: str = "") -> str:
    if result is None:
        return "-"
    text = (f"{member} " if member else "") + _MARK.get(result.status, result.status)
    for stat in (*_HEADLINE, *result.measured):
        if stat in result.measured:
            v = result.measured[stat]
            return f"{text} {stat}={'nan' if math.isnan(v) else f'{v:.3g}'}"
    return text


def _member(result: ClaimResult | None, key: str) -> str:
    """The chosen channel(s) a ranked row stands for on this model: `[16]`."""
    if result is None or "#" not in key:
        return ""
    chans = re.findall(r"\[(\d+)\]", result.id)
    return "[" + ",".join(chans) + "]" if chans else ""


def _columns(reports: Sequence[Report]) -> list[str]:
    """Column titles: the model, and its weight file where one model appears with several.

    Seeds and checkpoints of one architecture (`--model torchvision:vgg16=a.pth --model
    torchvision:vgg16=b.pth`) share a table; the file tells their columns apart.
    """
    names = [r.model for r in reports]
    out = []
    for r in reports:
        if names.count(r.model) > 1 and r.weights:
            out.append(f"{r.model}={PurePath(r.weights).name}")
        else:
            out.append(r.model)
    return out


def universality_table(reports: Sequence[Report]) -> str:
    """A plain-text table, claims down and models across, plus a holds-everywhere count.

    Laid out by `rich` (no box, one line per claim, never wrapped: it goes to files too).
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    ids: list[str] = []
    by_model: list[dict[str, ClaimResult]] = []
    for r in reports:
        ranks = _ranks(r)
        keyed = {_row_key(c.id, ranks): c for c in r.claims}
        by_model.append(keyed)
        ids.extend(k for k in keyed if k not in ids)
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, pad_edge=False)
    for head in ["claim", *_columns(reports)]:
        table.add_column(head, no_wrap=True, header_style="")
    for cid in ids:
        cells = [_cell(m.get(cid), _member(m.get(cid), cid)) for m in by_model]
        table.add_row(*(Text(c) for c in (cid, *cells)))
    out = io.StringIO()
    Console(file=out, width=10_000, no_color=True, highlight=False, markup=False).print(table)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    rule = "-" * max(len(line) for line in lines)
    everywhere = sum(all(m.get(cid) and m[cid].status == "pass" for m in by_model) for cid in ids)
    body = ["universality: claims x models", lines[0], rule, *lines[1:]]
    body.append(f"{everywhere}/{len(ids)} claims hold on all {len(reports)} models")
    return "\n".join(body) + "\n"
