"""The checker: measure every claim of a circuit against a bound model.

`check(circuit, bound) -> Report` (engine.py) groups claims by layer pair and
computes statistics in batches; one module per claim kind holds the statistic and
its verdict rule (docs/claims.md documents them). `check_spec(circuit, model_name,
weights)` loads the model, binds and checks.
"""

from circuitdsl.check.api import check_spec
from circuitdsl.check.common import Outcome, Unmeasurable
from circuitdsl.check.engine import check, register_handler, unregister_handler
from circuitdsl.check.memory import TensorBound

__all__ = [
    "Outcome",
    "TensorBound",
    "Unmeasurable",
    "check",
    "check_spec",
    "register_handler",
    "unregister_handler",
]
