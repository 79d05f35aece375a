"""The pytest-like text form: one line per claim, details for failures, a closing list."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from report_samples import AGGREGATE, demo_report

from circuitdsl.cli import main
from circuitdsl.report.text import format_reports, key_number, wants_colour

ROOT = Path(__file__).parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_one_line_per_claim_details_for_failures_only() -> None:
    text = format_reports([demo_report()])
    lines = text.splitlines()
    claim_lines = [line for line in lines if re.match(r"(PASS|FAIL|ERROR) +\w->", line)]
    # five listed, the failure and the error head their detail blocks and the closing list
    assert len(claim_lines) == 5 + 2 + 2
    first = next(line for line in lines if "a->b.excites" in line)
    assert first.split()[:5] == ["PASS", "a->b.excites", "z", "=", "1.5"]
    assert "(>= 1)" in first and first.endswith("specs/demo.circ:3")
    # details: the failing claim's evidence and detail appear; a passing claim's do not
    assert "weight sum is 0.25 RMS" in text and "no such layer `conv9`" in text
    assert "weight sum is 1.5 RMS" not in text
    assert lines[-1].strip("= ") == "3 passed, 1 failed, 1 errors in 1.2s"
    assert not any(line != line.rstrip() for line in lines)  # no trailing blanks
    # the closing list names the failures, after the details
    tail = lines[lines.index(next(x for x in lines if "short summary" in x)) :]
    assert any("d->c.excites" in x for x in tail) and any("e->c.excites" in x for x in tail)
    assert not any("a->b.excites" in x for x in tail)


def test_verbose_quiet_and_stop_at_first_failure() -> None:
    rep = demo_report()
    verbose = format_reports([rep], verbosity=1)
    assert "weight sum is 1.5 RMS" in verbose and "== details ==" in verbose
    quiet = format_reports([rep], verbosity=-1)
    assert "a->b.excites" not in quiet and "d->c.excites" in quiet
    assert "weight sum" not in quiet  # -q: no detail blocks
    quieter = format_reports([rep], verbosity=-2)
    assert quieter.strip().splitlines()[-1].strip("= ").startswith("3 passed")
    assert "d->c.excites" not in quieter
    stopped = format_reports([rep], stop_at_first_failure=True)
    assert "d->c.excites" in stopped and "e->c.excites" not in stopped
    assert "-x): 2 more claims measured, not listed" in stopped
    assert "(stopped at the first failure)" in stopped.splitlines()[-1]


def test_aggregates_come_first() -> None:
    text = format_reports([demo_report(aggregates=(AGGREGATE,))])
    agg = text.index("17/25 hold, base rate 0.11, p = 0.0005")
    assert agg < text.index("a->b.excites")
    assert text.index("aggregates:") < text.index("claims:") < text.index("a->b.excites")
    assert (
        text.splitlines()[-1]
        .strip("= ")
        .startswith("3 passed, 1 failed, 1 errors; 1 of 1 aggregates pass")
    )
    failing = dict(AGGREGATE, status="fail", p_value=0.4)
    text = format_reports([demo_report(aggregates=(failing,))])
    tail = text[text.index("short summary") :]
    assert "aggregate: for a in early_curve" in tail and "0 of 1 aggregates pass" in tail


def test_several_runs_one_summary() -> None:
    text = format_reports([demo_report("m1"), demo_report("m2")])
    assert text.count("specs/demo.circ · model") == 2
    assert "d->c.excites on m2" in text
    assert text.splitlines()[-1].strip("= ").startswith("6 passed, 2 failed, 2 errors on 2 runs")


def test_key_number_prefers_the_thresholded_statistic() -> None:
    c = demo_report().claims[0]
    assert key_number(c) == "z = 1.5 (>= 1)"
    assert key_number(demo_report().claims[3]) == "z = nan (>= 1)"


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coloured = format_reports([demo_report()], colour=True, width=120)
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured).splitlines()[0].startswith("specs/demo.circ")
    assert not ANSI.search(format_reports([demo_report()]))

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_colour(Tty()) and not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(Tty())


@pytest.fixture
def _root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.usefixtures("_root")
def test_readme_main_job_fits_a_screen(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "specs/curvenet/curve_circuit.circ"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= 45  # the bar: one screen (31 claims then; 8 at calibrated defaults)
    assert sum(line.startswith("PASS ") for line in out) == 8  # one line per claim
    assert out[-1].strip("= ").startswith("8 passed, 0 failed, 0 errors")


@pytest.mark.usefixtures("_root")
def test_k_selects_claims_before_measuring(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "specs/curvenet/curve_circuit.circ"
    assert main(["check", spec, "-k", "line[22]", "-q"]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out  # line[22] -> curve[7]
    # a glob: * and ? are wildcards, the brackets stay literal
    assert main(["check", spec, "-k", "line[1?]->curve[7].*", "-q"]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out  # line[14], [17] -> curve[7]
    assert main(["check", spec, "-k", "no-such-claim"]) == 2
    assert "selects none" in capsys.readouterr().err


@pytest.mark.usefixtures("_root")
def test_exitfirst_and_quiet_on_the_hypotheses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "specs/curvenet/curve_hypotheses.circ", "-x"]) == 1
    out = capsys.readouterr().out
    claims = out.split("====")[0].split("\nclaims:\n")[-1]  # the aggregates come first
    listed = [line for line in claims.splitlines() if line[:4] in ("PASS", "FAIL")]
    assert listed[-1].startswith("FAIL") and sum(x.startswith("FAIL") for x in listed) == 1


def test_a_narrow_terminal_drops_the_source_column_not_the_one_line() -> None:
    text = format_reports([demo_report()], colour=True, width=40)
    plain = ANSI.sub("", text)
    line = next(x for x in plain.splitlines() if "a->b.excites" in x)
    assert "z = 1.5 (>= 1)" in line and "specs/demo.circ:3" not in line
    wide = ANSI.sub("", format_reports([demo_report()], colour=True, width=120))
    assert "specs/demo.circ:3" in next(x for x in wide.splitlines() if "a->b.excites" in x)
