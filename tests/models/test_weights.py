"""Expanded weights on small models, torchvision ResNet and GoogLeNet, BN folding,
the spatial convention and directions. Each result is compared with an independent
computation: an autograd Jacobian of a hand-written linear network, plain conv
outputs, or explicit sums.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.torchvision_models import build as build_torchvision
from circuitdsl.models.weights import compose, fold_bn, probe, receptive_fields, reduce_block


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def _jacobian_kernel(f, c_in: int, size: int, y0: int, stride: int, offset: int, k: int):  # type: ignore[no-untyped-def]
    """Jacobian of f's output at (y0, y0) w.r.t. its input, cut to the kernel window."""
    jac = torch.autograd.functional.jacobian(
        lambda x: f(x)[0, :, y0, y0], torch.zeros(1, c_in, size, size), vectorize=True
    )[:, 0]
    r0 = stride * y0 + offset
    window = jac[:, :, r0 : r0 + k, r0 : r0 + k]
    outside = jac.clone()
    outside[:, :, r0 : r0 + k, r0 : r0 + k] = 0
    return window, outside


class Toy(nn.Module):
    """Strides, grouped and dilated convs, asymmetric pads, BN, pools, a concat, a skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.a = nn.Conv2d(8, 6, 3, padding=2, dilation=2, groups=2)
        self.b = nn.Conv2d(8, 4, 2)
        self.c = nn.Conv2d(10, 10, 3, padding=1)
        self.out = nn.Conv2d(10, 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.bn1(self.conv1(x))))
        y = torch.cat([F.relu(self.a(x)), self.b(F.pad(x, (1, 0, 1, 0)))], 1)
        y = y + F.relu(self.c(y)) * 0.5 - 1.0
        return self.out(F.avg_pool2d(y / 4, 2))


def test_probe_matches_compose_and_jacobian_on_toy() -> None:
    torch.manual_seed(0)
    model = Toy().eval()
    _randomise_bn(model)
    adapter = TracedAdapter(
        "toy", model, weights_path=None, example_input=torch.zeros(1, 3, 64, 64)
    )
    g = adapter.graph
    src, dst = adapter.node("relu1"), adapter.node("out")
    fast, slow = compose(g, src, dst), probe(g, src, dst)
    assert fast.stride == slow.stride == (4, 4)
    assert fast.offset == slow.offset
    assert torch.allclose(fast.weight, slow.weight, atol=1e-6)

    def w(m: nn.Conv2d) -> torch.Tensor:
        return m.weight.detach()

    def f(x: torch.Tensor) -> torch.Tensor:
        p = F.avg_pool2d(x, 3, 2, 1)
        a = F.conv2d(p, w(model.a), None, 1, 2, 2, 2)
        b = F.conv2d(F.pad(p, (1, 0, 1, 0)), w(model.b))
        y = torch.cat([a, b], 1)
        y = y + F.conv2d(y, w(model.c), padding=1) * 0.5
        return F.conv2d(F.avg_pool2d(y / 4, 2), w(model.out))

    k, off = fast.kernel_size[0], fast.offset[0]
    assert fast.kernel_size == (k, k) and fast.offset == (off, off)
    window, outside = _jacobian_kernel(f, 8, 64, 6, 4, off, k)
    assert torch.allclose(fast.weight, window, rtol=1e-5, atol=1e-5 * float(window.abs().max()))
    assert torch.count_nonzero(outside) == 0


def test_kernel_convention_row_zero_is_the_top() -> None:
    """A kernel with its only weight in row 0 makes a unit copy the input row above."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 1] = 1.0
    model = nn.Sequential(nn.Identity(), conv).eval()
    adapter = TracedAdapter("k", model, weights_path=None, example_input=torch.zeros(1, 1, 9, 9))
    block = adapter.weight_block("0", "1")
    assert block.weight[0, 0, 0, 1] == 1.0 and block.offset == (-1, -1)
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    with torch.no_grad():
        y = conv(x)
    # The unit one row *below* the impulse responds: its kernel's top row saw it.
    assert y[0, 0, 5, 4] == 1.0 and float(y.abs().sum()) == 1.0


def test_fold_bn_reproduces_conv_then_bn() -> None:
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6)
    seq = nn.Sequential(conv, bn).eval()
    _randomise_bn(seq)
    w, b = fold_bn(conv, bn)
    x = torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        assert torch.allclose(F.conv2d(x, w, b, padding=1), seq(x), atol=1e-5)
    adapter = TracedAdapter("cb", seq, weights_path=None, example_input=torch.zeros(1, 4, 8, 8))
    # The layer `0` (the conv) names the conv with its BN folded in.
    assert adapter.layer("0").kind == "conv"
    assert adapter.is_upstream("0", "1") is False  # `0` and `1` are the same point


def test_reduce_block_combines_kernels_linearly() -> None:
    torch.manual_seed(0)
    block = torch.randn(5, 4, 3, 3)
    k = reduce_block(block, [1, 3], [0.5, -2.0], [0, 2], [1.0, 3.0])
    expected = sum(
        d * c * block[o, i] for o, d in ((1, 0.5), (3, -2.0)) for i, c in ((0, 1.0), (2, 3.0))
    )
    assert torch.allclose(k, expected)
    all_in = reduce_block(block, [2], [1.0])
    assert torch.equal(all_in, block[2])


@pytest.fixture(scope="module")
def resnet18():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    adapter = build_torchvision("resnet18", None, allow_random=True)
    _randomise_bn(adapter.module)
    # Re-trace: BN statistics are read when the graph is built.
    return TracedAdapter(
        "torchvision:resnet18",
        adapter.module,
        weights_path=None,
        example_input=torch.zeros(1, 3, 64, 64),
    )


def _bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()


def test_resnet_conv_layer_is_bn_folded(resnet18) -> None:  # type: ignore[no-untyped-def]
    blk = resnet18.module.layer3[1]
    w, _ = fold_bn(blk.conv2, blk.bn2)
    assert torch.allclose(resnet18.weights("layer3.1.conv1", "layer3.1.conv2"), w, atol=1e-6)
    assert resnet18.layer("layer3.1.conv2").kernel_size == (3, 3)


def test_resnet_skip_connection_equals_jacobian(resnet18) -> None:  # type: ignore[no-untyped-def]
    """layer1.0 output = bn2(conv2(bn1(conv1(x)))) + x with ReLUs and BN shifts removed."""
    blk = resnet18.module.layer1[0]
    s1, s2 = _bn_scale(blk.bn1), _bn_scale(blk.bn2)
    w1, w2 = blk.conv1.weight.detach(), blk.conv2.weight.detach()

    def f(x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, w1, padding=1) * s1[None, :, None, None]
        return F.conv2d(h, w2, padding=1) * s2[None, :, None, None] + x

    block = resnet18.weight_block("maxpool", "layer1.0")
    assert block.kernel_size == (5, 5) and block.offset == (-2, -2)
    window, outside = _jacobian_kernel(f, 64, 9, 4, 1, -2, 5)
    assert torch.allclose(block.weight, window, rtol=1e-5, atol=1e-5 * float(window.abs().max()))
    assert torch.count_nonzero(outside) == 0


def test_resnet_strided_downsample_equals_jacobian(resnet18) -> None:  # type: ignore[no-untyped-def]
    blk = resnet18.module.layer2[0]
    s1, s2 = _bn_scale(blk.bn1), _bn_scale(blk.bn2)
    sd = _bn_scale(blk.downsample[1])
    w1, w2 = blk.conv1.weight.detach(), blk.conv2.weight.detach()
    wd = blk.downsample[0].weight.detach()

    def f(x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, w1, stride=2, padding=1) * s1[None, :, None, None]
        main = F.conv2d(h, w2, padding=1) * s2[None, :, None, None]
        return main + F.conv2d(x, wd, stride=2) * sd[None, :, None, None]

    block = resnet18.weight_block("layer1", "layer2.0")
    assert block.stride == (2, 2)
    k, off = block.kernel_size[0], block.offset[0]
    window, outside = _jacobian_kernel(f, 64, 16, 4, 2, off, k)
    assert torch.allclose(block.weight, window, rtol=1e-5, atol=1e-5 * float(window.abs().max()))
    assert torch.count_nonzero(outside) == 0
    slow = probe(resnet18.graph, resnet18.node("layer1"), resnet18.node("layer2.0"))
    assert torch.allclose(slow.weight, block.weight, atol=1e-5 * float(window.abs().max()))


def test_googlenet_inception_block_compose_equals_probe() -> None:
    torch.manual_seed(0)
    adapter = build_torchvision("googlenet", None, allow_random=True, input_size=96)
    g = adapter.graph
    src, dst = adapter.node("inception3a"), adapter.node("inception3b")
    fast, slow = compose(g, src, dst), probe(g, src, dst)
    assert fast.weight.shape == (480, 256, 3, 3)  # torchvision's "5x5" branch is 3x3
    assert torch.allclose(fast.weight, slow.weight, atol=1e-5 * float(fast.weight.abs().max()))
    assert adapter.branch_of("inception4c", 300) == ("inception4c.branch2", 172)
    # BasicConv2d's functional ReLU sits between branch layers; the block is conv+BN.
    w, _ = fold_bn(
        adapter.module.inception3b.branch2[1].conv, adapter.module.inception3b.branch2[1].bn
    )
    got = adapter.weights("inception3b.branch2.0", "inception3b.branch2.1.conv")
    assert torch.allclose(got, w, atol=1e-6)


def test_receptive_field_is_the_kernel_size(resnet18) -> None:  # type: ignore[no-untyped-def]
    rfs = receptive_fields(resnet18.graph, resnet18.node("layer1"), resnet18.node("layer2.0"))
    (s, lo, hi), _ = rfs[resnet18.node("layer2.0")]
    block = resnet18.weight_block("layer1", "layer2.0")
    assert (s, lo, hi - lo + 1) == (2, block.offset[0], block.kernel_size[0])


def test_vgg_and_alexnet_layers_by_module_path() -> None:
    vgg = build_torchvision("vgg16", None, allow_random=True, input_size=64)
    assert vgg.layer("features.28").channels == 512
    assert vgg.layer("features.28").kernel_size == (3, 3)
    w = vgg.weights("features.27", "features.28")
    assert torch.equal(w, vgg.module.features[28].weight.detach())
    alex = build_torchvision("alexnet", None, allow_random=True, input_size=96)
    assert alex.layer("features.0").kernel_size == (11, 11)
    assert alex.is_upstream("features.0", "features.10")


class _Functional(nn.Module):
    """Pools and activations written as functions rather than modules."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 3, 2, 1, ceil_mode=True)
        return self.head(torch.relu(F.avg_pool2d(x, 2, 1)))


def test_functional_pools_and_relus() -> None:
    torch.manual_seed(0)
    model = _Functional().eval()
    adapter = TracedAdapter("f", model, weights_path=None, example_input=torch.zeros(1, 3, 32, 32))
    block = adapter.weight_block("conv", "head")
    w = model.head.weight.detach()

    def f(x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)
        return F.conv2d(F.avg_pool2d(x, 2, 1), w)

    k, off = block.kernel_size[0], block.offset[0]
    window, outside = _jacobian_kernel(f, 4, 32, 4, 2, off, k)
    assert torch.allclose(block.weight, window, rtol=1e-5, atol=1e-7)
    assert torch.count_nonzero(outside) == 0
