"""Binding: a compiled `Circuit` meets a model. Circuit + ModelAdapter -> BoundCircuit.

Every feature resolves to (layer, channel indices, coefficients) in the model; every
weight claim's source layer must feed its target. All problems are collected and
raised together as one `DiagnosticError`:

* E201 a layer the model does not have (with the closest names from the model's own
  layer list), at the feature's (or family's) span;
* E202 a channel outside the layer (the message states the layer's size);
* E203 a claim whose source layer is not upstream of its target.

`BoundCircuit` then serves weights to the checker: whole blocks between layers,
kernels between two features (directions combine kernels linearly), and every
source channel into a target direction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

from circuitdsl.language.diagnostics import (
    E_CHANNEL_RANGE,
    E_NOT_UPSTREAM,
    E_UNKNOWN_NAME,
    E_WEIGHTS_INCOMPLETE,
    Diagnostic,
    DiagnosticError,
    Span,
)
from circuitdsl.language.ir import Circuit, Feature
from circuitdsl.language.kinds import BandingClaim, WithinClaim
from circuitdsl.language.syntax.parser import gc_paused
from circuitdsl.models.base import ModelAdapter, unknown_layer
from circuitdsl.models.weights import Block, reduce_block


@dataclass(frozen=True)
class BoundFeature:
    """A feature located in a model: ``sum_k coefficients[k] * layer[channels[k]]``."""

    name: str
    layer: str
    channels: tuple[int, ...]
    coefficients: tuple[float, ...]
    feature: Feature


class Bound(ABC):
    """What the checker reads: weight blocks between layers, and the model if there is one.

    `BoundCircuit` (a circuit located in a model) and `circuitdsl.check.TensorBound`
    (blocks in memory) implement it; the checker never probes for other attributes.
    """

    #: The model behind the blocks (None for blocks held in memory).
    adapter: ModelAdapter | None = None
    #: Features located in the model, by name (activation claims read them).
    features: Mapping[str, BoundFeature] = MappingProxyType({})
    #: Members chosen by behaviour (`top K of L by S`), by name (`measure.select`).
    selections: Mapping[str, object] = MappingProxyType({})

    @abstractmethod
    def block(self, src_layer: str, dst_layer: str) -> torch.Tensor:
        """Weights ``[C_dst, C_src, kh, kw]`` from one layer to another."""

    @property
    def name(self) -> str:
        """The model's name, for reports."""
        return self.adapter.name if self.adapter is not None else type(self).__name__

    @property
    def weights_path(self) -> str | None:
        """The weight file the blocks come from, if any."""
        return self.adapter.weights_path if self.adapter is not None else None

    def branch_of(self, layer: str, channel: int) -> tuple[str, int] | None:
        """(branch layer, index) of a channel of a concatenation; None when unbranched."""
        return self.adapter.branch_of(layer, channel) if self.adapter is not None else None

    def input_kernels(self, layer: str) -> torch.Tensor | None:
        """The layer's own conv kernels when stored directly; None: ask the adapter."""
        return None


class BoundCircuit(Bound):
    """A circuit whose features are located in a model; serves weights between them."""

    def __init__(self, circuit: Circuit, adapter: ModelAdapter, features: dict[str, BoundFeature]):
        self.circuit = circuit
        self.adapter: ModelAdapter = adapter
        self.features = features
        # name -> family: `Circuit.family` searches the list, once per call
        self._families = {f.name: f for f in circuit.families}
        # feature/family name -> the `circuitdsl.measure.select.Selection` that chose it
        self.selections: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"<BoundCircuit {self.circuit.name} on {self.adapter.name}>"

    # ---- names -----------------------------------------------------------------
    def members(self, node: str) -> list[BoundFeature]:
        """The features a graph node stands for: itself, or every member of a family."""
        if node in self.features:
            return [self.features[node]]
        fam = self._families.get(node) or self.circuit.family(node)
        return [self.features[m] for m in fam.members]

    def pairs(self, src_node: str, dst_node: str) -> list[tuple[str, str]]:
        """Every (source feature, target feature) an edge between two nodes stands for."""
        return [(a.name, b.name) for a in self.members(src_node) for b in self.members(dst_node)]

    def layer_of(self, node: str) -> str:
        """The layer of a feature or family."""
        if node in self.features:
            return self.features[node].layer
        fam = self._families.get(node) or self.circuit.family(node)
        return fam.layer

    # ---- weights ---------------------------------------------------------------
    def block(self, src_layer: str, dst_layer: str) -> torch.Tensor:
        """Weights ``[C_dst, C_src, kh, kw]`` from one layer to another (cached)."""
        return self.adapter.weights(src_layer, dst_layer)

    def geometry(self, src_layer: str, dst_layer: str) -> Block:
        """The block with its stride and offset (where kernel row 0 sits)."""
        return self.adapter.weight_block(src_layer, dst_layer)

    def all_inputs(self, src_layer: str, dst_feature: str, *, crop: bool = True) -> torch.Tensor:
        """Every source channel into a target direction: ``[C_src, kh, kw]``.

        With `crop`, border rows and columns that are exactly zero for every source
        channel are removed: a 3x3-branch unit of a concatenation whose block is 5x5
        gets its own 3x3 kernels (structural zeros are exact, learned weights never
        are).
        """
        dst = self.features[dst_feature]
        out = reduce_block(self.block(src_layer, dst.layer), dst.channels, dst.coefficients)
        return _crop(out) if crop else out

    def kernel(self, src_feature: str, dst_feature: str, *, crop: bool = True) -> torch.Tensor:
        """The kernel ``[kh, kw]`` from one feature (direction) to another.

        ``K = sum_o sum_i d_o c_i W[o, i]`` for target coefficients d and source
        coefficients c; cropped like `all_inputs` (by the target's inputs).
        """
        src = self.features[src_feature]
        inputs = self.all_inputs(src.layer, dst_feature, crop=False)
        c = torch.as_tensor(src.coefficients, dtype=inputs.dtype)
        k = torch.einsum("i,ihw->hw", c, inputs[list(src.channels)])
        if not crop:
            return k
        rows, cols = _crop_window(inputs)
        return k[rows[0] : rows[1], cols[0] : cols[1]]

    def activations(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Activations of the named layers on input `x` (see `ModelAdapter.activations`)."""
        return self.adapter.activations(x, list(dict.fromkeys(layers)))


def _crop_window(t: torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    nz = (t != 0).flatten(0, -3).any(0) if t.dim() > 2 else t != 0
    if not bool(nz.any()):
        return (0, t.shape[-2]), (0, t.shape[-1])
    rows = torch.nonzero(nz.any(1)).flatten()
    cols = torch.nonzero(nz.any(0)).flatten()
    return (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)


def _crop(t: torch.Tensor) -> torch.Tensor:
    (r0, r1), (c0, c1) = _crop_window(t)
    return t[..., r0:r1, c0:c1]


def bind(circuit: Circuit, adapter: ModelAdapter) -> BoundCircuit:
    """Locate every feature of `circuit` in `adapter`'s model; check every weight edge.

    Raises one `DiagnosticError` with every E201/E202/E203 found. Linear in the size of
    the circuit: names are looked up in indexes built once (node -> layer, family by
    name), each (source layer, target layer) pair asks the model once, and the cyclic
    garbage collector is held off (binding makes no cycles; with it on, every collection
    rescanned the whole circuit: 10,000 claims took 10x 1,000's time).
    """
    with gc_paused():
        return _bind(circuit, adapter)


def _bind(circuit: Circuit, adapter: ModelAdapter) -> BoundCircuit:
    layer_names = [layer.name for layer in adapter.layers()]
    known = set(layer_names)
    diags: list[Diagnostic] = []
    reported: set[tuple[str, Span | None]] = set()

    def check_layer(layer: str, span: Span | None) -> bool:
        if layer in known:
            return True
        if (layer, span) not in reported:
            reported.add((layer, span))
            diags.append(unknown_layer(layer, layer_names, adapter.name, span))
        return False

    families = {f.name: f for f in circuit.families}
    features: dict[str, BoundFeature] = {}
    for fam in circuit.families:
        check_layer(fam.layer, fam.span)
    for feat in circuit.features:
        span = feat.span
        if feat.family is not None and feat.family in families:
            fam_layer = families[feat.family].layer
            if fam_layer == feat.layer and fam_layer not in known:
                continue  # reported once, at the family
        if not check_layer(feat.layer, span):
            continue
        size = adapter.layer(feat.layer).channels
        bad = [c for c in feat.channels if not 0 <= c < size]
        for c in bad:
            diags.append(
                Diagnostic(
                    E_CHANNEL_RANGE,
                    f"channel {c} is out of range: layer `{feat.layer}` has {size} channels"
                    f" (0-{size - 1})",
                    span=span,
                    help="Lucid-style indices count from 0 within the layer; for a"
                    " concatenated layer they run over all its branches",
                )
            )
        if not bad:
            features[feat.name] = BoundFeature(
                feat.name, feat.layer, tuple(feat.channels), tuple(feat.coefficients), feat
            )

    nodes = circuit.node_names()
    checked: set[tuple[str, str, Span | None]] = set()
    upstream: dict[tuple[str, str], bool] = {}
    for claim in circuit.claims:
        p = claim.payload
        if isinstance(p, (WithinClaim, BandingClaim)):
            check_layer(p.branch if isinstance(p, WithinClaim) else p.layer, claim.span)
        for s, t in claim.edges:
            missing = [n for n in (s, t) if n not in nodes]
            for n in missing:
                diags.append(
                    Diagnostic(E_UNKNOWN_NAME, f"claim refers to unknown node `{n}`", claim.span)
                )
            if missing:
                continue
            ls, lt = _layer(circuit, s), _layer(circuit, t)
            if ls not in known or lt not in known or (ls, lt, claim.span) in checked:
                continue
            checked.add((ls, lt, claim.span))
            if (ls, lt) not in upstream:
                upstream[(ls, lt)] = adapter.is_upstream(ls, lt)
            if not upstream[(ls, lt)]:
                canon = adapter.aliases()
                why = (
                    "they are the same layer"
                    if canon.get(ls, ls) == canon.get(lt, lt)
                    else f"`{lt}` comes before `{ls}` or on another path"
                )
                diags.append(
                    Diagnostic(
                        E_NOT_UPSTREAM,
                        f"`{s}` ({ls}) is not upstream of `{t}` ({lt}): {why}",
                        span=claim.span,
                        help="a weight claim reads `source -> target` with the source in an"
                        " earlier layer that feeds the target; swap the two or pick other"
                        " layers",
                    )
                )
    if not diags and adapter.missing_parameters:
        diags.extend(_missing_parameter_diags(circuit, adapter))
    if diags:
        raise DiagnosticError(diags)
    return BoundCircuit(circuit, adapter, features)


def _missing_parameter_diags(circuit: Circuit, adapter: ModelAdapter) -> list[Diagnostic]:
    """E217 for every claim that reads a parameter the weight file did not have.

    A weight claim reads the parameters between its source and target layer; an
    activation claim (and a `banded` claim's layer) everything up to its layer.
    """
    missing = adapter.missing_parameters
    out: list[Diagnostic] = []
    full: dict[str, frozenset[str]] = {}

    def up_to(layer: str) -> frozenset[str]:
        if layer not in full:
            full[layer] = adapter.parameters_for(layer)
        return full[layer]

    nodes = circuit.node_names()
    for claim in circuit.claims:
        needed: set[str] = set()
        for s, t in claim.edges:
            if s in nodes and t in nodes:
                ls, lt = _layer(circuit, s), _layer(circuit, t)
                needed |= up_to(lt) - up_to(ls)
        layers = [n for n in claim.subjects if n in nodes]
        subject = claim.payload.subject_name()
        if subject is not None and subject in nodes:
            layers.append(subject)
        for n in layers:
            needed |= up_to(_layer(circuit, n))
        if isinstance(claim.payload, BandingClaim):
            needed |= up_to(claim.payload.layer)
        lacking = sorted(needed & missing)
        if lacking:
            shown = ", ".join(f"`{p}`" for p in lacking[:6])
            more = f" and {len(lacking) - 6} more" if len(lacking) > 6 else ""
            out.append(
                Diagnostic(
                    E_WEIGHTS_INCOMPLETE,
                    f"claim `{claim.id}` needs parameters that `{adapter.weights_path}` does"
                    f" not have: {shown}{more}",
                    span=claim.span,
                    help="the file covers only the first layers of the network; pass a weight"
                    " file with these parameters, or state the claim on layers it covers",
                )
            )
    return out


def _layer(circuit: Circuit, node: str) -> str:
    """The layer of a feature or family, from an index built once per circuit (a search
    of the feature list per claim made binding quadratic in the claims)."""
    if _INDEX[0] is not circuit:
        index = {f.name: f.layer for f in circuit.families}
        index.update({f.name: f.layer for f in circuit.features})
        _INDEX[:] = [circuit, index]
    table: dict[str, str] = _INDEX[1]  # type: ignore[assignment]
    return table[node] if node in table else circuit.family(node).layer


#: (circuit, name -> layer) of the last circuit asked about (see `_layer`)
_INDEX: list[object] = [None, {}]
