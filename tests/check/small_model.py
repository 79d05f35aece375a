"""A small CNN with a mixed layer, random weights and planted structure.

Layers: conv1 (3 -> 8, 3x3) -> conv2 (8 -> 16, 5x5) -> mixed (16 -> 8): channels
0-3 a 1x1 branch, 4-7 a 5x5 branch behind a 4-channel 1x1 bottleneck. The expanded
weights conv2 -> mixed are computed here, independently of the model adapters:
`W_exp[o, i] = sum_b W_5x5[o, b] * W_bottleneck[b, i]`, the 1x1 branch at the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from circuitdsl.check import TensorBound
from circuitdsl.check.shape import template
from circuitdsl.tools.planting import arc_kernel, top_bottom_kernel

WINDOWS, BODY, SILENT = 3, 7, 11  # conv2 channels
CAR = 5  # mixed channel 5 = 5x5 branch unit 1
ONE_BY_ONE = 1  # mixed channel 1 = 1x1 branch unit


@dataclass
class Small:
    bound: TensorBound
    w_bn: torch.Tensor
    w_5x5: torch.Tensor
    w_1x1: torch.Tensor
    conv2: torch.Tensor
    expanded: torch.Tensor


def make_small(seed: int = 0) -> Small:
    g = torch.Generator().manual_seed(seed)
    conv2 = 0.1 * torch.randn(16, 8, 5, 5, generator=g)
    # shape plants: conv1:1 -> conv2:2 is an arc at 30 deg, conv1:0 -> conv2:4 a line at 45
    conv2[2, 1] = arc_kernel(5, 30.0)
    conv2[4, 0] = template("line", 45.0, 5, 5) - 0.2
    w_1x1 = 0.1 * torch.randn(4, 16, generator=g)
    w_bn = 0.1 * torch.randn(4, 16, generator=g)
    w_5x5 = 0.1 * torch.randn(4, 4, 5, 5, generator=g)
    # windows reach the car through bottleneck unit 0: excite at top, inhibit at bottom
    w_bn[0, WINDOWS] = 3.0
    w_5x5[1, 0] = 2.0 * top_bottom_kernel(5)
    # car body through bottleneck unit 1: excitatory everywhere, strongest at the bottom
    w_bn[1, BODY] = 3.0
    w_5x5[1, 1] = torch.tensor([0.2, 0.2, 0.5, 1.0, 1.0])[:, None].expand(5, 5)
    # a source with no path at all into the mixed layer
    w_bn[:, SILENT] = 0.0
    w_1x1[:, SILENT] = 0.0
    expanded = torch.zeros(8, 16, 5, 5)
    expanded[:4, :, 2, 2] = w_1x1
    expanded[4:] = torch.einsum("obhw,bi->oihw", w_5x5, w_bn)
    banded = torch.tensor([1.0, -1.0, 0.5, 2.0, 0.0])[:, None].expand(5, 5)
    band = banded + 0.05 * torch.randn(6, 4, 5, 5, generator=g)
    bound = TensorBound(
        {("conv1", "conv2"): conv2, ("conv2", "mixed"): expanded},
        branches={"mixed": [("mixed_1x1", 0, 4), ("mixed_5x5", 4, 4)]},
        layer_kernels={"conv2": conv2, "band": band, "mixed_5x5": w_5x5},
        name="small",
    )
    return Small(bound, w_bn, w_5x5, w_1x1, conv2, expanded)
