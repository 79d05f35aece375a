"""Where circuitdsl keeps what it can rebuild: parser tables, converted weights, activations."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CIRCUITDSL_CACHE"


def cache_dir() -> Path:
    """``$CIRCUITDSL_CACHE``, else ``$XDG_CACHE_HOME/circuitdsl`` (``~/.cache/circuitdsl``)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "circuitdsl"
