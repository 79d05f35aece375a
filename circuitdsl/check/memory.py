"""A bound circuit made of tensors in memory, for tests, notebooks and custom models.

`TensorBound(blocks)` serves weight blocks from a dict keyed by (source layer,
target layer); optional `branches` (layer -> list of (branch layer, first channel,
count)) answer `branch_of`, and `layer_kernels` (layer -> Tensor[C_out, C_in, h, w])
answer banding claims. It counts block fetches so tests can assert batching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from circuitdsl.check.common import Unmeasurable
from circuitdsl.models.bind import Bound


class TensorBound(Bound):
    """Weight blocks from a dict: the minimal object `check()` accepts."""

    def __init__(
        self,
        blocks: Mapping[tuple[str, str], torch.Tensor],
        *,
        branches: Mapping[str, Sequence[tuple[str, int, int]]] | None = None,
        layer_kernels: Mapping[str, torch.Tensor] | None = None,
        name: str = "in-memory",
    ) -> None:
        self.blocks = dict(blocks)
        self.branches = dict(branches or {})
        self.layer_kernels = dict(layer_kernels or {})
        self._name = name
        self.fetches = 0

    @property
    def name(self) -> str:
        return self._name

    def block(self, src_layer: str, dst_layer: str) -> torch.Tensor:
        """The [C_dst, C_src, kh, kw] block, or Unmeasurable if it is not stored."""
        self.fetches += 1
        try:
            return self.blocks[(src_layer, dst_layer)]
        except KeyError:
            raise Unmeasurable(f"no weights stored for {src_layer} -> {dst_layer}") from None

    def branch_of(self, layer: str, channel: int) -> tuple[str, int] | None:
        """(branch layer, index in it) of a concatenated channel, or None."""
        for name, start, count in self.branches.get(layer, ()):
            if start <= channel < start + count:
                return name, channel - start
        return None

    def input_kernels(self, layer: str) -> torch.Tensor:
        """The layer's own conv kernels."""
        try:
            return self.layer_kernels[layer]
        except KeyError:
            raise Unmeasurable(f"no kernels stored for layer {layer}") from None
