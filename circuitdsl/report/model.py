"""The result of checking a circuit: one verdict per claim, with the evidence.

The checker produces a `Report`; the CLI prints it (text / JSON / JUnit), the
renderer draws it. The JSON form is an interface other tools rely on (see
README.md, "JSON report"); its keys are stable.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

STATUSES = ("pass", "fail", "error")


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The verdict on one claim.

    `measured` maps statistic names to numbers; `expected` maps the same names to
    the threshold text (`">= 1"`). `kernels` maps `"source->target"` to the 2-D
    weight kernel (nested lists, row 0 = top) the claim was measured on, for
    rendering; it is left out of the JSON report unless asked for.
    """

    id: str
    status: str
    text: str
    source: str  # `file:line`
    measured: dict[str, float] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    kind: str = ""
    edges: tuple[tuple[str, str], ...] = ()
    kernels: dict[str, list[list[float]]] = field(default_factory=dict)

    def to_dict(self, *, with_kernels: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "text": self.text,
            "kind": self.kind,
            "status": self.status,
            "measured": {k: _finite(v) for k, v in self.measured.items()},
            "expected": self.expected,
            "detail": self.detail,
        }
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
            expected=dict(data["expected"]),
            detail=data.get("detail", ""),
            kind=data.get("kind", ""),
            edges=tuple(tuple(e) for e in data.get("edges", ())),  # type: ignore[misc]
            kernels=dict(data.get("kernels", {})),
        )


@dataclass(frozen=True, slots=True)
class Report:
    """Every claim's verdict for one spec checked against one model."""

    spec: str
    model: str
    weights: str | None
    claims: tuple[ClaimResult, ...]
    circuit: str = ""
    # features declared by behaviour: which channels were chosen on this model
    selections: tuple[str, ...] = ()
    # the same choices as numbers: one dict per member (name, unit, score, selectivity,
    # response, value, bin, ...; `circuitdsl.measure.select.Selection.to_dicts`)
    selection_data: tuple[dict[str, Any], ...] = ()
    # the input transform the model's images went through (`Preprocess.describe()`)
    preprocess: str | None = None

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(c.status for c in self.claims)
        return {s: counts.get(s, 0) for s in STATUSES}

    @property
    def ok(self) -> bool:
        return all(c.status == "pass" for c in self.claims)

    def result(self, claim_id: str) -> ClaimResult:
        for c in self.claims:
            if c.id == claim_id:
                return c
        raise KeyError(claim_id)

    def to_dict(self, *, with_kernels: bool = False) -> dict[str, Any]:
        return self._selection_dict(
            {
                "spec": self.spec,
                "circuit": self.circuit,
                "model": {"name": self.model, "weights": self.weights}
                | ({"preprocess": self.preprocess} if self.preprocess is not None else {}),
                "claims": [c.to_dict(with_kernels=with_kernels) for c in self.claims],
                "summary": self.summary,
            }
            | ({"selected": list(self.selections)} if self.selections else {})
        )

    def _selection_dict(self, out: dict[str, Any]) -> dict[str, Any]:
        """`out` with the selections as numbers (`"selections"`), when there are any."""
        if self.selection_data:
            out["selections"] = [_finite_entry(e) for e in self.selection_data]
        return out

    def to_json(self, *, with_kernels: bool = False) -> str:
        """Strict JSON (an undefined measurement is `null`, never `NaN`)."""
        return json.dumps(self.to_dict(with_kernels=with_kernels), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Read back a report saved with `to_json` / `to_dict`."""
        return cls(
            spec=data["spec"],
            model=data["model"]["name"],
            weights=data["model"].get("weights"),
            claims=tuple(ClaimResult.from_dict(c) for c in data["claims"]),
            circuit=data.get("circuit", ""),
            selections=tuple(data.get("selected", ())),
            selection_data=tuple(dict(e) for e in data.get("selections", ())),
            preprocess=data["model"].get("preprocess"),
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Read back a report saved with `to_json`."""
        return cls.from_dict(json.loads(text))

    def to_junit(self) -> str:
        """JUnit XML: one test case per claim, so a circuit can be a CI regression test."""
        s = self.summary
        cases = []
        for c in self.claims:
            attrs = f"classname={quoteattr(self.circuit or self.spec)} name={quoteattr(c.id)}"
            body = ""
            if c.status == "fail":
                body = f"<failure message={quoteattr(c.detail or 'claim does not hold')}>"
                body += escape(_evidence(c)) + "</failure>"
            elif c.status == "error":
                body = f"<error message={quoteattr(c.detail or 'claim could not be measured')}/>"
            props = "".join(
                f"<property name={quoteattr(k)} value={quoteattr(f'{v:.6g}')}/>"
                for k, v in c.measured.items()
            )
            if props:
                body = f"<properties>{props}</properties>" + body
            cases.append(f"  <testcase {attrs} file={quoteattr(c.source)}>{body}</testcase>")
        head = (
            f'<testsuite name={quoteattr(self.circuit or self.spec)} tests="{len(self.claims)}" '
            f'failures="{s["fail"]}" errors="{s["error"]}">'
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            + "\n".join([head, *cases, "</testsuite>"])
            + "\n"
        )

    def to_text(self) -> str:
        """A readable table: verdict, claim, measured vs expected, source line."""
        rows = []
        for c in self.claims:
            rows.append(
                f"{c.status.upper():5}  {c.id}\n       {c.text}    [{c.source}]\n       "
                + _evidence(c)
                + (f"\n       {c.detail}" if c.detail else "")
            )
        s = self.summary
        tail = f"{s['pass']} passed, {s['fail']} failed, {s['error']} errors"
        head = (
            f"{self.spec}  (model {self.model}"
            + (f", weights {self.weights}" if self.weights else "")
            + (f", preprocess {self.preprocess}" if self.preprocess else "")
            + ")"
        )
        chosen = [f"selected: {t}" for t in self.selections]
        return "\n".join([head, *chosen, "", *rows, "", tail]) + "\n"

    def _repr_html_(self) -> str:
        from circuitdsl.report.html import report_table_html

        return report_table_html(self)


def _finite_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A selection entry with non-finite numbers written as null."""
    return {k: _finite(v) if isinstance(v, float) else v for k, v in entry.items()}


def _finite(v: float) -> float | None:
    """JSON has no NaN / infinity: an undefined statistic is written as null."""
    return v if math.isfinite(v) else None


def _evidence(c: ClaimResult) -> str:
    parts = []
    for stat, value in c.measured.items():
        want = c.expected.get(stat)
        parts.append(f"{stat} = {value:.3g}" + (f" (want {want})" if want else ""))
    return ", ".join(parts) if parts else "(no measurement)"
