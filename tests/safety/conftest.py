"""The fuzz and fault suite's end-of-run line: inputs tried, exit codes, time."""

from __future__ import annotations

import time

import pytest

from tests.safety.harness import START, TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    total = sum(TALLY.values())
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(TALLY.items()))
    terminalreporter.write_line(
        f"safety suite: {total} inputs tried ({parts}) in {time.monotonic() - START:.1f} s"
    )
