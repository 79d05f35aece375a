"""A model as a graph of linearisable operations, traced once with `torch.fx`.

Input: any `nn.Module` (eval mode). Output: `TracedGraph`, which knows

* every addressable layer (dotted module paths, plus adapter aliases) and the fx node
  whose output is that layer's activation;
* for every node, the *linearised* operation that stands in for it when weights are
  expanded (`LinOp`): ReLU and friends become the identity, max-pool becomes
  average-pool, BatchNorm keeps only its per-channel scale, biases disappear;
* reachability (`is_upstream`) and the channel count of every node.

The adapters in this package are thin: they build a module, give it to
`TracedGraph`, and add names (aliases). `circuitdsl.models.weights` computes weights
between nodes from the `LinOp`s.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

# Elementwise nonlinearities that the linearised network replaces by the identity.
_IDENTITY_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.Hardtanh,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.LocalResponseNorm,
)
_IDENTITY_FUNCTIONS = {
    "relu",
    "relu_",
    "relu6",
    "leaky_relu",
    "gelu",
    "silu",
    "elu",
    "hardtanh",
    "dropout",
    "local_response_norm",
    "contiguous",
}


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


@dataclass
class LinOp:
    """The linear stand-in for one fx node.

    kind is one of ``input``, ``identity``, ``scale`` (per-channel factor),
    ``conv``, ``avgpool``, ``pad``, ``cat``, ``add`` or ``opaque`` (no spatial linear
    form: flatten, linear layers, anything unknown; `why` says what it is).
    Spatial fields are (height, width); `pad` is (top, bottom, left, right).
    """

    kind: str
    inputs: tuple[str, ...] = ()
    weight: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    ceil_mode: bool = False
    why: str = ""


@dataclass
class NodeInfo:
    """What the adapter knows about one fx node."""

    name: str
    op: LinOp
    module_type: str | None
    kind: str  # "conv", "concat", "relu", "pool", ... (LayerInfo.kind)
    kernel_size: tuple[int, int] | None
    shape: tuple[int, ...] | None = None  # from a forward pass at the nominal input size
    users: list[str] = field(default_factory=list)


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _tensor_inputs(node: fx.Node) -> tuple[str, ...]:
    names: list[str] = []

    def visit(a: Any) -> None:
        if isinstance(a, fx.Node):
            names.append(a.name)
        elif isinstance(a, (list, tuple)):
            for x in a:
                visit(x)
        elif isinstance(a, dict):
            for x in a.values():
                visit(x)

    visit(node.args)
    visit(node.kwargs)
    return tuple(dict.fromkeys(names))


def _bn_scale(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """BatchNorm's linear part in eval mode: gamma / sqrt(running_var + eps)."""
    assert bn.running_var is not None
    inv = torch.rsqrt(bn.running_var.detach().float() + bn.eps)
    if bn.weight is not None:
        inv = inv * bn.weight.detach().float()
    return inv


def _module_op(mod: nn.Module, node: fx.Node) -> tuple[LinOp, str, tuple[int, int] | None]:
    ins = _tensor_inputs(node)
    if isinstance(mod, nn.Conv2d):
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            pad = mod._reversed_padding_repeated_twice  # same as Conv2d uses internally
            ph = (int(pad[2]), int(pad[3]))
            pw = (int(pad[0]), int(pad[1]))
            if mod.padding_mode != "zeros":
                return (
                    LinOp("opaque", ins, why=f"conv with padding_mode={mod.padding_mode!r}"),
                    "conv",
                    _pair(mod.kernel_size),
                )
        else:
            p = _pair(mod.padding)
            ph, pw = (p[0], p[0]), (p[1], p[1])
        op = LinOp(
            "conv",
            ins,
            weight=mod.weight.detach().float(),
            kernel=_pair(mod.kernel_size),
            stride=_pair(mod.stride),
            dilation=_pair(mod.dilation),
            groups=mod.groups,
            pad=(ph[0], ph[1], pw[0], pw[1]),
        )
        return op, "conv", _pair(mod.kernel_size)
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        return LinOp("scale", ins, scale=_bn_scale(mod)), "bn", None
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _pair(mod.kernel_size)
        s = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
        p = _pair(mod.padding)
        if isinstance(mod, nn.MaxPool2d) and _pair(mod.dilation) != (1, 1):
            return LinOp("opaque", ins, why="dilated max-pool"), "pool", k
        op = LinOp(
            "avgpool",
            ins,
            kernel=k,
            stride=s,
            pad=(p[0], p[0], p[1], p[1]),
            ceil_mode=bool(mod.ceil_mode),
        )
        return op, "pool", k
    if isinstance(mod, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU)):
        return LinOp("identity", ins), "relu", None
    if isinstance(mod, nn.LocalResponseNorm):
        return LinOp("identity", ins), "lrn", None
    if isinstance(mod, _IDENTITY_MODULES):
        return LinOp("identity", ins), "identity", None
    if isinstance(mod, nn.Linear):
        return LinOp("opaque", ins, why="a fully connected layer"), "linear", None
    return LinOp("opaque", ins, why=type(mod).__name__), type(mod).__name__.lower(), None


def _function_op(node: fx.Node) -> tuple[LinOp, str, tuple[int, int] | None]:
    target = node.target
    name = (
        getattr(target, "__name__", str(target)).lstrip("_")
        if node.op != "call_method"
        else str(target)
    )
    ins = _tensor_inputs(node)
    if name in _IDENTITY_FUNCTIONS:
        kind = "lrn" if name == "local_response_norm" else "relu" if "relu" in name else "identity"
        return LinOp("identity", ins), kind, None
    if target in (torch.cat, torch.concat, torch.concatenate) or name == "cat":
        dim = _arg(node, 1, "dim", 0)
        if dim in (1, -3):
            return LinOp("cat", ins), "concat", None
        return LinOp("opaque", ins, why=f"concatenation along dim {dim}"), "concat", None
    if target in (operator.add, operator.iadd, torch.add) or name in ("add", "add_", "iadd"):
        tensors = [a for a in node.args[:2] if isinstance(a, fx.Node)]
        # A constant added to a tensor is a bias: the linearised network drops it.
        if len(tensors) == 1:
            return LinOp("identity", (tensors[0].name,)), "add", None
        return LinOp("add", ins), "add", None
    operands = node.args[:2]
    tensors = [a for a in operands if isinstance(a, fx.Node)]
    numbers = [a for a in operands if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if len(tensors) == 1 and len(numbers) == 1:
        # Arithmetic with a constant: a scale is linear, an offset is a bias (dropped).
        c = float(numbers[0])
        if name in ("mul", "mul_", "imul"):
            return LinOp("scale", (tensors[0].name,), scale=torch.tensor(c)), "scale", None
        if name in ("truediv", "div", "div_", "itruediv") and operands[0] is tensors[0]:
            return LinOp("scale", (tensors[0].name,), scale=torch.tensor(1.0 / c)), "scale", None
        if name in ("sub", "sub_", "isub"):
            sign = 1.0 if operands[0] is tensors[0] else -1.0
            return LinOp("scale", (tensors[0].name,), scale=torch.tensor(sign)), "scale", None
    if name == "pad":
        pads = list(_arg(node, 1, "pad", ()))
        mode = _arg(node, 2, "mode", "constant")
        if mode != "constant" or len(pads) not in (2, 4):
            return LinOp("opaque", ins, why=f"pad mode {mode!r}"), "pad", None
        if len(pads) == 2:
            pads += [0, 0]
        left, right, top, bottom = (int(p) for p in pads)
        # Whatever the pad value (-inf before a max-pool), the linear stand-in pads
        # with zeros: max-pool becomes average-pool and -inf has no linear meaning.
        return LinOp("pad", ins, pad=(top, bottom, left, right)), "pad", None
    if name in ("max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "boolean_dispatch"):
        k = _pair(_arg(node, 1, "kernel_size", 1))
        stride = _arg(node, 2, "stride", None)
        s = _pair(stride) if stride not in (None, [], ()) else k
        p = _pair(_arg(node, 3, "padding", 0))
        ceil = bool(_arg(node, 5 if name.startswith("max") else 4, "ceil_mode", False))
        if name.startswith("max") and _pair(_arg(node, 4, "dilation", 1)) != (1, 1):
            return LinOp("opaque", ins, why="dilated max-pool"), "pool", k
        if not name.startswith("max") and _arg(node, 6, "divisor_override", None) is not None:
            return LinOp("opaque", ins, why="average-pool with divisor_override"), "pool", k
        op = LinOp("avgpool", ins, kernel=k, stride=s, pad=(p[0], p[0], p[1], p[1]), ceil_mode=ceil)
        return op, "pool", k
    return LinOp("opaque", ins, why=f"operation {name!r}"), name, None


class TracedGraph:
    """An fx trace of a module with layer names, linear stand-ins and shapes."""

    def __init__(
        self,
        module: nn.Module,
        *,
        example_input: torch.Tensor,
        aliases: Mapping[str, str] | None = None,
        hidden: frozenset[str] = frozenset(),
        fold_bn: bool = True,
        retrace: bool = True,
    ) -> None:
        self.module = module
        # `retrace=False` keeps a GraphModule's own graph, so its node names (which the
        # edits of `circuitdsl.models.edits` preserve) stay what the adapter calls them.
        if not retrace and isinstance(module, fx.GraphModule):
            self.gm = module
        else:
            self.gm = fx.symbolic_trace(module)
        self.nodes: dict[str, NodeInfo] = {}
        self.order: list[str] = []
        modules = dict(module.named_modules())
        calls: dict[str, int] = {}
        for node in self.gm.graph.nodes:
            if node.op == "call_module":
                calls[str(node.target)] = calls.get(str(node.target), 0) + 1
        for node in self.gm.graph.nodes:
            if node.op == "output" or node.op == "get_attr":
                continue
            if node.op == "placeholder":
                info = NodeInfo(node.name, LinOp("input"), None, "input", None)
            elif node.op == "call_module":
                mod = modules[str(node.target)]
                op, kind, ks = _module_op(mod, node)
                info = NodeInfo(node.name, op, type(mod).__name__, kind, ks)
            else:
                op, kind, ks = _function_op(node)
                info = NodeInfo(node.name, op, None, kind, ks)
            self.nodes[node.name] = info
            self.order.append(node.name)
        for name in self.order:
            for i in self.nodes[name].op.inputs:
                if i in self.nodes:
                    self.nodes[i].users.append(name)
        self.index = {n: i for i, n in enumerate(self.order)}

        # Layer name -> node. Leaf modules called once map to their node; a container
        # maps to the one node of its scope that is used outside it (its return value).
        self.layer_node: dict[str, str] = {}
        scope: dict[str, set[str]] = {}
        for node in self.gm.graph.nodes:
            if node.op == "call_module" and calls[str(node.target)] == 1:
                self.layer_node[str(node.target)] = node.name
            for path, _ in (node.meta.get("nn_module_stack") or {}).values():
                scope.setdefault(str(path), set()).add(node.name)
        for path, members in scope.items():
            if path in self.layer_node or path not in modules or path == "":
                continue
            if calls.get(path, 0) > 1:
                continue
            exits = [
                n
                for n in members
                if n in self.nodes
                and (not self.nodes[n].users or any(u not in members for u in self.nodes[n].users))
            ]
            if len(exits) == 1:
                self.layer_node[path] = exits[0]
        # Concatenations and sums written as functions in the top-level forward belong
        # to no module: they are addressed by their fx node name (`cat`, `add_1`).
        claimed = set(self.layer_node.values())
        for node in self.gm.graph.nodes:
            if (
                node.name in self.nodes
                and not node.meta.get("nn_module_stack")
                and self.nodes[node.name].op.kind in ("cat", "add")
                and node.name not in claimed
                and node.name not in modules
            ):
                self.layer_node[node.name] = node.name
        if fold_bn:
            # `layer3.1.conv2` names the conv with its BatchNorm folded in: the output
            # of the BN that is the conv's only consumer.
            for path, n in list(self.layer_node.items()):
                info = self.nodes[n]
                if info.kind == "conv" and len(info.users) == 1:
                    user = self.nodes[info.users[0]]
                    if user.kind == "bn":
                        self.layer_node[path] = user.name
                        self.nodes[user.name].kernel_size = info.kernel_size
        # The image itself, so that first-layer kernels (RGB filters) can be addressed.
        placeholders = [n for n in self.order if self.nodes[n].op.kind == "input"]
        if len(placeholders) == 1 and "input" not in modules:
            self.layer_node.setdefault("input", placeholders[0])
        for alias, target in (aliases or {}).items():
            if target in self.layer_node:
                self.layer_node[alias] = self.layer_node[target]
        for h in hidden:
            self.layer_node.pop(h, None)
        self.layer_kind: dict[str, str] = {}
        for path, n in self.layer_node.items():
            info = self.nodes[n]
            mod = modules.get(path)
            kind = info.kind
            if info.kind in ("bn", "input"):
                kind = "conv" if info.kind == "bn" else "input"
            elif mod is not None and not _is_leaf(mod) and info.kind not in ("concat", "add"):
                kind = "block"
            self.layer_kind[path] = kind
        self._ancestors: dict[str, frozenset[str]] = {}
        self._record_shapes(example_input)

    def _record_shapes(self, x: torch.Tensor) -> None:
        env: dict[str, Any] = {}
        with torch.no_grad():
            interp = fx.Interpreter(self.gm)
            orig_run_node = interp.run_node

            def run_node(n: fx.Node) -> Any:
                out = orig_run_node(n)
                env[n.name] = out
                return out

            interp.run_node = run_node  # type: ignore[method-assign]
            interp.run(x)
        for name, val in env.items():
            if name in self.nodes and isinstance(val, torch.Tensor):
                self.nodes[name].shape = tuple(val.shape)

    # ---- queries ---------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Addressable layers in network order (ties broken by name)."""
        return sorted(self.layer_node, key=lambda p: (self.index[self.layer_node[p]], p))

    def ancestors(self, node: str) -> frozenset[str]:
        """Every node whose output `node` depends on."""
        if node not in self._ancestors:
            seen: set[str] = set()
            stack = list(self.nodes[node].op.inputs)
            while stack:
                n = stack.pop()
                if n in seen or n not in self.nodes:
                    continue
                seen.add(n)
                stack.extend(self.nodes[n].op.inputs)
            self._ancestors[node] = frozenset(seen)
        return self._ancestors[node]

    def path_nodes(self, src: str, dst: str) -> list[str]:
        """Nodes on some path src -> dst (src excluded, dst included), in order."""
        anc = self.ancestors(dst)
        if src not in anc:
            return []
        return [
            n
            for n in self.order[self.index[src] + 1 : self.index[dst] + 1]
            if (n == dst or n in anc) and src in self.ancestors(n)
        ]

    def channels(self, node: str) -> int:
        shape = self.nodes[node].shape
        return int(shape[1]) if shape is not None and len(shape) >= 2 else 0


def _is_leaf(mod: nn.Module) -> bool:
    return len(list(mod.children())) == 0
