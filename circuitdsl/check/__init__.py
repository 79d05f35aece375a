"""The checker: measure every claim of a circuit against a bound model.

`check(circuit, bound) -> Report` (engine.py) groups claims by layer pair and
computes statistics in batches; one module per claim kind holds the statistic and
its verdict rule (docs/claims.md documents them). `check_spec(circuit, model_name,
weights)` (api.py) loads the model, binds and checks.

The names below are imported on first use (PEP 562), so that importing one claim
module (`circuitdsl.check.sign`) does not import the engine and everything under it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "check_spec": "circuitdsl.check.api",
    "Outcome": "circuitdsl.check.common",
    "Unmeasurable": "circuitdsl.check.common",
    "check": "circuitdsl.check.engine",
    "register_handler": "circuitdsl.check.engine",
    "unregister_handler": "circuitdsl.check.engine",
    "TensorBound": "circuitdsl.check.memory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
