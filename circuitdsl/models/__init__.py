"""Model adapters: everything circuitdsl knows about particular models lives here.

`load_model(name, weights)` returns a `ModelAdapter`; see `base` for the names it
understands and `register_model` for adding more (the model zoo does).
"""

from circuitdsl.models.base import (
    MODEL_REGISTRY,
    LayerInfo,
    ModelAdapter,
    adapter_from_module,
    load_model,
    register_model,
)

__all__ = [
    "MODEL_REGISTRY",
    "LayerInfo",
    "ModelAdapter",
    "adapter_from_module",
    "load_model",
    "register_model",
]
