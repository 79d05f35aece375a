"""Architectures of the shipped models.

Both are plain ``conv -> ReLU -> pool`` stacks with every module named (``conv1``, ``relu1``,
``pool1``, ...) so that layers can be addressed by dotted module path and the weights between
two convolutions are a plain kernel slice. There is no BatchNorm, so nothing needs folding.
Inputs are images in [0, 1] without normalisation.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallConvNet(nn.Module):
    """``conv1 5x5 -> pool -> conv2 5x5 -> pool -> conv3 3x3`` then a head.

    ``head="gap"`` averages ``conv3``'s map over space before the linear layer ``fc``, so the
    classifier is translation invariant (used by curvenet, whose shapes appear anywhere);
    ``head="flatten"`` feeds the whole map to ``fc`` (used by fashionnet, whose items are
    centred). Every conv uses "same" padding, so the image centre maps to the centre of every
    feature map.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int, int] = (16, 32, 32),
        head: str = "gap",
        input_size: int = 32,
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.relu3 = nn.ReLU()
        if head == "gap":
            self.pool3: nn.Module = nn.AdaptiveAvgPool2d(1)
            features = c3
        elif head == "flatten":
            self.pool3 = nn.Identity()
            features = c3 * (input_size // 4) ** 2
        else:
            raise ValueError(f"unknown head {head!r}; use 'gap' or 'flatten'")
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, num_classes]`` for images ``[N, C, H, W]``."""
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.pool3(self.relu3(self.conv3(x)))
        logits: torch.Tensor = self.fc(self.flatten(x))
        return logits


CURVENET_CLASSES: tuple[str, ...] = (
    *(f"curve@{45 * k}deg" for k in range(8)),
    *(f"line@{45 * k}deg" for k in range(4)),
)
"""curvenet's labels: 8 curve orientations (convex side, 45° bins) then 4 line orientations."""

FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def curvenet() -> SmallConvNet:
    """curvenet: RGB 32x32 in, 12 classes (curve orientation in 8 bins, line in 4)."""
    return SmallConvNet(3, len(CURVENET_CLASSES), head="gap", input_size=32)


def fashionnet() -> SmallConvNet:
    """fashionnet: greyscale 28x28 Fashion-MNIST in, 10 classes."""
    return SmallConvNet(1, len(FASHION_CLASSES), head="flatten", input_size=28)
