"""A circuit across training: each claim's statistic against the training step.

Input: the rows of a sweep table (`circuitdsl.sweep.SweepTable.rows`, plain dicts with
``step``, ``id``, ``status`` and the statistics). Output: a matplotlib figure
(`plot_training`, .png/.svg/.pdf) with two panels -- every claim's headline statistic
against the step, its threshold dashed, and the share of claims that hold -- and an HTML
page (`training_html`): the figure, the step at which the circuit forms, and the final
checkpoint's full report (`circuitdsl.render.html.to_html`). matplotlib is an optional
extra (``pip install "circuitdsl[plot]"``).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError
from circuitdsl.language.ir import Circuit
from circuitdsl.report.model import Expected, Report

# The statistic a claim's verdict hinges on, by preference (as in the universality table).
HEADLINE = ("change", "error", "echo_ratio", "cv", "z", "correlation", "ratio", "rank")


def _expected(stat: str, text: object) -> Expected | None:
    """A sweep table's `<stat>_expected` cell (the report's threshold text) read back."""
    try:
        return Expected.parse(stat, str(text or ""))
    except ValueError:
        return None


def headline(row: Mapping[str, Any]) -> str | None:
    """The statistic shown for a row: the first of `HEADLINE` it has, else its first number."""
    for stat in HEADLINE:
        if isinstance(row.get(stat), float):
            return stat
    for key, value in row.items():
        if isinstance(value, float) and key not in ("step",):
            return str(key)
    return None


def formation(rows: Sequence[Mapping[str, Any]], share: float = 1.0) -> dict[str, Any]:
    """When the circuit forms: per step the share of claims that hold, and the first step
    from which at least `share` of them hold at every later checkpoint (None if never).

    Only rows with a step count; a checkpoint whose claims all errored is left out.
    """
    by_step: dict[int, list[str]] = {}
    for r in rows:
        if r.get("step") is not None and r.get("kind") != "aggregate":
            by_step.setdefault(int(r["step"]), []).append(str(r["status"]))
    steps = sorted(s for s, st in by_step.items() if any(x != "error" for x in st))
    shares = {s: by_step[s].count("pass") / len(by_step[s]) for s in steps}
    formed = None
    for s in reversed(steps):
        if shares[s] + 1e-12 < share:
            break
        formed = s
    first_each: dict[str, int | None] = {}
    for cid in dict.fromkeys(str(r["id"]) for r in rows if r.get("step") is not None):
        mine = {
            int(r["step"]): r["status"] == "pass"
            for r in rows
            if r["id"] == cid and r.get("step") is not None
        }
        stable = None
        for s in reversed(steps):
            if not mine.get(s, False):
                break
            stable = s
        first_each[cid] = stable
    return {"steps": steps, "share": shares, "formed": formed, "claims": first_each}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    "plotting needs matplotlib, which is not installed",
                    help='pip install "circuitdsl[plot]"',
                )
            ]
        ) from None
    return plt


def figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "",
    accuracy: Mapping[int, float] | None = None,
) -> Any:
    """The two-panel matplotlib figure (see the module docstring); `accuracy` (step ->
    fraction correct), when given, is drawn in the lower panel beside the claims."""
    plt = _pyplot()
    claims: dict[str, list[tuple[int, float]]] = {}
    thresholds: dict[str, float] = {}
    inhibitory: dict[str, bool] = {}
    for r in rows:
        if r.get("step") is None or r.get("status") == "error" or r.get("kind") == "aggregate":
            continue
        stat = headline(r)
        if stat is None:
            continue
        value = r[stat]
        if isinstance(value, float) and math.isfinite(value):
            claims.setdefault(str(r["id"]), []).append((int(r["step"]), value))
            inhibitory[str(r["id"])] = "inhibit" in str(r.get("text", ""))
        want = _expected(stat, r.get(f"{stat}_expected"))
        if want is not None and not want.negated:
            thresholds[str(want)] = want.threshold.value
    info = formation(rows)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    stats = sorted({headline(r) or "" for r in rows if r.get("status") != "error"} - {""})
    for cid, points in claims.items():
        points.sort()
        xs, ys = zip(*points, strict=True)
        colour = "#2e6db4" if inhibitory[cid] else "#c0392b"
        top.plot(xs, ys, color=colour, alpha=0.55, lw=1)
    for _text, value in thresholds.items():
        top.axhline(value, color="black", ls="--", lw=0.8)
    top.axhline(0, color="grey", lw=0.5)
    top.set_ylabel(", ".join(stats) or "statistic")
    top.set_title(title or "each claim's statistic against the training step")
    top.plot([], [], color="#c0392b", label="claims that a unit excites")
    top.plot([], [], color="#2e6db4", label="claims that a unit inhibits")
    top.plot([], [], color="black", ls="--", lw=0.8, label="pass thresholds")
    top.legend(loc="best", fontsize=8)
    steps = info["steps"]
    bottom.plot(
        steps,
        [100 * info["share"][s] for s in steps],
        color="black",
        marker=".",
        label="claims holding",
    )
    if accuracy:
        acc = sorted(accuracy.items())
        bottom.plot(
            [a for a, _ in acc],
            [100 * b for _, b in acc],
            color="#8e44ad",
            ls=":",
            label="held-out accuracy",
        )
        bottom.legend(loc="lower right", fontsize=8)
    bottom.set_ylabel("%")
    bottom.set_ylim(-5, 105)
    bottom.set_xlabel("training step")
    if info["formed"] is not None:
        for ax in (top, bottom):
            ax.axvline(info["formed"], color="#27ae60", lw=1)
        bottom.annotate(
            f"all hold from step {info['formed']}",
            (info["formed"], 50),
            xytext=(6, 0),
            textcoords="offset points",
            color="#27ae60",
            fontsize=8,
        )
    fig.tight_layout()
    return fig


def plot_training(
    rows: Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    title: str = "",
    accuracy: Mapping[int, float] | None = None,
) -> None:
    """Write the figure to `out` (.png, .svg or .pdf)."""
    suffix = Path(out).suffix.lower()
    if suffix not in (".png", ".svg", ".pdf"):
        raise DiagnosticError(
            [Diagnostic(d.E_USAGE, f"--plot writes .png, .svg or .pdf, not `{suffix or out}`")]
        )
    plt = _pyplot()
    fig = figure(rows, title=title, accuracy=accuracy)
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(str(out), dpi=110)
    except OSError as err:
        raise DiagnosticError(
            [Diagnostic(d.E_OUTPUT, f"cannot write `{out}`: {err.strerror}")]
        ) from None
    finally:
        plt.close(fig)


def training_html(circuit: Circuit, rows: Sequence[Mapping[str, Any]], final: Report | None) -> str:
    """The HTML report of the final checkpoint, with the training figure and the step at
    which the circuit forms placed before its claims."""
    from circuitdsl.render.html import to_html

    plt = _pyplot()
    fig = figure(rows, title=f"{circuit.name} across training")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    info = formation(rows)
    formed = (
        f"every claim holds from step {info['formed']} on"
        if info["formed"] is not None
        else "the claims do not all hold at the last checkpoint"
    )
    section = (
        '<section class="training"><h2>Across training</h2>'
        f"<p>{len(info['steps'])} checkpoints; {formed}.</p>"
        f'<img alt="claims against the training step" src="data:image/png;base64,{png}"'
        ' style="max-width:100%"/></section>'
    )
    page = to_html(circuit, final)
    # Before the diagram: the figure is the first thing a reader of a training run wants.
    for marker in ("<h2>Diagram</h2>", "<footer>", "</body>"):
        at = page.find(marker)
        if at >= 0:
            return page[:at] + section + page[at:]
    return page + section
