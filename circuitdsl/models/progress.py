"""Progress through a run's phases (model load, selection, each layer's sweep, claims).

`Progress` draws tqdm bars on stderr; it is quiet when stderr is not a terminal, with
``-q``, or when made with ``enabled=False``. The Python API's ``progress=`` takes True,
False, None (on when stderr is a terminal), a `Progress`, or a callable
``(done, total)`` (the claims counter only).

The active `Progress` of a run is held in a context variable (`use`, `current`) so the
runner deep inside a claim handler reports without every signature carrying it.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO


class Progress:
    """Phases and counters on a stream (stderr), or nothing."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.claims_callback: Callable[[int, int], None] | None = None

    @contextlib.contextmanager
    def phase(self, desc: str, total: int | None = None, unit: str = "it") -> Iterator[Any]:
        """A bar for one phase; yields ``update(n=1)``."""
        if not self.enabled:
            yield lambda n=1: None
            return
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=self.stream,
            leave=False,
            dynamic_ncols=True,
            mininterval=0.2,
        )
        try:
            yield bar.update
        finally:
            bar.close()

    def note(self, message: str) -> None:
        """A one-line message (a phase with no counter)."""
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(message, file=self.stream)

    def claims(self) -> Callable[[int, int], None] | None:
        """The engine's ``(done, total)`` callback for the claims phase, or None."""
        if self.claims_callback is not None:
            return self.claims_callback
        if not self.enabled:
            return None
        state: dict[str, Any] = {}

        def show(done: int, total: int) -> None:
            if "bar" not in state:
                from tqdm import tqdm

                state["bar"] = tqdm(
                    total=total, desc="claims", unit="claim", file=self.stream, leave=False
                )
            bar = state["bar"]
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        return show


_QUIET = Progress(enabled=False)
_CURRENT: contextvars.ContextVar[Progress] = contextvars.ContextVar("progress", default=_QUIET)


def make(progress: Any) -> Progress:
    """A `Progress` from what the API's ``progress=`` accepts (see the module doc)."""
    if isinstance(progress, Progress):
        return progress
    if progress is None or isinstance(progress, bool):
        return Progress(enabled=progress)
    if callable(progress):
        p = Progress(enabled=False)
        p.claims_callback = progress
        return p
    raise TypeError(f"progress= takes a bool, None, a Progress or a callable, not {progress!r}")


def current() -> Progress:
    """The active run's `Progress` (a quiet one outside any run)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use(progress: Progress) -> Iterator[Progress]:
    """Make `progress` the active one inside the block."""
    token = _CURRENT.set(progress)
    try:
        yield progress
    finally:
        _CURRENT.reset(token)
