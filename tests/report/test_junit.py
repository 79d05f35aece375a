"""JUnit XML that the xunit2 (Jenkins / Surefire) schema accepts, built with ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from report_samples import demo_report

from circuitdsl.cli import main
from circuitdsl.report.junit import to_junit

ROOT = Path(__file__).parents[2]
SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("data") / "junit-xunit2.xsd")


def test_the_schema_catches_what_the_old_writer_did() -> None:
    """The XSD is not a rubber stamp: the old output's two faults fail it."""
    old = (
        '<testsuite name="c" tests="1" failures="0" errors="0">'
        '<testcase classname="c" name="a" file="x.circ:11"/></testsuite>'
    )
    assert not SCHEMA.is_valid(old)  # no file attribute on a test case
    old_props = (
        '<testsuite name="c" tests="1" failures="0" errors="0"><testcase name="a">'
        '<properties><property name="z" value="1"/></properties></testcase></testsuite>'
    )
    assert not SCHEMA.is_valid(old_props)  # properties belong to the suite


def test_one_and_many_runs_validate() -> None:
    for reports in ([demo_report()], [demo_report("m1"), demo_report("m2")]):
        xml = to_junit(reports)
        SCHEMA.validate(xml)
        root = ET.fromstring(xml)
        assert root.tag == "testsuites" and len(root) == len(reports)
        assert root.get("tests") == str(5 * len(reports))
        assert root.get("failures") == root.get("errors") == str(len(reports))


def test_suite_carries_file_and_properties_cases_their_outcome() -> None:
    xml = to_junit([demo_report()])
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    assert suite.get("file") == "specs/demo.circ"  # a plain path, no `:line`
    assert suite.get("time") == "1.250" and suite.get("timestamp", "").startswith("2026-12-01")
    props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
    assert props["model"] == "demo" and props["weights_sha256"] == "ab" * 32
    assert props["selected"].startswith("curve = top 1 of conv2")
    cases = {c.get("name"): c for c in suite.iterfind("testcase")}
    assert set(cases) == {
        "a->b.excites",
        "a->c.excites",
        "d->c.excites",
        "e->c.excites",
        "f->c.excites",
    }
    failure = cases["d->c.excites"].find("failure")
    assert failure is not None and failure.get("message") == "weight sum is 0.25 RMS"
    assert "z = 0.25 (want >= 1)" in (failure.text or "")
    error = cases["e->c.excites"].find("error")
    assert error is not None and "conv9" in (error.get("message") or "")
    assert cases["a->b.excites"].find("failure") is None
    out = cases["a->b.excites"].findtext("system-out") or ""
    assert "source: specs/demo.circ:3" in out
    assert all(c.find("properties") is None for c in cases.values())


def test_xunit1_family_adds_plain_file_and_line() -> None:
    root = ET.fromstring(to_junit([demo_report()], family="xunit1"))
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("file") == "specs/demo.circ" and case.get("line") == "3"
    with pytest.raises(ValueError, match="unknown JUnit family"):
        to_junit([demo_report()], family="xunit9")


def test_markup_in_text_is_escaped_by_the_library() -> None:
    rep = demo_report()
    odd = rep.claims[2].__class__(
        **{f: getattr(rep.claims[2], f) for f in rep.claims[2].__dataclass_fields__}
        | {"detail": 'a < b & "c" ]]> d'}
    )
    xml = to_junit(
        [
            rep.__class__(
                **{f: getattr(rep, f) for f in rep.__dataclass_fields__} | {"claims": (odd,)}
            )
        ]
    )
    SCHEMA.validate(xml)
    failure = ET.fromstring(xml).find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == 'a < b & "c" ]]> d'


def test_cli_junit_of_a_real_check_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "junit.xml"
    assert main(["check", "specs/curvenet/curve_hypotheses.circ", "-o", str(out)]) == 1
    SCHEMA.validate(str(out))
    root = ET.parse(out).getroot()
    assert root.get("tests") == "64" and root.get("failures") == "56"
    # the writer builds XML with ElementTree: no hand-made tags in its source
    src = (ROOT / "circuitdsl" / "report" / "junit.py").read_text()
    assert 'f"<' not in src and "quoteattr" not in src
