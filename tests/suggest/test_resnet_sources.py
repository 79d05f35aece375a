"""The default source layer on a torchvision ResNet: BN-folded convs, residual blocks."""

from __future__ import annotations

import pytest
import torch

from circuitdsl.tools.inputs import analyse, default_source


def test_default_source_on_resnet18_names_the_folded_conv() -> None:
    torchvision = pytest.importorskip("torchvision")
    from circuitdsl.models.base import TracedAdapter

    m = torchvision.models.resnet18().eval()
    a = TracedAdapter("resnet18", m, weights_path=None, example_input=torch.zeros(1, 3, 64, 64))
    # `layer3.1.bn1` and `layer3.1.conv1` are one activation; specs name the conv
    assert default_source(a, "layer3.1.conv2") == "layer3.1.conv1"
    assert default_source(a, "layer3.1.conv1") == "layer3.0"  # the residual block's output
    assert default_source(a, "layer2.0.downsample") == "layer1"
    assert default_source(a, "layer1.0.conv1") == "relu"  # the stem, after its ReLU
    rep = analyse(a, "layer3.1.conv2", 5, top=2)
    assert rep.kernel_size == (3, 3) and rep.n_inputs == 256
