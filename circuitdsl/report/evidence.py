"""What every form of a report shares, kept apart from `report.model` so that the
forms (`text`, `junit`, `frames`), which `Report`'s methods import lazily, need not import
the model back (no import cycle): the verdict words, the preferred headline statistics,
and the one-line evidence of a claim."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuitdsl.report.model import ClaimResult

STATUSES = ("pass", "fail", "error")

# The statistic a one-line summary shows when the claim names no threshold, by
# preference: the one its verdict usually hinges on.
HEADLINE = ("change", "error", "echo_ratio", "cv", "z", "correlation", "ratio", "rank")


def evidence_text(c: ClaimResult) -> str:
    """`z = 1.36 (want >= 1), total = 2.39`: every measured number with its threshold."""
    parts = []
    for stat, value in c.measured.items():
        want = c.expected.get(stat)
        parts.append(f"{stat} = {value:.3g}" + (f" (want {want})" if want else ""))
    return ", ".join(parts) if parts else "(no measurement)"
