"""A small CNN with random weights and planted inputs, loadable as `planted_nets:planted_cnn`.

Layers (network order): conv1 (3 -> 8, 3x3), relu1, conv2 (8 -> 16, 5x5), relu2,
conv3 (16 -> 12, 5x5), relu3. The planted unit is `relu3:4` (= `conv3:4`); its
inputs from `relu2` are, besides small random kernels (std 0.02):

* `relu2:5`  excitatory, at the top (rows 0-1 of the kernel);
* `relu2:7`  excitatory, at the center;
* `relu2:11` inhibitory, at the bottom;
* `relu2:2`  net inhibitory on the right, excitatory on the left.

One layer further back, `relu2:5` (= `conv2:5`) gets `relu1:3` excitatory on the right
and `relu1:6` inhibitory at the top. `plant(model, moved=True)` moves `relu2:5`'s
excitation from the top to the bottom of its kernel.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

UNIT = 4  # conv3 / relu3 channel
TOP, CENTER, BOTTOM, MIXED = 5, 7, 11, 2  # relu2 channels into UNIT
MID = TOP  # relu2:5, the unit whose own inputs are planted for --depth 2
RIGHT, TOP_INH = 3, 6  # relu1 channels into MID
FACTORY = "planted_nets:planted_cnn"


class PlantedCNN(nn.Module):
    """Three conv layers with ReLUs; the input is 3 x 24 x 24."""

    input_shape = (3, 24, 24)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 5, padding=2)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(16, 12, 5, padding=2)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        return self.relu3(self.conv3(x))


def _rows(values: list[float]) -> torch.Tensor:
    """A 5x5 kernel whose row r is values[r] (row 0 = top)."""
    return torch.tensor(values)[:, None].expand(5, 5).clone()


def plant(model: PlantedCNN, *, moved: bool = False, seed: int = 0) -> PlantedCNN:
    """Random small weights plus the planted inputs (in place; returns the model)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in (model.conv1, model.conv2, model.conv3):
            conv.weight.copy_(0.02 * torch.randn(conv.weight.shape, generator=g))
            assert conv.bias is not None
            conv.bias.zero_()
        w3 = model.conv3.weight
        w3[UNIT, TOP] = _rows([0.0, 0.0, 0.1, 1.0, 1.0] if moved else [1.0, 1.0, 0.1, 0.0, 0.0])
        w3[UNIT, CENTER] = 0.0
        w3[UNIT, CENTER, 1:4, 1:4] = 0.3
        w3[UNIT, CENTER, 2, 2] = 1.5
        w3[UNIT, BOTTOM] = _rows([0.0, 0.0, -0.1, -0.9, -0.9])
        mixed = torch.zeros(5, 5)
        mixed[:, :2] = 0.3
        mixed[:, 3:] = -0.6
        w3[UNIT, MIXED] = mixed
        w2 = model.conv2.weight
        right = torch.zeros(5, 5)
        right[:, 3:] = 0.8
        w2[MID, RIGHT] = right
        w2[MID, TOP_INH] = _rows([-0.7, -0.7, 0.0, 0.0, 0.0])
    return model


def planted_cnn() -> PlantedCNN:
    """The factory `circ` calls (weights come from --weights)."""
    return PlantedCNN().eval()


def save_weights(path: Path, *, moved: bool = False) -> Path:
    """Write the planted state dict to `path` (what `--weights` reads)."""
    torch.save(plant(PlantedCNN(), moved=moved).state_dict(), path)
    return path
