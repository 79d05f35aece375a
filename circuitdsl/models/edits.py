"""Weight edits for `predict` claims, always applied to a copy of the model.

* ``ablate F``: F's channels are zeroed in its layer's output (for a family, every
  member's; for a direction, every channel it combines), in every forward pass.
* ``remove [positive|negative] (A -> B)`` / ``scale ... by X``: the *direct*
  convolution weights from A's channels into B's channels are multiplied by 0 / X;
  with ``positive`` (``negative``) only the weights > 0 (< 0) are touched. For
  families, every (member of A, member of B) pair; for directions, every (channel,
  channel) pair. Each weight is edited once even if several pairs share it.

"Direct" means: B's layer is (up to channel-wise ops: ReLU, BatchNorm, pooling,
padding) the output of one convolution whose input is (up to the same ops) A's layer.
Layers that are further apart (a bottleneck, a concatenation in between) have no single
weight tensor between them, and the edit is reported as an error naming the path,
rather than silently editing something else.

The caller's module, its parameters and the adapter's cache of expanded weights are
never touched: `edited_copy` deep-copies the traced graph module first.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from circuitdsl.language.diagnostics import Unmeasurable

# LinOp kinds that map channel i of their input to channel i of their output.
_CHANNELWISE = ("identity", "scale", "avgpool", "pad")


@dataclass
class EditedModel:
    """A deep copy of the model's graph module with the edits applied.

    `ablate` maps fx node names to zeroed channels (applied by the `Runner`);
    `notes` says, per edit, exactly which weights were changed.
    """

    gm: fx.GraphModule
    ablate: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    weights_changed: int = 0


def _members(bound: Any, node: str) -> list[Any]:
    return list(bound.members(node))


def direct_conv(adapter: Any, src_layer: str, dst_layer: str) -> str:
    """The fx node of the one convolution joining two layers, or `Unmeasurable`."""
    graph = adapter.graph
    a, b = adapter.node(src_layer), adapter.node(dst_layer)
    n = b
    while n == a or graph.nodes[n].op.kind != "conv":
        info = graph.nodes[n]
        if n == a or info.op.kind not in _CHANNELWISE or len(info.op.inputs) != 1:
            raise Unmeasurable(
                f"`{dst_layer}` is not the output of a convolution fed by `{src_layer}`"
                f" (found {info.kind} `{n}`): a weight edit needs the two layers joined by"
                " one convolution"
            )
        n = info.op.inputs[0]
    conv = n
    m = graph.nodes[conv].op.inputs[0] if graph.nodes[conv].op.inputs else None
    while m is not None and m != a:
        info = graph.nodes[m]
        if info.op.kind not in _CHANNELWISE or len(info.op.inputs) != 1:
            raise Unmeasurable(
                f"`{src_layer}` and `{dst_layer}` are not adjacent: the convolution `{conv}`"
                f" reads `{m}` ({info.kind}), not `{src_layer}`; only the direct weights of"
                " one convolution can be edited (choose adjacent layers)"
            )
        m = info.op.inputs[0] if info.op.inputs else None
    if m is None:
        raise Unmeasurable(f"`{src_layer}` does not feed the convolution `{conv}`")
    if graph.nodes[conv].op.groups != 1:
        raise Unmeasurable(f"the convolution `{conv}` is grouped; channel pairs are ambiguous")
    return conv


def _conv_module(gm: fx.GraphModule, node_name: str) -> torch.nn.Conv2d:
    for node in gm.graph.nodes:
        if node.name == node_name and node.op == "call_module":
            mod = gm.get_submodule(str(node.target))
            if isinstance(mod, torch.nn.Conv2d):
                return mod
    raise Unmeasurable(f"`{node_name}` is not a convolution module; its weights cannot be edited")


def edited_copy(adapter: Any, bound: Any, edits: Sequence[Mapping[str, Any]]) -> EditedModel:
    """Apply `edits` (the IR's edit dicts) to a deep copy of `adapter`'s graph module."""
    gm = copy.deepcopy(adapter.graph.gm)
    out = EditedModel(gm)
    for e in edits:
        kind = e["kind"]
        if kind == "ablate":
            targets = _members(bound, e["target"])
            for layer in sorted({f.layer for f in targets}):
                node = adapter.node(layer)
                mine = sorted({c for f in targets if f.layer == layer for c in f.channels})
                out.ablate.setdefault(node, [])
                out.ablate[node] = sorted(set(out.ablate[node]) | set(mine))
                out.notes.append(f"ablated {layer} channels {_ranges(mine)}")
            continue
        src, dst = e["edge"]
        factor = 0.0 if kind == "remove" else float(e["factor"])
        part = e.get("part", "all")
        src_members, dst_members = _members(bound, src), _members(bound, dst)
        pairs: set[tuple[int, int]] = set()
        layer_pairs = {(s.layer, d.layer) for s in src_members for d in dst_members}
        if len(layer_pairs) != 1:
            raise Unmeasurable(f"`{src}` -> `{dst}` spans several layer pairs")
        ((ls, ld),) = layer_pairs
        conv_node = direct_conv(adapter, ls, ld)
        conv = _conv_module(gm, conv_node)
        for s in src_members:
            for d in dst_members:
                pairs.update((o, i) for o in d.channels for i in s.channels)
        o_idx = torch.tensor([p[0] for p in sorted(pairs)])
        i_idx = torch.tensor([p[1] for p in sorted(pairs)])
        with torch.no_grad():
            w = conv.weight[o_idx, i_idx]  # [P, kh, kw], a copy
            if part == "positive":
                mask = w > 0
            elif part == "negative":
                mask = w < 0
            else:
                mask = torch.ones_like(w, dtype=torch.bool)
            before = float(w[mask].sum())
            w = torch.where(mask, w * factor, w)
            conv.weight[o_idx, i_idx] = w
        n = int(mask.sum())
        out.weights_changed += n
        verb = "removed" if kind == "remove" else f"scaled by {factor:g}"
        what = "" if part == "all" else f"{part} "
        out.notes.append(
            f"{verb} {n} {what}weights of `{conv_node}` ({ls} -> {ld}, {len(pairs)} kernels,"
            f" sum {before:.3g} -> {before * factor:.3g})"
        )
    return out


def _ranges(chans: Sequence[int]) -> str:
    return ",".join(str(c) for c in chans) if len(chans) <= 8 else f"{len(chans)} channels"
