"""Reports as data frames: one row per claim per run, numbers as columns.

    >>> df = report.to_pandas()
    >>> df[df.status == "fail"][["id", "z", "z_expected"]]

Columns: `spec`, `circuit`, `model`, `weights`, `id`, `kind`, `status`, `text`,
`source`, `file`, `line`, `detail`, then one float column per measured statistic
(NaN where a claim does not report it) and `<stat>_expected` with its threshold text.
pandas is an optional extra (`pip install circuitdsl[frames]`; pyarrow for `.parquet`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError

if TYPE_CHECKING:
    from circuitdsl.report.model import ClaimResult, Report

FRAME_SUFFIXES = (".csv", ".parquet")
BASE_COLUMNS = (
    "spec",
    "circuit",
    "model",
    "weights",
    "id",
    "kind",
    "status",
    "text",
    "source",
    "file",
    "line",
    "detail",
)


def _pandas(what: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"{what} needs pandas, which is not installed",
                    help='pip install "circuitdsl[frames]"',
                )
            ]
        ) from None
    return pandas


def rows(reports: Sequence[Report]) -> list[dict[str, Any]]:
    """The frame's rows as plain dicts (no pandas needed)."""
    out = []
    for r in reports:
        for c in r.claims:
            row: dict[str, Any] = {
                "spec": r.spec,
                "circuit": r.circuit,
                "model": r.model,
                "weights": r.weights,
                "id": c.id,
                "kind": c.kind,
                "status": c.status,
                "text": c.text,
                "source": c.source,
                "file": c.file,
                "line": c.line,
                "detail": c.detail,
                **stat_columns(c),
            }
            out.append(row)
    return out


def stat_columns(claim: ClaimResult) -> dict[str, Any]:
    """A claim's statistics as columns (floats), then each threshold as `<stat>_expected`
    (its text): the part of a row every table of claims shares."""
    cols: dict[str, Any] = {stat: float(value) for stat, value in claim.measured.items()}
    cols.update({f"{stat}_expected": str(want) for stat, want in claim.expected.items()})
    return cols


def to_pandas(reports: Sequence[Report]) -> Any:
    """A `pandas.DataFrame`, one row per claim per run (see the module docstring)."""
    pd = _pandas("report.to_pandas()")
    table = rows(reports)
    stats = sorted({k for row in table for k in row if k not in BASE_COLUMNS})
    numbers = [s for s in stats if not s.endswith("_expected")]
    wants = [s for s in stats if s.endswith("_expected")]
    frame = pd.DataFrame(table, columns=[*BASE_COLUMNS, *numbers, *wants])
    frame[numbers] = frame[numbers].astype("float64")
    frame["line"] = frame["line"].astype("Int64")  # nullable: a claim may have no line
    return frame


def write_frame(reports: Sequence[Report], out: str) -> bytes | str:
    """The frame of `reports` as the bytes of a `.parquet` or the text of a `.csv`."""
    suffix = Path(out).suffix.lower()
    frame = to_pandas(reports)
    if suffix == ".csv":
        text: str = frame.to_csv(index=False)
        return text
    try:
        import pyarrow  # noqa: F401  (the engine pandas writes parquet with)
    except ImportError:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    "writing .parquet needs pyarrow, which is not installed",
                    help='pip install "circuitdsl[frames]", or write a .csv',
                )
            ]
        ) from None
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
