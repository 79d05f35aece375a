"""The text form of a check, read like a test run: one line per claim, details for the
failures, a closing list of failures and one summary line.

    specs/curvenet/curve_circuit.circ · model curvenet · 31 claims
    PASS   line[20]->curve[11].excites   z = 1.36 (>= 1)   curve_circuit.circ:14
    ...
    ============ 31 passed, 0 failed, 0 errors in 1.9s ============

Verbosity: -1 (`-q`) lists only the claims that do not pass; 0 lists every claim on
one line and adds the evidence of failures and errors; 1 (`-v`) adds the evidence of
every claim. With `stop_at_first_failure` (`-x`) the listing ends at the first claim
that does not pass. Aggregates (verdicts over groups of claims) come first.

`rich` lays out the columns and colours; colour only when asked for (the CLI asks on
a terminal unless `NO_COLOR` is set, https://no-color.org).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from circuitdsl.report.evidence import STATUSES, evidence_text

if TYPE_CHECKING:
    from circuitdsl.report.model import ClaimResult, Report

STYLE = {"pass": "green", "fail": "bold red", "error": "bold yellow"}
LABEL = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}
PLAIN_WIDTH = 10_000  # no wrapping in files and pipes: one claim stays one line
RULE = 20  # `=` on each side of a section title


def wants_colour(stream: Any) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (to anything non-empty)."""
    if os.environ.get("NO_COLOR", ""):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_reports(
    reports: Sequence[Report],
    *,
    verbosity: int = 0,
    colour: bool = False,
    width: int | None = None,
    stop_at_first_failure: bool = False,
    extra: str = "",
) -> str:
    """The pytest-like text of one or many runs (`extra`, e.g. the universality table,
    goes before the closing list of failures)."""
    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=colour,
        no_color=not colour,
        color_system="standard" if colour else None,
        width=width or PLAIN_WIDTH,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=width is None,
    )
    stopped = False
    listed: list[tuple[Report, list[ClaimResult]]] = []
    for i, report in enumerate(reports):
        if stopped:
            break
        if i and verbosity >= 0:
            console.print()
        stopped, claims = _run(console, report, verbosity, stop_at_first_failure)
        listed.append((report, claims))
    if extra and verbosity >= 0:
        console.print()
        console.print(Text(extra.rstrip("\n")))
    _closing(console, reports, listed, verbosity, stopped)
    # rich pads every grid row to the table's width; files should not end lines in blanks
    return "\n".join(line.rstrip() for line in out.getvalue().split("\n"))


def key_number(c: ClaimResult) -> str:
    """`z = 1.36 (>= 1)`: the statistic the verdict hinges on, with its threshold."""
    head = c.headline()
    if head is None:
        return ""
    stat, value = head
    want = c.expected.get(stat)
    return f"{stat} = {_num(value)}" + (f" ({want})" if want else "")


def _num(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.3g}"


def _header(report: Report) -> Text:
    head = Text(report.spec, style="bold")
    head.append(f" · model {report.model}")
    if report.weights:
        head.append(f" · weights {_short_path(str(report.weights))}", style="dim")
    if report.preprocess:
        head.append(f" · preprocess {report.preprocess}", style="dim")
    n = len(report.claims)
    head.append(f" · {n} claim{'s' if n != 1 else ''}")
    return head


def _short_path(path: str) -> str:
    """A path under the working directory, relative to it (shorter, still clickable)."""
    if not os.path.isabs(path):
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel


def _status(status: str) -> Text:
    return Text(LABEL.get(status, status.upper()), style=STYLE.get(status, ""))


def _aggregate_line(a: dict[str, Any]) -> list[Text]:
    status = str(a.get("status", ""))
    parts = []
    if a.get("of") is not None:
        parts.append(f"{a.get('passed')}/{a['of']} hold")
    if a.get("base_rate") is not None:
        parts.append(f"base rate {a['base_rate']:.3g}")
    if a.get("p_value") is not None:
        parts.append(f"p = {a['p_value']:.2g}")
    text = " ".join(str(a.get("text", "")).split())
    if len(text) > 60:
        text = text[:59] + "…"
    return [
        _status(status),
        Text(", ".join(parts)),
        Text(text),
        Text(str(a.get("source", "")), style="dim"),
    ]


def _details(c: ClaimResult) -> Text:
    """The evidence block of one claim: its text and line, every number, the detail."""
    out = Text()
    out.append_text(_status(c.status))
    out.append(f" {c.id}\n", style="bold")
    lines = [f"{c.text}    [{c.source}]", evidence_text(c)]
    if c.detail:
        lines.append(c.detail)
    out.append("\n".join(f"    {line}" for line in lines))
    return out


def _claim_grid(rows: list[tuple[ClaimResult, str]], width: int) -> Table:
    """Verdict, id, key number and source line of each claim, one line each. On a
    terminal too narrow for all four the source column goes first (ids never fold)."""
    cells = [(c, label, key_number(c)) for c, label in rows]
    columns = (
        [LABEL.get(c.status, "") for c, _, _ in cells],
        [label for _, label, _ in cells],
        [key for _, _, key in cells],
        [c.source for c, _, _ in cells],
    )
    need = sum(max((len(x) for x in col), default=0) + 2 for col in columns)
    with_source = need <= width
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, min_width=5)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    grid.add_column(no_wrap=True)
    if with_source:
        grid.add_column(no_wrap=True, style="dim")
    for c, label, key in cells:
        row = [_status(c.status), Text(label), Text(key)]
        grid.add_row(*row, *([Text(c.source)] if with_source else []))
    return grid


def _run(
    console: Console, report: Report, verbosity: int, stop: bool
) -> tuple[bool, list[ClaimResult]]:
    """Print one run's header, aggregates and claim lines; returns whether it stopped at a
    failure (`-x`) and the claims listed (the details section shows theirs)."""
    console.print(_header(report), no_wrap=True, overflow="ellipsis")
    for sel in report.selections:
        console.print(Text(f"selected: {sel}", style="dim"))
    if report.control:
        f = report.false_pass_rate
        rate = f"{100 * f['rate']:.1f} %" if f["rate"] is not None else "n/a"
        console.print(
            Text(
                f"control: {report.control} -- every pass below is a false pass: "
                f"{f['claims']} of {f['of']} claims ({rate}), "
                f"{f['aggregates']} of {f['aggregates_of']} quantified lines",
                style="bold",
            )
        )
    aggregates = report.aggregate_dicts()
    if aggregates:
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column(no_wrap=True)
        for a in aggregates:
            grid.add_row(*_aggregate_line(a))
        console.print(Text("aggregates:", style="bold"))
        console.print(grid)
        if verbosity >= 0:
            console.print(Text("claims:", style="bold"))
    listed: list[ClaimResult] = []
    stopped = False
    for n, c in enumerate(report.claims):
        listed.append(c)
        if stop and c.status != "pass":
            left = len(report.claims) - n - 1
            stopped = left > 0
            break
    if verbosity >= 0:
        console.print(_claim_grid([(c, c.id) for c in listed], console.width))
    if stopped:
        console.print(
            Text(
                f"stopped at the first failure (-x): {len(report.claims) - len(listed)} more "
                "claims measured, not listed",
                style="yellow",
            )
        )
    return stopped, listed


def _closing(
    console: Console,
    reports: Sequence[Report],
    listed: list[tuple[Report, list[ClaimResult]]],
    verbosity: int,
    stopped: bool,
) -> None:
    several = len(reports) > 1
    shown = [(r, c) for r, cs in listed for c in cs if verbosity > 0 or c.status != "pass"]
    if shown and verbosity >= 0:
        title = "details" if verbosity > 0 else "failures"
        console.print()
        console.print(Text(f"{'=' * RULE} {title} {'=' * RULE}", style="bold"))
        for r, c in shown:
            block = _details(c)
            if several:
                block.append(f"\n    on {r.model}", style="dim")
            console.print(block)
    bad = [(r, c) for r, cs in listed for c in cs if c.status != "pass"]
    bad_aggregates = [
        (r, a) for r in reports for a in r.aggregate_dicts() if a.get("status") in ("fail", "error")
    ]
    if (bad or bad_aggregates) and verbosity >= -1:
        console.print()
        console.print(Text(f"{'=' * RULE} short summary {'=' * RULE}", style="bold"))
        rows = [(c, c.id + (f" on {r.model}" if several else "")) for r, c in bad]
        grid = _claim_grid(rows, console.width)
        for r, a in bad_aggregates:
            text = " ".join(str(a.get("text", "")).split())[:50]
            source = [Text(str(a.get("source", "")))] if len(grid.columns) == 4 else []
            grid.add_row(
                _status(str(a.get("status"))),
                Text(f"aggregate: {text}" + (f" on {r.model}" if several else "")),
                Text(""),
                *source,
            )
        console.print(grid)
    totals = {s: sum(r.summary[s] for r in reports) for s in STATUSES}
    seconds = sum(float(r.provenance.get("seconds") or 0.0) for r in reports)
    line = f"{totals['pass']} passed, {totals['fail']} failed, {totals['error']} errors"
    aggregates = [a for r in reports for a in r.aggregate_dicts()]
    if aggregates:
        held = sum(a.get("status") == "pass" for a in aggregates)
        line += f"; {held} of {len(aggregates)} aggregates pass"
    if several:
        line += f" on {len(reports)} runs"
    if seconds:
        line += f" in {seconds:.1f}s"
    if stopped:
        line += " (stopped at the first failure)"
    clean = not totals["fail"] and not totals["error"] and not bad_aggregates
    style = "bold green" if clean else "bold red"
    console.print(Text(f"{'=' * RULE} {line} {'=' * RULE}", style=style))
