"""Model factories for the `package.module:factory` tests."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """A small classifier on 1x28x28 images."""

    input_shape = (1, 28, 28)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.head = nn.Linear(16 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def small_cnn() -> SmallCNN:
    """The factory the tests name as `tests.models.factories:small_cnn`."""
    torch.manual_seed(0)
    return SmallCNN()


def broken() -> nn.Module:
    """A factory that fails."""
    raise RuntimeError("factory exploded")


def not_a_module() -> int:
    """A factory that returns the wrong thing."""
    return 3
