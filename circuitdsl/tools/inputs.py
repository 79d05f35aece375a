"""`circ inputs`: a unit's strongest excitatory and inhibitory inputs, read off the weights.

Input: a model adapter, a target unit `LAYER:CH` and (optionally) a source layer.
Output: an `InputsReport` -- every channel of the source layer ranked by the
strength of its (expanded) kernel into the unit, the top K of each sign with their
dominant region and kernel, as text with ASCII heat-maps or as JSON.

Conventions (docs/suggest.md explains them for users):

* **Strength** is the L2 norm of the expanded kernel `W[unit, i]` (the Early Vision
  article's measure); **sign** is the sign of the kernel's sum. `rank` is the
  checker's `among top K inputs` rank (1 + the number of channels with a larger norm),
  so a draft's rank claims hold by construction.
* Kernels are cropped to the unit's **effective size** exactly as the checker crops
  them (`check.common.PairData`): a 3x3-branch unit of a mixed layer is read as 3x3.
* **Region**: PyTorch convolution is cross-correlation, so kernel row 0 weighs the
  input row *above* the output position ("top"). The dominant region of a kernel is
  the one of top/bottom/left/right/center with the largest `strongest at R` margin of
  the checker (mean signed weight in R minus the best disjoint named region, in units
  of the kernel's RMS); with no positive margin the kernel is `diffuse`.
* The **default source layer** is the nearest layer that every path from the input
  to the unit passes through (a dominator in the traced graph) and that is the
  output of a convolution, a concatenation or a residual addition, read after any
  activation that follows it and that has its own name (`conv2d2`, not
  `conv2d2_pre_relu`); layers in the unit's own conv -> activation chain are skipped.
  For `mixed4c:447` that is `mixed4b`; for `mixed4c_5x5:63`, `mixed4c_5x5_bottleneck`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from circuitdsl.check.common import PairData, Unmeasurable, crop, region_mask
from circuitdsl.language.claims import NAMED_REGIONS
from circuitdsl.language.diagnostics import (
    E_CHANNEL_RANGE,
    E_NOT_SUPPORTED,
    E_NOT_UPSTREAM,
    E_USAGE,
    Diagnostic,
    DiagnosticError,
)
from circuitdsl.language.ir import Feature
from circuitdsl.language.kinds import Region
from circuitdsl.models.base import ModelAdapter

# Graph-node kinds whose output counts as a unit's "output" for the default source.
SOURCE_KINDS = frozenset({"conv", "bn", "concat", "add"})
# Elementwise node kinds that a conv's output passes through and keeps its meaning.
ACTIVATION_KINDS = frozenset({"relu", "identity"})
REGIONS = ("top", "bottom", "left", "right", "center")

# Heat-map ramps, weakest to strongest (level 1..9); a cell is two characters wide so
# that kernels look square in a terminal. Positive and negative use disjoint sets so
# the sign is readable without colour.
_NUM = r"(?:-?[0-9][0-9.eE+-]*|null)"
_NUMBER_LIST = re.compile(rf"\[\s*({_NUM}(?:,\s*{_NUM})*)\s*\]")
POS_RAMP = ".:-=+*#%@"
NEG_RAMP = ",;~oxOX8&"


# ---- the unit and the source layer ---------------------------------------------------


def parse_unit(text: str) -> tuple[str, int]:
    """`LAYER:CH` -> (layer, channel); E300 when it is not of that form."""
    layer, sep, ch = text.rpartition(":")
    if not sep or not layer or not ch.isdigit():
        raise DiagnosticError(
            [
                Diagnostic(
                    E_USAGE,
                    f"`{text}` is not a unit: expected LAYER:CHANNEL",
                    help="for example `mixed4c:447` or `layer3.1.conv2:17`",
                )
            ]
        )
    return layer, int(ch)


def check_unit(adapter: Any, layer: str, channel: int) -> int:
    """The layer's channel count; E201 for an unknown layer, E202 for a bad channel."""
    size = int(adapter.layer(layer).channels)
    if not 0 <= channel < size:
        raise DiagnosticError(
            [
                Diagnostic(
                    E_CHANNEL_RANGE,
                    f"channel {channel} is out of range: layer `{layer}` has {size} channels"
                    f" (0-{size - 1})",
                    help=f"`circ layers {adapter.name}` lists every layer with its size",
                )
            ]
        )
    return size


def _chain_head(graph: Any, node: str) -> str:
    """The conv/concat/add node whose output `node` is, through activations only."""
    seen = node
    while graph.nodes[seen].kind in ACTIVATION_KINDS and len(graph.nodes[seen].op.inputs) == 1:
        seen = graph.nodes[seen].op.inputs[0]
    return seen


def _dominators(graph: Any, node: str) -> set[str]:
    """Nodes through which every path from the inputs to `node` passes (node excluded)."""
    order = [n for n in graph.order if n in graph.ancestors(node) or n == node]
    dom: dict[str, set[str]] = {}
    for n in order:  # fx order is topological, so predecessors are done first
        preds = [p for p in graph.nodes[n].op.inputs if p in dom]
        common = set.intersection(*(dom[p] for p in preds)) if preds else set()
        dom[n] = common | {n}
    return dom[node] - {node}


def default_source(adapter: ModelAdapter, layer: str) -> str:
    """The source layer `circ inputs` uses when none is given (see the module docstring).

    Raises E216 when no such layer exists (the unit is in the first conv layer).
    """
    adapter.layer(layer)
    graph = adapter.graph
    layers = adapter.layers()
    node = graph.layer_node[layer]
    own_head = _chain_head(graph, node)
    dominators = _dominators(graph, node)
    best: str | None = None
    for info in layers:
        n = graph.layer_node[info.name]
        if n not in dominators:
            continue
        head = _chain_head(graph, n)
        if head == own_head or graph.nodes[head].kind not in SOURCE_KINDS:
            continue
        if best is None or graph.index[n] > graph.index[best]:
            best = n
    if best is None:
        raise _no_source(adapter, layer)
    names = [info.name for info in layers if graph.layer_node[info.name] == best]
    return _preferred_name(adapter, names)


def _preferred_name(adapter: ModelAdapter, names: list[str]) -> str:
    """Of several names for one activation, the conv's own (`layer3.1.conv1`, not `.bn1`).

    A BatchNorm-folded conv is addressable under both module paths; specs name the
    conv. Otherwise the first name in network order (aliases come after).
    """
    aliases = adapter.aliases()
    names = [n for n in names if n not in aliases] or names  # `mixed4b`, not its alias `4b`
    root = adapter.module
    for name in names:
        try:
            if isinstance(root.get_submodule(name), torch.nn.Conv2d):
                return name
        except AttributeError:  # not a module path (an fx node name such as `add_1`)
            continue
    return names[0]


def _no_source(adapter: ModelAdapter, layer: str) -> DiagnosticError:
    return DiagnosticError(
        [
            Diagnostic(
                E_NOT_SUPPORTED,
                f"layer `{layer}` of `{adapter.name}` has no earlier conv or concat layer to"
                " read inputs from",
                help="pass `--from LAYER` with a layer upstream of it"
                f" (`circ layers {adapter.name}`)",
            )
        ]
    )


def check_source(adapter: Any, source: str, layer: str) -> None:
    """E201 for an unknown source layer, E203 when it does not feed `layer`."""
    adapter.layer(source)
    if source == layer or not adapter.is_upstream(source, layer):
        raise DiagnosticError(
            [
                Diagnostic(
                    E_NOT_UPSTREAM,
                    f"layer `{source}` does not feed layer `{layer}` in model `{adapter.name}`",
                    help="--from needs a layer before the unit's layer on a path to it"
                    " (`circ layers` lists layers in network order)",
                )
            ]
        )


# ---- per-input statistics ------------------------------------------------------------


@dataclass
class Input:
    """One source channel's connection into the unit."""

    channel: int
    ref: str
    rank: int  # by kernel norm among every channel of the source layer (1 = strongest)
    norm: float
    rel_norm: float  # norm / RMS of the norms of all inputs
    total: float  # sum of the kernel's weights
    z: float  # total / RMS of the totals of all inputs (the checker's sign statistic)
    region: str | None  # dominant region in the direction of the sign, or "diffuse"
    region_margin: float | None
    opposite: str | None  # dominant region of the opposite sign, when it has real mass
    opposite_margin: float | None
    kernel: torch.Tensor = field(repr=False)

    @property
    def sign(self) -> str:
        return "+" if self.total >= 0 else "-"

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ref": self.ref,
            "rank": self.rank,
            "sign": "excitatory" if self.sign == "+" else "inhibitory",
            "norm": _num(self.norm),
            "rel_norm": _num(self.rel_norm),
            "sum": _num(self.total),
            "z": _num(self.z),
            "region": self.region,
            "region_margin": _num(self.region_margin),
            "opposite_region": self.opposite,
            "opposite_margin": _num(self.opposite_margin),
            "kernel": [[round(float(v), 6) for v in row] for row in self.kernel.tolist()],
        }


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):  # JSON has no NaN or Infinity
        return None
    return round(float(x), 6)


def region_margins(kernel: torch.Tensor) -> dict[str, float]:
    """For each of REGIONS, the checker's `strongest at R` margin of `kernel` (2-D).

    `margin = (mean_R w - max_Q mean_Q w) / RMS(w)`, Q the named regions disjoint from
    R -- the statistic of `check.region` for `strongest` claims. Empty for 1x1 kernels.
    """
    kh, kw = kernel.shape
    if kh * kw <= 1:
        return {}
    w = kernel.to(torch.float64)
    rms = float(w.pow(2).mean().sqrt())
    masks: dict[str, torch.Tensor] = {}
    for name in NAMED_REGIONS:
        try:
            masks[name] = region_mask(Region(name=name), kh, kw)
        except Unmeasurable:
            continue
    means = {n: float(w[m].mean()) for n, m in masks.items()}
    out = {}
    for r in REGIONS:
        if r not in masks:
            continue
        rivals = [means[q] for q, m in masks.items() if not bool((m & masks[r]).any())]
        if not rivals or rms <= 0:
            continue
        out[r] = (means[r] - max(rivals)) / rms
    return out


def dominant_region(kernel: torch.Tensor) -> tuple[str | None, float | None]:
    """(region, margin): the region of REGIONS with the largest margin, `diffuse` if <= 0."""
    margins = region_margins(kernel)
    if not margins:
        return None, None
    best = max(REGIONS, key=lambda r: margins.get(r, -math.inf))
    m = margins[best]
    return (best if m > 0 else "diffuse"), m


@dataclass
class InputsReport:
    """The ranked inputs of one unit from one source layer."""

    model: str
    weights: str | None
    layer: str
    channel: int
    source: str
    source_default: bool
    n_inputs: int
    kernel_size: tuple[int, int]
    top: int
    excitatory: list[Input]
    inhibitory: list[Input]
    n_excitatory: int
    n_inhibitory: int

    @property
    def unit(self) -> str:
        return f"{self.layer}:{self.channel}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (kernels as nested lists, row 0 = top)."""
        return {
            "model": self.model,
            "weights": self.weights,
            "unit": self.unit,
            "layer": self.layer,
            "channel": self.channel,
            "source": self.source,
            "source_chosen": "default" if self.source_default else "given",
            "inputs": self.n_inputs,
            "kernel_size": list(self.kernel_size),
            "strength": "L2 norm of the expanded kernel; sign of the kernel sum",
            "top": self.top,
            "excitatory": [i.to_dict() for i in self.excitatory],
            "inhibitory": [i.to_dict() for i in self.inhibitory],
            "n_excitatory": self.n_excitatory,
            "n_inhibitory": self.n_inhibitory,
        }

    def to_json(self) -> str:
        """Indented JSON with each list of numbers (a kernel row) on one line."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"

    def to_text(self) -> str:
        """Tables of the top inputs of each sign, each followed by its kernels."""
        kh, kw = self.kernel_size
        how = "default" if self.source_default else "--from"
        lines = [
            f"inputs of {self.unit} from {self.source} ({how}) in {self.model}"
            + (f" (weights {self.weights})" if self.weights else ""),
            f"{self.n_inputs} input channels, {kh}x{kw} kernels; strength = L2 norm of the"
            " expanded kernel, sign = sign of its sum",
            "kernel row 0 = the input row above the unit (PyTorch cross-correlation)",
        ]
        for title, items, count in (
            ("excitatory", self.excitatory, self.n_excitatory),
            ("inhibitory", self.inhibitory, self.n_inhibitory),
        ):
            lines.append("")
            lines.append(f"top {len(items)} {title} inputs (of {count})")
            if not items:
                lines.append("  (none)")
                continue
            lines.extend(_table(items))
            lines.append("")
            lines.extend(render_kernels(items))
        lines.append("")
        lines.append(
            f"kernels: positive ' {POS_RAMP}', negative ' {NEG_RAMP}' (weakest to strongest,"
            " each kernel scaled to its own largest |w|; blank = near 0)"
        )
        return "\n".join(lines) + "\n"


def _table(items: Sequence[Input]) -> list[str]:
    width = max(len("input"), *(len(i.ref) for i in items))
    head = (
        f"  {'input':<{width}}  {'rank':>4}  {'norm':>9}  {'norm/rms':>8}  {'sum':>10}"
        f"  {'z':>8}  {'region':<8}  opposite"
    )
    rows = [head]
    for i in items:
        region = i.region or "-"
        opposite = f"{'-' if i.sign == '+' else '+'}{i.opposite}" if i.opposite else "-"
        rows.append(
            f"  {i.ref:<{width}}  {i.rank:>4}  {i.norm:>9.4g}  {i.rel_norm:>8.3g}"
            f"  {i.total:>+10.4g}  {i.z:>+8.3g}  {region:<8}  {opposite}"
        )
    return rows


def heatmap(kernel: torch.Tensor) -> list[str]:
    """An ASCII rendering of a 2-D kernel, row 0 first; two characters per weight."""
    k = kernel.detach().to(torch.float64)
    peak = float(k.abs().max()) if k.numel() else 0.0
    rows = []
    for row in k.tolist():
        cells = []
        for v in row:
            # round half up: 0.5 of the peak is level 5 of 9
            level = 0 if peak <= 0 else min(9, int(9 * abs(v) / peak + 0.5))
            ch = " " if level == 0 else (POS_RAMP if v > 0 else NEG_RAMP)[level - 1]
            cells.append(ch * 2)
        rows.append("".join(cells))
    return rows


def render_kernels(items: Sequence[Input], per_row: int = 4) -> list[str]:
    """Heat-maps of the inputs' kernels side by side, each framed and labelled."""
    out: list[str] = []
    for start in range(0, len(items), per_row):
        group = items[start : start + per_row]
        blocks = []
        for i in group:
            body = heatmap(i.kernel)
            inner = len(body[0]) if body else 0
            label = f"{i.ref} {i.sign}"
            width = max(inner + 2, len(label))
            frame = ["+" + "-" * inner + "+", *(f"|{b}|" for b in body), "+" + "-" * inner + "+"]
            blocks.append([label.ljust(width)] + [f.ljust(width) for f in frame])
        height = max(len(b) for b in blocks)
        for r in range(height):
            parts = [b[r] if r < len(b) else " " * len(b[0]) for b in blocks]
            out.append(("  " + "   ".join(parts)).rstrip())
    return out


def analyse(
    adapter: ModelAdapter,
    layer: str,
    channel: int,
    *,
    source: str | None = None,
    top: int = 5,
) -> InputsReport:
    """Rank every channel of the source layer by the strength of its kernel into the unit."""
    if top < 1:
        raise DiagnosticError([Diagnostic(E_USAGE, f"--top must be at least 1 (got {top})")])
    check_unit(adapter, layer, channel)
    chosen = source is None
    src = default_source(adapter, layer) if source is None else source
    check_source(adapter, src, layer)
    block = adapter.weights(src, layer)
    # PairData crops and reduces exactly as the checker will when the draft is checked.
    pair = PairData(block, [Feature("unit", layer, (channel,), (1.0,))])
    eh, ew = pair.eff_size[0]
    kernels = crop(pair.inputs[0], eh, ew)  # [C_src, eh, ew]
    norms = pair.norms()[0].to(torch.float64)
    totals = pair.totals()[0].to(torch.float64)
    rms_norm = float(norms.pow(2).mean().sqrt())
    rms_total = float(totals.pow(2).mean().sqrt())
    # the checker's rank: 1 + channels with a strictly larger norm (ties share a rank)
    ranks = (norms[None, :] > norms[:, None] + 1e-12 * norms.abs()[:, None]).sum(dim=1) + 1
    order = sorted(range(len(norms)), key=lambda i: (-float(norms[i]), i))

    def make(i: int) -> Input:
        k = kernels[i]
        sgn = 1.0 if float(totals[i]) >= 0 else -1.0
        region, margin = dominant_region(sgn * k)
        opposite, opp_margin = dominant_region(-sgn * k)
        # name an opposite-sign region only where that sign holds a real part of the weight
        neg_mass = float((-sgn * k).clamp_min(0).sum())
        if opposite in (None, "diffuse") or neg_mass < 0.25 * float(k.abs().sum()):
            opposite, opp_margin = None, None
        return Input(
            channel=i,
            ref=f"{src}:{i}",
            rank=int(ranks[i]),
            norm=float(norms[i]),
            rel_norm=float(norms[i]) / rms_norm if rms_norm > 0 else math.nan,
            total=float(totals[i]),
            z=float(totals[i]) / rms_total if rms_total > 0 else math.nan,
            region=region,
            region_margin=margin,
            opposite=opposite,
            opposite_margin=opp_margin,
            kernel=k.clone(),
        )

    nonzero = [i for i in order if float(norms[i]) > 0]
    exc = [i for i in nonzero if float(totals[i]) >= 0]
    inh = [i for i in nonzero if float(totals[i]) < 0]
    return InputsReport(
        model=str(adapter.name),
        weights=adapter.weights_path,
        layer=layer,
        channel=channel,
        source=src,
        source_default=chosen,
        n_inputs=int(block.shape[1]),
        kernel_size=(eh, ew),
        top=top,
        excitatory=[make(i) for i in exc[:top]],
        inhibitory=[make(i) for i in inh[:top]],
        n_excitatory=len(exc),
        n_inhibitory=len(inh),
    )
