"""Control versions of a model's weights: `circ check --control null|negated|shuffled`.

A spec re-run on a control measures its false-pass rate: nothing it claims is in the
control's weights (or, for `negated`, the opposite is), so every PASS there is a false
pass. Controls transform the weights the checker reads -- the block between two
layers, after expansion through bottlenecks and branches, and a layer's own kernels for
banding -- so they apply to every model and every bound object alike:

* `null`: within each target unit, its input weights (every source channel, every
  kernel position that carries weight) are permuted at random. Each unit keeps its
  weight distribution and its kernel size (a 1x1-branch unit stays 1x1); every
  relation between a particular source, a position and a sign is gone.
* `negated`: every weight block is sign-flipped (excitation becomes inhibition).
  Expanded weights are flipped as a whole, so a path through a bottleneck flips once.
* `shuffled`: within each target unit, its input kernels are dealt to the source
  channels by a random permutation. Kernels keep their shapes (smoothness, banding,
  arcs), but which source sends which kernel is random.

Permutations are seeded from the layer pair and `seed`, so a control is reproducible.
Activation and prediction claims run the model itself and are reported as errors under
a control (`within` claims read no weights and are measured as usual).
"""

from __future__ import annotations

import zlib
from types import SimpleNamespace
from typing import Any

import torch

from circuitdsl.check.context import fetch_block
from circuitdsl.models.bind import Bound

CONTROLS = ("null", "negated", "shuffled")


def _generator(*key: object) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def transform(w: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """The control version of a [C_dst, C_src, kh, kw] block."""
    if kind == "negated":
        return -w
    w = w.detach().clone()
    c_dst, c_src = w.shape[:2]
    if kind == "shuffled":
        order = torch.argsort(torch.rand(c_dst, c_src, generator=g), dim=1)
        return torch.gather(w, 1, order[:, :, None, None].expand_as(w))
    if kind != "null":
        raise ValueError(f"unknown control `{kind}` (known: {', '.join(CONTROLS)})")
    for t in range(c_dst):
        # permute among the positions that carry weight for this unit: structural zeros
        # (a 1x1 branch padded to 5x5) stay where they are
        support = w[t].ne(0).any(dim=0)
        vals = w[t][:, support]
        flat = vals.flatten()
        w[t][:, support] = flat[torch.randperm(flat.numel(), generator=g)].view_as(vals)
    return w


class ControlBound(Bound):
    """A bound circuit whose weights are served through a control."""

    def __init__(self, inner: Bound, kind: str, seed: int = 0) -> None:
        if kind not in CONTROLS:
            raise ValueError(f"unknown control `{kind}` (known: {', '.join(CONTROLS)})")
        self.inner = inner
        self.kind = kind
        self.seed = seed
        self.adapter = inner.adapter
        self.features = inner.features
        self.selections = inner.selections

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def weights_path(self) -> str | None:
        return self.inner.weights_path

    def block(self, src_layer: str, dst_layer: str) -> torch.Tensor:
        """The inner block, transformed."""
        w = fetch_block(self.inner, src_layer, dst_layer)
        return transform(w, self.kind, _generator(self.kind, self.seed, src_layer, dst_layer))

    def branch_of(self, layer: str, channel: int) -> tuple[str, int] | None:
        """Branches are structure, not weights: unchanged."""
        return self.inner.branch_of(layer, channel)

    def input_kernels(self, layer: str) -> torch.Tensor | None:
        """A layer's own kernels (for banding), transformed."""
        from circuitdsl.check.banding import layer_kernels

        ns = SimpleNamespace(bound=self.inner, adapter=self.adapter)
        k = layer_kernels(ns, layer)  # type: ignore[arg-type]
        return transform(k, self.kind, _generator(self.kind, self.seed, "kernels", layer))

    def members(self, name: str) -> Any:
        return self.inner.members(name)  # type: ignore[attr-defined]
