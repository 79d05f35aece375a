"""JUnit XML of one or many runs, so a circuit can be a CI regression test.

The default family is `xunit2`, the shape the Jenkins xUnit / Surefire schema accepts
(pytest's `junit_family=xunit2`): a `<testsuites>` root, one `<testsuite>` per run with
its `file` (the spec's plain path) and the run's `<properties>` (model, weights and
their sha256, versions, chosen features), one `<testcase>` per claim with a `<failure>`
or `<error>` and the evidence in `<system-out>`. That schema allows no `file` or `line`
on a test case; `family="xunit1"` adds them (plain path, line number), as pytest's
legacy family does, for consumers such as GitLab that read them.

Written with `xml.etree.ElementTree`, so every attribute and text is escaped by the
library, never by hand.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING

from circuitdsl.report.evidence import evidence_text

if TYPE_CHECKING:
    from circuitdsl.report.model import Report

FAMILIES = ("xunit2", "xunit1")


def _seconds(report: Report) -> str:
    return f"{float(report.provenance.get('seconds') or 0.0):.3f}"


def _suite(report: Report, family: str) -> ET.Element:
    s = report.summary
    name = report.circuit or report.spec
    suite = ET.Element(
        "testsuite",
        {
            "name": f"{name} on {report.model}",
            "tests": str(len(report.claims)),
            "failures": str(s["fail"]),
            "errors": str(s["error"]),
            "skipped": "0",
            "time": _seconds(report),
            "file": report.spec,
        },
    )
    date = report.provenance.get("date")
    if date:
        suite.set("timestamp", str(date))
    props = ET.SubElement(suite, "properties")
    pairs: list[tuple[str, object]] = [
        ("spec", report.spec),
        ("circuit", report.circuit),
        ("model", report.model),
        ("weights", report.weights),
    ]
    pairs += sorted(report.provenance.items())
    pairs += [("selected", text) for text in report.selections]
    for key, value in pairs:
        if value is None or value == "":
            continue
        ET.SubElement(props, "property", {"name": key, "value": str(value)})
    for c in report.claims:
        case = ET.SubElement(suite, "testcase", {"classname": name, "name": c.id, "time": "0"})
        if family == "xunit1":
            case.set("file", c.file)
            if c.line is not None:
                case.set("line", str(c.line))
        if c.status == "fail":
            el = ET.SubElement(
                case, "failure", {"type": "claim", "message": c.detail or "claim does not hold"}
            )
            el.text = evidence_text(c)
        elif c.status == "error":
            el = ET.SubElement(
                case, "error", {"type": "claim", "message": c.detail or "claim not measured"}
            )
            el.text = evidence_text(c)
        out = ET.SubElement(case, "system-out")
        out.text = f"{c.text}\nsource: {c.source}\n{evidence_text(c)}" + (
            f"\n{c.detail}" if c.detail else ""
        )
    return suite


def to_junit(reports: Sequence[Report], *, family: str = "xunit2") -> str:
    """The JUnit XML document of `reports` (see the module docstring for `family`)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown JUnit family `{family}` (one of {', '.join(FAMILIES)})")
    root = ET.Element(
        "testsuites",
        {
            "name": "circ check",
            "tests": str(sum(len(r.claims) for r in reports)),
            "failures": str(sum(r.summary["fail"] for r in reports)),
            "errors": str(sum(r.summary["error"] for r in reports)),
            "time": f"{sum(float(r.provenance.get('seconds') or 0.0) for r in reports):.3f}",
        },
    )
    for r in reports:
        root.append(_suite(r, family))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
