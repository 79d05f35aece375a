"""The result of checking a circuit: one verdict per claim, with the evidence.

The checker produces a `Report`; the CLI prints it (text, JSON, JUnit, a data frame),
the renderer draws it. The JSON form is an interface other tools rely on: its shape is
the JSON Schema shipped next to this module (`report.schema.json`, `SCHEMA_VERSION`),
described in docs/reports.md. One document holds one or many runs (a run = one spec
checked on one model): `runs` always lists them, and a document of one run also carries
that run's keys (`spec`, `model`, `claims`, ...) at the top level.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuitdsl.language.ir import Threshold
from circuitdsl.report.evidence import HEADLINE, STATUSES, evidence_text

__all__ = ["HEADLINE", "STATUSES", "ClaimResult", "Expected", "Report", "evidence_text"]


@dataclass(frozen=True, slots=True)
class Expected:
    """What a claim's verdict needs of one statistic: a threshold, possibly negated.

    Reports carry these, so whatever re-judges a number (the diagram's per-member view
    of a union) calls `holds` instead of reading threshold text. The JSON report writes
    `str(expected)` (`">= 2"`, `"not >= 0.5"`), the text it has always had; `parse`
    reads it back.
    """

    threshold: Threshold
    negated: bool = False  # `not F within L`, `not banded D`: the claim is the opposite

    def holds(self, measured: float) -> bool:
        """Whether `measured` meets this expectation (NaN meets none)."""
        if measured != measured:
            return False
        return self.threshold.holds(measured) != self.negated

    def __str__(self) -> str:
        return f"not {self.threshold}" if self.negated else str(self.threshold)

    @classmethod
    def parse(cls, stat: str, text: str) -> Expected:
        """Inverse of `str()` for a report read back from JSON: `">= 2"`, `"not < 0.1"`."""
        parts = text.split()
        negated = parts[:1] == ["not"]
        if negated:
            parts = parts[1:]
        if len(parts) != 2:
            raise ValueError(f"`{text}` is not a threshold (`OP VALUE`, e.g. `>= 2`)")
        return cls(Threshold(stat, parts[0], float(parts[1])), negated)


SCHEMA_VERSION = "2.0"
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The verdict on one claim.

    `measured` maps statistic names to numbers; `expected` maps the same names to
    what the verdict needs of them (`Expected`, written `">= 1"` in the JSON). `kernels`
    maps `"source->target"` to the 2-D weight kernel (nested lists, row 0 = top) the
    claim was measured on, for rendering; it is left out of the JSON report unless
    asked for. `evidence` holds structured data beyond single numbers (e.g. an edit's
    values before and after), written to the JSON report as is.
    """

    id: str
    status: str
    text: str
    source: str  # `file:line`
    measured: dict[str, float] = field(default_factory=dict)
    expected: dict[str, Expected] = field(default_factory=dict)
    detail: str = ""
    kind: str = ""
    edges: tuple[tuple[str, str], ...] = ()
    kernels: dict[str, list[list[float]]] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def file(self) -> str:
        """The spec file of `source`, without the line number."""
        return _split_source(self.source)[0]

    @property
    def line(self) -> int | None:
        """The line of `source`, or None when the claim has no position."""
        return _split_source(self.source)[1]

    def headline(self) -> tuple[str, float] | None:
        """The claim's key number: the first statistic it has a threshold on (else the
        first of `HEADLINE`, else the first measured), with its value."""
        for stat in (*self.expected, *HEADLINE, *self.measured):
            if stat in self.measured:
                return stat, self.measured[stat]
        return None

    def expected_text(self) -> dict[str, str]:
        """`expected` as the report writes it: `{"z": ">= 2"}`."""
        return {s: str(e) for s, e in self.expected.items()}

    def to_dict(self, *, with_kernels: bool = False) -> dict[str, Any]:
        """The claim's JSON object (see report.schema.json, `claim`)."""
        data: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "file": self.file,
            "line": self.line,
            "text": self.text,
            "kind": self.kind,
            "status": self.status,
            "measured": {k: _finite(v) for k, v in self.measured.items()},
            "expected": self.expected_text(),
            "detail": self.detail,
            "edges": [list(e) for e in self.edges],
        }
        if self.evidence:
            data["evidence"] = _jsonable(self.evidence)
        if with_kernels:
            data["kernels"] = self.kernels
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaimResult:
        """Inverse of `to_dict` (null measurements come back as NaN)."""
        return cls(
            id=data["id"],
            status=data["status"],
            text=data["text"],
            source=data["source"],
            measured={
                k: float("nan") if v is None else float(v) for k, v in data["measured"].items()
            },
            expected={s: Expected.parse(s, str(t)) for s, t in data["expected"].items()},
            detail=data.get("detail", ""),
            kind=data.get("kind", ""),
            edges=tuple((str(e[0]), str(e[1])) for e in data.get("edges", ())),
            kernels=dict(data.get("kernels", {})),
            evidence=dict(data.get("evidence", {})),
        )


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """The verdict on a quantified line (a `for` line, a family used as a whole).

    `passed` of `of` measured claims passed, against `base_rate`, the mean chance that
    one of them passes for a source drawn at random among its target's inputs;
    `p_value` is the exact probability of at least `passed` passes by chance
    (docs/claims.md, "Aggregate verdicts"); `status` is `pass` iff `p_value <= alpha`.
    """

    source: str  # `file:line` of the line
    text: str
    status: str
    passed: int
    of: int
    base_rate: float
    p_value: float
    alpha: float = 0.01
    errors: int = 0  # claims of the line that could not be measured (not in `of`)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "text": self.text,
            "status": self.status,
            "passed": self.passed,
            "of": self.of,
            "base_rate": _finite(self.base_rate),
            "p_value": _finite(self.p_value),
            "alpha": self.alpha,
            "errors": self.errors,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateResult:
        """Inverse of `to_dict`."""
        return cls(
            source=data["source"],
            text=data["text"],
            status=data["status"],
            passed=int(data["passed"]),
            of=int(data["of"]),
            base_rate=float("nan") if data["base_rate"] is None else float(data["base_rate"]),
            p_value=float("nan") if data["p_value"] is None else float(data["p_value"]),
            alpha=float(data.get("alpha", 0.01)),
            errors=int(data.get("errors", 0)),
        )

    def line(self) -> str:
        """One line for the text report."""
        return (
            f"{self.status.upper():5}  {self.passed}/{self.of} pass (base rate "
            f"{self.base_rate:.3g}, p = {self.p_value:.3g}, alpha {self.alpha:g})  "
            f"{self.text}    [{self.source}]"
        )


@dataclass(frozen=True, slots=True)
class Report:
    """Every claim's verdict for one spec checked against one model (one run).

    `selections` are the choices of features declared by behaviour as text;
    `selection_data` holds the same choices as numbers, one entry per chosen member
    (`name`, `selector`, `rank`, `unit`, `layer`, `channel`, `score`, `selectivity`,
    `response`, `value`, `bin`). `aggregates` are verdicts over groups of claims (entries with
    `source`, `text`, `status`, `passed`, `of`, `base_rate`, `p_value`: dicts, or
    objects with `to_dict()`, or dataclasses). `provenance` says what produced the run
    (package, python and torch versions, weights sha256, device, date, seconds).
    `grid_kernels` holds the kernels of every member pair of the family grids
    (`circuitdsl.render.grids`), for drawing the full grid.
    """

    spec: str
    model: str
    weights: str | None
    claims: tuple[ClaimResult, ...]
    circuit: str = ""
    # features declared by behaviour: which channels were chosen on this model
    selections: tuple[str, ...] = ()
    # one verdict per quantified line, against the null (docs/claims.md)
    aggregates: tuple[AggregateResult, ...] = ()
    # `circ check --control KIND`: the control the spec was re-run on (None: the model)
    control: str | None = None
    # the same choices as numbers: one dict per member (name, unit, score, selectivity,
    # response, value, bin, ...; `circuitdsl.measure.select.Selection.to_dicts`)
    selection_data: tuple[dict[str, Any], ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)
    # `"source->target"` -> kernel for every member pair of the family grids drawn, claimed
    # or not (`--full-grid`); written to JSON only with the kernels
    grid_kernels: dict[str, list[list[float]]] = field(default_factory=dict)
    # the input transform the model's images went through (`Preprocess.describe()`)
    preprocess: str | None = None

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(c.status for c in self.claims)
        return {s: counts.get(s, 0) for s in STATUSES}

    @property
    def ok(self) -> bool:
        return all(c.status == "pass" for c in self.claims) and all(
            a.status == "pass" for a in self.aggregates
        )

    @property
    def false_pass_rate(self) -> dict[str, Any]:
        """Under a control: how many measured claims and aggregates passed anyway."""
        measured = [c for c in self.claims if c.status in ("pass", "fail")]
        passed = sum(c.status == "pass" for c in measured)
        agg = sum(a.status == "pass" for a in self.aggregates)
        return {
            "claims": passed,
            "of": len(measured),
            "rate": passed / len(measured) if measured else None,
            "aggregates": agg,
            "aggregates_of": len(self.aggregates),
        }

    def result(self, claim_id: str) -> ClaimResult:
        for c in self.claims:
            if c.id == claim_id:
                return c
        raise KeyError(claim_id)

    def aggregate_dicts(self) -> list[dict[str, Any]]:
        """The aggregates as plain JSON objects."""
        return [_aggregate_dict(a) for a in self.aggregates]

    def to_run_dict(self, *, with_kernels: bool = False) -> dict[str, Any]:
        """This run as one entry of a document's `runs`."""
        run = {
            "spec": self.spec,
            "circuit": self.circuit,
            "model": {"name": self.model, "weights": self.weights}
            | ({"preprocess": self.preprocess} if self.preprocess is not None else {}),
            "claims": [c.to_dict(with_kernels=with_kernels) for c in self.claims],
            "aggregates": self.aggregate_dicts(),
            "selected": list(self.selections),
            "selections": [_jsonable(e) for e in self.selection_data],
            "summary": self.summary,
            "provenance": _jsonable(self.provenance),
        }
        if self.control:
            run["control"] = {"kind": self.control, "false_passes": self.false_pass_rate}
        if with_kernels and self.grid_kernels:
            run["grid_kernels"] = _jsonable(self.grid_kernels)
        return run

    def to_dict(self, *, with_kernels: bool = False) -> dict[str, Any]:
        """The JSON report of this run (a document of one run; see `document`)."""
        return document([self], with_kernels=with_kernels)

    def to_json(self, *, with_kernels: bool = False) -> str:
        """Strict JSON (an undefined measurement is `null`, never `NaN`)."""
        return to_json([self], with_kernels=with_kernels)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Read back one run: a run object, or a document holding exactly one run."""
        if "runs" in data:
            runs = data["runs"]
            if len(runs) != 1:
                raise ValueError(
                    f"the document holds {len(runs)} runs; read it with reports_from_dict"
                )
            data = runs[0]
        return cls(
            spec=data["spec"],
            model=data["model"]["name"],
            weights=data["model"].get("weights"),
            claims=tuple(ClaimResult.from_dict(c) for c in data["claims"]),
            circuit=data.get("circuit", ""),
            selections=tuple(str(t) for t in data.get("selected", ())),
            aggregates=tuple(AggregateResult.from_dict(a) for a in data.get("aggregates", ())),
            control=(data.get("control") or {}).get("kind"),
            selection_data=tuple(dict(e) for e in data.get("selections", ())),
            provenance=dict(data.get("provenance", {})),
            grid_kernels=dict(data.get("grid_kernels", {})),
            preprocess=data["model"].get("preprocess"),
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Read back a report saved with `to_json`."""
        return cls.from_dict(json.loads(text))

    def to_junit(self, *, family: str = "xunit2") -> str:
        """JUnit XML: one test case per claim, so a circuit can be a CI regression test."""
        from circuitdsl.report.junit import to_junit

        return to_junit([self], family=family)

    def to_text(self, *, verbosity: int = 0) -> str:
        """The pytest-like summary (`circuitdsl.report.text`), without colour."""
        from circuitdsl.report.text import format_reports

        return format_reports([self], verbosity=verbosity)

    def to_pandas(self) -> Any:
        """One row per claim, numbers as columns (`circuitdsl.report.frames`; needs pandas)."""
        from circuitdsl.report.frames import to_pandas

        return to_pandas([self])

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<Report {self.circuit or self.spec} on {self.model}: {len(self.claims)} claims, "
            f"{s['pass']} passed, {s['fail']} failed, {s['error']} errors>"
        )

    def _repr_html_(self) -> str:
        from circuitdsl.report.html import report_table_html

        return report_table_html(self)


def document(reports: Sequence[Report], *, with_kernels: bool = False) -> dict[str, Any]:
    """The JSON report of one or many runs: `schema_version`, `runs`, `summary` (totals);
    with exactly one run, that run's keys at the top level as well."""
    runs = [r.to_run_dict(with_kernels=with_kernels) for r in reports]
    totals = {s: sum(r.summary[s] for r in reports) for s in STATUSES}
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if len(runs) == 1:
        doc |= {k: v for k, v in runs[0].items() if k != "summary"}
    doc |= {"runs": runs, "summary": totals}
    return doc


def to_json(reports: Sequence[Report], *, with_kernels: bool = False) -> str:
    """`document` as strict JSON text."""
    doc = document(reports, with_kernels=with_kernels)
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def reports_from_dict(data: dict[str, Any] | list[Any]) -> list[Report]:
    """Every run of a JSON report (also reads the older forms: one object, or an array)."""
    if isinstance(data, list):
        return [Report.from_dict(d) for d in data]
    if "runs" in data:
        return [Report.from_dict(run) for run in data["runs"]]
    return [Report.from_dict(data)]


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report (shipped in the package)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _split_source(source: str) -> tuple[str, int | None]:
    path, sep, line = source.rpartition(":")
    if sep and line.isdigit():
        return path, int(line)
    return source, None


def _aggregate_dict(a: Any) -> dict[str, Any]:
    if isinstance(a, dict):
        data = a
    elif callable(getattr(a, "to_dict", None)):
        data = a.to_dict()
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        data = dataclasses.asdict(a)
    else:
        raise TypeError(f"an aggregate must be a dict or have to_dict(), not {type(a).__name__}")
    return dict(_jsonable(data))


def _jsonable(value: Any) -> Any:
    """Plain JSON values: tuples as lists, NaN / infinity as null (JSON has neither)."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _finite(v: float) -> float | None:
    """JSON has no NaN / infinity: an undefined statistic is written as null."""
    return v if math.isfinite(v) else None
