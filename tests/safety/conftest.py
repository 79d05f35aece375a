"""The fuzz and fault suite's end-of-run line: inputs tried, exit codes, time."""

from __future__ import annotations

import pytest

from tests.safety.harness import TALLY

_SECONDS: list[float] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Only this suite's own tests count towards its time, not the rest of the session.
    if "tests/safety/" in report.nodeid.replace("\\", "/"):
        _SECONDS.append(report.duration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    total = sum(TALLY.values())
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(TALLY.items()))
    terminalreporter.write_line(
        f"safety suite: {total} inputs tried ({parts}) in {sum(_SECONDS):.1f} s of tests"
    )
