"""Helpers of the fuzz and fault suite: run `circ` in-process and tally every input.

`circ(*args)` runs `circuitdsl.cli.main` with stdout and stderr captured, fails the test
on exit 3 (an internal error on user input) or on a traceback, and counts the exit
codes; conftest.py prints the counts (inputs tried, exit codes, time) at the end.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from dataclasses import dataclass

from circuitdsl.cli import main

TALLY: Counter[str] = Counter()


@dataclass
class Result:
    code: int
    out: str
    err: str


def circ(*args: str) -> Result:
    """Run `circ ARGS` in this process; exit 3 or a traceback fails the calling test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    TALLY[f"exit {code}"] += 1
    result = Result(code, out.getvalue(), err.getvalue())
    assert code in (0, 1, 2), f"circ {' '.join(args)} exited {code}:\n{result.err[-2000:]}"
    assert "Traceback" not in result.err, result.err[-2000:]
    return result


def tally(outcome: str, n: int = 1) -> None:
    """Count an input that was tried below the CLI (a weight file read directly)."""
    TALLY[outcome] += n
