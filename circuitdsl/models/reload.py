"""Another checkpoint of an architecture already traced: new weights, the same trace.

A sweep over a training run checks one spec on hundreds of checkpoints of one network.
Tracing the network (`torch.fx`), naming its layers and recording every node's shape is
the same for each of them; only the weights differ. `with_weights(template, path)` returns
an adapter for the weights in `path` that shares the template's structure (layer names,
shapes, reachability) and owns everything that depends on the weights:

* a fresh copy of the module with the file's state dict loaded (strict);
* a new `fx.GraphModule` over a copy of the template's graph, so that anything keyed by
  the graph module's identity (runners, response stores) never sees the old weights;
* each module's linear stand-in (`LinOp`: conv kernels, BatchNorm scales) rebuilt from
  the new module, and an empty cache of expanded weights.

The template is never modified. The result is the same adapter `load_model(name, path)`
would build (tests/sweep checks the reports agree); when sharing is not possible (an
adapter that is not a plain `TracedAdapter`, or a file whose tensors do not fit the
module as they are, e.g. one an adapter converts while loading) `with_weights` returns
None and the caller loads the model afresh.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch.fx as fx

from circuitdsl.models.base import ModelAdapter, TracedAdapter
from circuitdsl.models.checkpoint import read_state_dict
from circuitdsl.models.traced import TracedGraph, _module_op


def can_share(adapter: ModelAdapter) -> bool:
    """Whether `with_weights` can reuse this adapter's trace."""
    # Subclasses may hold more weight-derived state than this module knows how to renew.
    return type(adapter) is TracedAdapter and type(adapter.graph) is TracedGraph


def with_weights(template: ModelAdapter, path: str | Path) -> ModelAdapter | None:
    """An adapter like `template` with the weights of `path`, or None (see the module doc).

    Raises the `DiagnosticError` of `read_state_dict` for a missing, unreadable or unsafe
    file, exactly as loading the model afresh would.
    """
    if not can_share(template):
        return None
    assert isinstance(template, TracedAdapter)
    state = read_state_dict(path)
    own = template.module.state_dict()
    if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
        return None  # let the model's own loader convert or explain the mismatch
    module = copy.deepcopy(template.module)
    module.load_state_dict(state, strict=True)
    module.eval()

    graph = copy.copy(template.graph)
    graph.module = module
    graph.gm = fx.GraphModule(module, copy.deepcopy(template.graph.gm.graph))
    modules = dict(module.named_modules())
    nodes = {}
    for node in graph.gm.graph.nodes:
        info = template.graph.nodes.get(node.name)
        if info is None:
            continue
        if node.op == "call_module":
            op, _, _ = _module_op(modules[str(node.target)], node)
            info = dataclasses.replace(info, op=op, users=list(info.users))
        nodes[node.name] = info
    # Function nodes keep their stand-ins: those hold constants of the code, not weights.
    graph.nodes = {n: nodes.get(n, info) for n, info in template.graph.nodes.items()}

    adapter = copy.copy(template)
    adapter.module = module
    adapter._graph = graph
    # Every tensor the module has came from the file (the keys matched exactly).
    adapter._missing = frozenset()
    adapter.weights_path = str(path)
    adapter._cache = {}
    adapter._modules = modules
    return adapter
