"""Model adapters: everything circuitdsl knows about particular models lives here.

`load_model(name, weights)` returns a `ModelAdapter`; `registry` lists the names it
understands and `register_model` adds more. `base` holds the interface only.
"""

from circuitdsl.models.base import LayerInfo, ModelAdapter, adapter_from_module
from circuitdsl.models.preprocess import Preprocess
from circuitdsl.models.registry import MODEL_REGISTRY, known_models, load_model, register_model

__all__ = [
    "MODEL_REGISTRY",
    "LayerInfo",
    "ModelAdapter",
    "Preprocess",
    "adapter_from_module",
    "known_models",
    "load_model",
    "register_model",
]
