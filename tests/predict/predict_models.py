"""Small CNNs with planted weights whose edit outcomes are known in advance.

`planted()`: conv1 (3 -> 3, 3x3) -> ReLU -> conv2 (3 -> 3, 3x3) -> ReLU -> pool -> fc.
conv1 channels 0 and 1 are luminance detectors (every weight 1/27), channel 2 is dead
(all zero). conv2 channel 0 = +1 * conv1:0 - 0.5 * conv1:1 at every tap, so a bright
stimulus excites it, and removing (or halving) the negative part *must* increase its
response; channel 1 ignores conv1:0 (zero kernel), so editing conv1:0 -> conv2:1 *must*
leave it unchanged. The weights are exact, so every expected sign is certain.
"""

from __future__ import annotations

import torch
from torch import nn

from circuitdsl.models.base import TracedAdapter

SIZE = 16


class Planted(nn.Module):
    """The planted network (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()
            self.conv1.weight[0] = 1 / 27
            self.conv1.weight[1] = 1 / 27
            self.conv2.weight[0, 0] = 1.0
            self.conv2.weight[0, 1] = -0.5
            self.conv2.weight[1, 1] = 1.0
            self.conv2.weight[2, 0] = 0.3  # an oriented-blind unit for the colour tests
            self.fc.weight[:] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        return self.fc(self.flatten(self.pool(x)))


def planted_adapter() -> TracedAdapter:
    """A traced adapter over a fresh `Planted` network at 16x16."""
    return TracedAdapter(
        "planted", Planted(), weights_path=None, example_input=torch.zeros(1, 3, SIZE, SIZE)
    )


class Tuned(nn.Module):
    """conv1 channel k is an oriented line detector for orientation 45k deg (k = 0..3).

    Used to check tuning sweeps: the preferred orientation is planted, and so is the
    kernel's ignorance of colour (all three input channels share the kernel).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 7, padding=3, bias=False)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            from circuitdsl.measure.stimuli import line

            for k in range(4):
                img = line(45.0 * k, length=7.0, width=1.0, size=7)[0, 0]
                self.conv1.weight[k] = (img - img.mean())[None] / 3
            self.conv2.weight.zero_()
            self.conv2.bias.zero_()
            self.conv2.weight[0, 0] = 1.0
            self.conv2.weight[0, 2] = -1.0
            self.conv2.weight[1, 1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu1(self.conv1(x)))


def tuned_adapter() -> TracedAdapter:
    """A traced adapter over `Tuned` at 32x32."""
    return TracedAdapter(
        "tuned", Tuned(), weights_path=None, example_input=torch.zeros(1, 3, 32, 32)
    )


def random_inceptionv1(size: int = 96, seed: int = 0) -> TracedAdapter:
    """Lucent's InceptionV1 with random weights; stimuli rendered at `size` x `size`.

    The graph is traced at 224 (its classifier head needs that); the layers that claims
    read are convolutional and run at any size, so a small canvas keeps tests fast.
    """
    from circuitdsl.models.inceptionv1 import InceptionV1, layer_aliases, preprocess

    torch.manual_seed(seed)
    adapter = TracedAdapter(
        "inceptionv1",
        InceptionV1().eval(),
        weights_path=None,
        example_input=torch.zeros(1, 3, 224, 224),
        aliases=layer_aliases(),
        preprocess=preprocess,
    )
    adapter._input_shape = (3, size, size)
    return adapter
