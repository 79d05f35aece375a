"""The model adapter interface: `LayerInfo`, `ModelAdapter`, `TracedAdapter`.

All model knowledge lives in adapters: layer names, channel counts, which layer feeds
which, how to get the weights between two layers, the input the model expects and how
to run it. The checker only ever talks to a `ModelAdapter`, through the methods and
properties declared here (no attribute probing).

Model names and `load_model` live in `circuitdsl.models.registry`, which imports the
adapter modules; adapters import this module and never the registry.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from circuitdsl.models.preprocess import NONE, Preprocess, as_preprocess

if TYPE_CHECKING:
    from circuitdsl.models.traced import TracedGraph
    from circuitdsl.models.weights import Block

from circuitdsl.language.diagnostics import (
    E_NOT_SUPPORTED,
    E_NOT_UPSTREAM,
    E_UNKNOWN_LAYER,
    E_WEIGHTS_INCOMPLETE,
    Diagnostic,
    DiagnosticError,
    Span,
    did_you_mean,
)


@dataclass(frozen=True)
class LayerInfo:
    """One addressable layer: its name, channel count, kernel size and kind.

    kind is one of "conv" (a conv, BatchNorm folded), "relu", "concat", "pool",
    "lrn", "linear", "add", "block" (a module with submodules), "input", ...
    """

    name: str
    channels: int
    kernel_size: tuple[int, int] | None
    kind: str


class ModelAdapter(ABC):
    """A model bound to its weights, addressed by layer names.

    This is the whole interface the rest of circuitdsl uses: callers never probe an
    adapter for optional attributes. Attributes: `name` (as the user gave it),
    `weights_path` (the file the weights came from, or None), `module` (the
    `nn.Module`, in eval mode).
    """

    name: str
    weights_path: str | None
    module: nn.Module

    @abstractmethod
    def layers(self) -> list[LayerInfo]:
        """Every addressable layer, in network (topological) order."""

    @abstractmethod
    def layer(self, name: str) -> LayerInfo:
        """The layer called `name`; E201 with the closest names when there is none."""

    @abstractmethod
    def is_upstream(self, src: str, dst: str) -> bool:
        """True when `dst`'s activation depends on `src`'s (src != dst)."""

    @abstractmethod
    def weights(self, src: str, dst: str) -> torch.Tensor:
        """Weights from `src` to `dst` as ``[C_dst, C_src, kh, kw]``, cached per pair.

        For a conv fed directly by `src` this is the conv's kernel (BatchNorm folded);
        otherwise the expanded weights of the linearised network (see
        `circuitdsl.models.weights`). Kernel row 0 is the top.
        """

    def weight_block(self, src: str, dst: str) -> Block:
        """`weights` with its geometry: stride and the offset of kernel row/column 0.

        The default suits adapters whose blocks are centred, stride-1 kernels.
        """
        from circuitdsl.models.weights import Block

        w = self.weights(src, dst)
        return Block(w, (1, 1), (-(w.shape[2] // 2), -(w.shape[3] // 2)))

    def aliases(self) -> dict[str, str]:
        """Other names of the same activation point: alias -> canonical layer name."""
        return {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images the model expects."""
        return (3, 224, 224)

    @property
    def preprocess(self) -> Preprocess:
        """The model's input transform: images in [0, 1] (RGB) -> its input range.

        Stimuli are rendered in [0, 1]; this is the model's own normalisation (lucent's
        ``x * 255 - 117`` for InceptionV1, ImageNet mean/std for torchvision), named, so
        that reports state it. It is callable: ``adapter.preprocess(images)``. A spec's
        ``preprocess`` word, ``--preprocess`` or the API can replace it (the setter).
        """
        return self._preprocess_value

    @preprocess.setter
    def preprocess(self, value: Preprocess) -> None:
        self._preprocess_value = value

    _preprocess_value: Preprocess = NONE

    @property
    def missing_parameters(self) -> frozenset[str]:
        """Parameters the weight file did not have (a backbone without its head).

        They keep their random initialisation; a claim whose weights or activations
        depend on one of them is an error naming it (`require_parameters`).
        """
        return frozenset()

    def parameters_for(self, layer: str) -> frozenset[str]:
        """The parameter names (state-dict keys) that `layer`'s activation depends on."""
        return frozenset()

    def require_parameters(self, *layers: str, after: str | None = None) -> None:
        """E217 when `layers` depend on a parameter the weight file lacked.

        With `after`, only the parameters between that layer and `layers` count (the
        weights from `after` to a layer read nothing before `after`).
        """
        missing = self.missing_parameters
        if not missing:
            return
        needed = {p for layer in layers for p in self.parameters_for(layer)} & missing
        if after is not None:
            needed -= self.parameters_for(after)
        if needed:
            names = sorted(needed)
            shown = ", ".join(f"`{p}`" for p in names[:8])
            more = f" and {len(names) - 8} more" if len(names) > 8 else ""
            what = ", ".join(f"`{x}`" for x in layers)
            if after is not None:
                what = f"the weights from `{after}` to {what}"
            raise DiagnosticError(
                [
                    Diagnostic(
                        E_WEIGHTS_INCOMPLETE,
                        f"{what} of `{self.name}` need parameters that"
                        f" `{self.weights_path}` does not have: {shown}{more}",
                        help="pass a weight file that includes them, or use layers the file covers",
                    )
                ]
            )

    @abstractmethod
    def branch_of(self, layer: str, channel: int) -> tuple[str, int] | None:
        """For a concatenation layer, the branch layer and index a channel comes from."""

    @abstractmethod
    def activations(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Run the model on `x` and return the named layers' activations."""

    @property
    @abstractmethod
    def graph(self) -> TracedGraph:
        """The model traced with torch.fx: the one execution path (`circuitdsl.models.probe`)."""

    @abstractmethod
    def node(self, name: str) -> str:
        """The fx node of `graph` whose output is layer `name` (E201 when there is none)."""


def unknown_layer(name: str, known: list[str], model: str, span: Span | None = None) -> Diagnostic:
    """E201 for `name`, with close names or, failing that, a few valid ones."""
    hint = did_you_mean(name, known)
    if hint is None:
        sample = ", ".join(f"`{k}`" for k in known[:8])
        hint = f"valid layers include {sample}; `circ layers {model}` lists all {len(known)}"
    else:
        hint += f" (`circ layers {model}` lists every layer)"
    return Diagnostic(
        E_UNKNOWN_LAYER, f"model `{model}` has no layer `{name}`", span=span, help=hint
    )


class TracedAdapter(ModelAdapter):
    """An adapter for any traceable `nn.Module`: layers are dotted module paths.

    Adapters for particular model families construct the module and pass aliases;
    everything else (tracing, shapes, weights, hooks) is shared.
    """

    def __init__(
        self,
        name: str,
        module: nn.Module,
        *,
        weights_path: str | None,
        example_input: torch.Tensor,
        aliases: Mapping[str, str] | None = None,
        hidden: frozenset[str] = frozenset(),
        preferred: frozenset[str] = frozenset(),
        preprocess: Preprocess | Callable[[torch.Tensor], torch.Tensor] | str | None = None,
        missing_parameters: frozenset[str] = frozenset(),
    ) -> None:
        from circuitdsl.models.traced import TracedGraph

        self.preprocess = as_preprocess(preprocess) if preprocess is not None else NONE
        self._missing = frozenset(missing_parameters)
        self._input_shape = (
            int(example_input.shape[1]),
            int(example_input.shape[2]),
            int(example_input.shape[3]),
        )

        self._preferred = preferred  # names listed first among aliases of one point

        self.name = name
        self.weights_path = weights_path
        self.module = module.eval()
        try:
            self._graph = TracedGraph(
                self.module, example_input=example_input, aliases=aliases, hidden=hidden
            )
        except DiagnosticError:
            raise
        except Exception as exc:  # torch.fx reports untraceable code in many ways
            raise DiagnosticError(
                [
                    Diagnostic(
                        E_NOT_SUPPORTED,
                        f"model `{name}` cannot be traced with torch.fx: {str(exc)[:300]}",
                        help="models with data-dependent control flow in `forward` are not"
                        " supported; wrap the traceable part in a module of its own",
                    )
                ]
            ) from None
        self._cache: dict[tuple[str, str], Block] = {}
        names = self.graph.layer_names()
        self._layers = {
            n: LayerInfo(
                n,
                self.graph.channels(self.graph.layer_node[n]),
                self.graph.nodes[self.graph.layer_node[n]].kernel_size,
                self.graph.layer_kind[n],
            )
            for n in names
        }
        self._order = names
        self._modules = dict(self.module.named_modules())
        self._alias_target = dict(aliases or {})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({len(self._order)} layers)>"

    def layers(self) -> list[LayerInfo]:
        return [self._layers[n] for n in self._order]

    @property
    def graph(self) -> TracedGraph:
        return self._graph

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    @property
    def missing_parameters(self) -> frozenset[str]:
        return self._missing

    def parameters_for(self, layer: str) -> frozenset[str]:
        node = self.node(layer)
        fx_nodes = {n.name: n for n in self.graph.gm.graph.nodes}
        out: set[str] = set()
        for name in self.graph.ancestors(node) | {node}:
            n = fx_nodes.get(name)
            if n is None:
                continue
            targets = [n] if n.op in ("call_module", "get_attr") else []
            # parameters used functionally (`F.conv2d(x, self.weight)`) are get_attr inputs
            targets += [a for a in n.all_input_nodes if a.op == "get_attr"]
            for t in targets:
                path = str(t.target)
                if t.op == "get_attr":
                    out.add(path)
                    continue
                mod = self._modules.get(path)
                if mod is not None:
                    out.update(f"{path}.{k}" if path else k for k in mod.state_dict())
        return frozenset(out)

    def aliases(self) -> dict[str, str]:
        groups: dict[str, list[str]] = {}
        for n in self._order:
            groups.setdefault(self.graph.layer_node[n], []).append(n)
        out: dict[str, str] = {}
        for names in groups.values():
            if len(names) < 2:
                continue

            # Prefer a module's own path to an adapter alias, and a folded conv's path
            # to its BatchNorm's.
            def rank(n: str) -> tuple[int, int, int, int]:
                mod = self._modules.get(n)
                return (
                    n not in self._preferred,
                    n in self._alias_target,
                    not isinstance(mod, nn.Conv2d),
                    self._order.index(n),
                )

            canonical = min(names, key=rank)
            out.update({n: canonical for n in names if n != canonical})
        return out

    def layer(self, name: str) -> LayerInfo:
        try:
            return self._layers[name]
        except KeyError:
            raise DiagnosticError([unknown_layer(name, self._order, self.name)]) from None

    def node(self, name: str) -> str:
        """The fx node whose output is layer `name`."""
        self.layer(name)
        return self.graph.layer_node[name]

    def is_upstream(self, src: str, dst: str) -> bool:
        a, b = self.node(src), self.node(dst)
        return a != b and a in self.graph.ancestors(b)

    def block(self, src: str, dst: str, *, method: str = "auto") -> Block:
        """The `circuitdsl.models.weights.Block` from `src` to `dst` (with stride and offset)."""
        from circuitdsl.models.weights import NotLinearisable, expanded_weights

        if not self.is_upstream(src, dst):
            raise DiagnosticError(
                [
                    Diagnostic(
                        E_NOT_UPSTREAM,
                        f"layer `{src}` does not feed layer `{dst}` in model `{self.name}`",
                        help="a weight claim needs its source layer before its target;"
                        " swap them or pick layers on one path (`circ layers` lists them"
                        " in network order)",
                    )
                ]
            )
        try:
            self._check_block_size(src, dst)
            return expanded_weights(self.graph, self.node(src), self.node(dst), method=method)
        except NotLinearisable as exc:
            raise DiagnosticError(
                [
                    Diagnostic(
                        E_NOT_SUPPORTED,
                        f"no weights between `{src}` and `{dst}` in `{self.name}`: {exc}",
                        help="choose layers whose path consists of convolutions, pools,"
                        " normalisations, nonlinearities, concatenations and additions",
                    )
                ]
            ) from None

    #: Refuse blocks larger than this (float32 bytes) instead of exhausting memory.
    max_block_bytes: int = 2 << 30

    def _check_block_size(self, src: str, dst: str) -> None:
        from circuitdsl.models.weights import receptive_fields

        a, b = self.node(src), self.node(dst)
        (_, lo_h, hi_h), (_, lo_w, hi_w) = receptive_fields(self.graph, a, b)[b]
        size = 4 * self.graph.channels(a) * self.graph.channels(b)
        size *= (hi_h - lo_h + 1) * (hi_w - lo_w + 1)
        if size > self.max_block_bytes:
            raise DiagnosticError(
                [
                    Diagnostic(
                        E_NOT_SUPPORTED,
                        f"the weights from `{src}` to `{dst}` would take {size / 2**30:.1f} GiB"
                        f" ({hi_h - lo_h + 1}x{hi_w - lo_w + 1} kernels for every channel"
                        " pair)",
                        help="state the claim between closer layers, or raise"
                        " `adapter.max_block_bytes`",
                    )
                ]
            )

    def weight_block(self, src: str, dst: str) -> Block:
        key = (self.node(src), self.node(dst))  # aliases share one cache entry
        if key not in self._cache:
            self.require_parameters(dst, after=src)  # never weights made of zeros
            self._cache[key] = self.block(src, dst)
        return self._cache[key]

    def weights(self, src: str, dst: str) -> torch.Tensor:
        return self.weight_block(src, dst).weight

    def branch_of(self, layer: str, channel: int) -> tuple[str, int] | None:
        node = self.node(layer)
        op = self.graph.nodes[node].op
        if op.kind != "cat":
            return None
        by_node: dict[str, str] = {}
        for n in reversed(self._order):  # prefer the earliest (canonical) name
            if n not in self._alias_target:
                by_node[self.graph.layer_node[n]] = n
        start = 0
        for i in op.inputs:
            c = self.graph.channels(i)
            if start <= channel < start + c:
                name = by_node.get(i)
                return (name, channel - start) if name is not None else None
            start += c
        return None

    def activations(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        self.require_parameters(*layers)
        wanted = {n: self.node(n) for n in layers}
        nodes = set(wanted.values())
        out_by_node: dict[str, torch.Tensor] = {}
        import torch.fx as fx

        interp = fx.Interpreter(self.graph.gm)
        run_node = interp.run_node

        class _Done(Exception):
            pass

        def record(n: fx.Node) -> object:
            val = run_node(n)
            if n.name in nodes and isinstance(val, torch.Tensor):
                # Later in-place ops (ReLU(inplace=True)) must not change what we return.
                out_by_node[n.name] = val.detach().clone()
                if len(out_by_node) == len(nodes):
                    raise _Done  # the rest of the network is not needed
            return val

        interp.run_node = record  # type: ignore[method-assign]
        with torch.no_grad(), contextlib.suppress(_Done):
            interp.run(x)
        return {n: out_by_node[node] for n, node in wanted.items()}


def adapter_from_module(
    name: str,
    module: nn.Module,
    *,
    weights_path: str | Path | None = None,
    input_shape: tuple[int, ...] = (3, 224, 224),
    aliases: Mapping[str, str] | None = None,
    preprocess: Preprocess | Callable[[torch.Tensor], torch.Tensor] | str | None = None,
) -> ModelAdapter:
    """An adapter for a module whose weights are already loaded.

    For registry factories (`circuitdsl.models.registry.register_model`):

    >>> register_model(  # doctest: +SKIP
    ...     "curvenet",
    ...     lambda w: adapter_from_module("curvenet", build_and_load(w), input_shape=(1, 64, 64)),
    ... )

    `input_shape` (C, H, W) is the example input used once to trace shapes; layers are
    dotted module paths, plus `aliases` (alias -> layer); `preprocess` maps images in
    [0, 1] to the model's input: a preset name (``"imagenet"``), a `Preprocess` or a
    callable (default: none needed).
    """
    return TracedAdapter(
        name,
        module,
        weights_path=str(weights_path) if weights_path is not None else None,
        example_input=torch.zeros(1, *input_shape),
        aliases=aliases,
        preprocess=preprocess,
    )
