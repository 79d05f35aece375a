"""Property test: on random small conv chains, composition, impulse probing and the
autograd Jacobian of an independently written linear network agree."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.weights import compose, probe

layer = st.tuples(
    st.sampled_from(["conv", "maxpool", "relu"]),
    st.integers(1, 3),  # kernel
    st.integers(1, 2),  # stride
    st.integers(0, 1),  # padding
    st.integers(1, 2),  # dilation (convs)
)


def _net(spec: list[tuple[str, int, int, int, int]], seed: int) -> tuple[nn.Sequential, list]:  # type: ignore[type-arg]
    torch.manual_seed(seed)
    mods: list[nn.Module] = [nn.Identity()]
    c = 2
    for kind, k, s, p, d in spec:
        if kind == "conv":
            mods.append(nn.Conv2d(c, 3, k, stride=s, padding=p, dilation=d))
            c = 3
        elif kind == "maxpool":
            mods.append(nn.MaxPool2d(k, s, padding=min(p, k // 2)))
        else:
            mods.append(nn.ReLU())
    mods.append(nn.Conv2d(c, 2, 2))
    return nn.Sequential(*mods).eval(), mods


def _linear(mods: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for m in mods:
        if isinstance(m, nn.Conv2d):
            x = F.conv2d(x, m.weight.detach(), None, m.stride, m.padding, m.dilation)
        elif isinstance(m, nn.MaxPool2d):
            x = F.avg_pool2d(x, m.kernel_size, m.stride, m.padding, count_include_pad=True)
    return x


@settings(max_examples=15, deadline=None)
@given(st.lists(layer, min_size=1, max_size=3), st.integers(0, 1000))
# Regressions: a kernel narrower than a preceding stride; a dilated first conv.
@example([("maxpool", 1, 2, 0, 1)], 0)
@example([("conv", 2, 1, 0, 2)], 0)
@example([("maxpool", 3, 2, 1, 1), ("conv", 3, 1, 1, 2), ("maxpool", 2, 2, 0, 1)], 0)
def test_compose_probe_and_jacobian_agree(spec, seed: int) -> None:  # type: ignore[no-untyped-def]
    model, mods = _net(spec, seed)
    adapter = TracedAdapter("p", model, weights_path=None, example_input=torch.zeros(1, 2, 48, 48))
    last = str(len(mods) - 1)
    fast = adapter.block("0", last)
    slow = probe(adapter.graph, adapter.node("0"), adapter.node(last))
    assert fast.stride == slow.stride and fast.offset == slow.offset
    assert torch.allclose(fast.weight, slow.weight, atol=1e-6)
    assert torch.equal(
        compose(adapter.graph, adapter.node("0"), adapter.node(last)).weight, fast.weight
    )
    (s, _), (off, _), (k, _) = fast.stride, fast.offset, fast.kernel_size
    y0 = 3
    size = s * y0 + off + k + 8
    jac = torch.autograd.functional.jacobian(
        lambda x: _linear(mods, x)[0, :, y0, y0], torch.zeros(1, 2, size, size)
    )[:, 0]
    r0 = s * y0 + off
    assert r0 >= 0
    window = jac[:, :, r0 : r0 + k, r0 : r0 + k]
    assert torch.allclose(fast.weight, window, atol=1e-6)
    outside = jac.clone()
    outside[:, :, r0 : r0 + k, r0 : r0 + k] = 0
    assert torch.count_nonzero(outside) == 0


class _Branchy(nn.Module):
    """Two parallel convs joined by concat or sum, then BatchNorm and a max-pool."""

    def __init__(self, k1: int, k2: int, groups: int, join: str, pool: tuple[int, int, int]):
        super().__init__()
        self.a = nn.Conv2d(2, 2, k1, padding=k1 // 2)
        self.b = nn.Conv2d(2, 2, k2, padding=k2 // 2, groups=groups)
        self.join = join
        self.bn = nn.BatchNorm2d(4 if join == "cat" else 2)
        self.pool = nn.MaxPool2d(pool[0], pool[1], padding=min(pool[2], pool[0] // 2))
        with torch.no_grad():
            self.bn.weight.uniform_(0.5, 2.0)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.running_mean.normal_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x), torch.relu(self.b(x))
        y = torch.cat([a, b], 1) if self.join == "cat" else a + b
        return self.pool(self.bn(y))

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """The same network linearised by hand."""
        a = F.conv2d(x, self.a.weight.detach(), padding=self.a.padding)
        b = F.conv2d(x, self.b.weight.detach(), padding=self.b.padding, groups=self.b.groups)
        y = torch.cat([a, b], 1) if self.join == "cat" else a + b
        scale = (self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)).detach()
        y = y * scale[None, :, None, None]
        p = self.pool
        return F.avg_pool2d(y, p.kernel_size, p.stride, p.padding, count_include_pad=True)


@settings(max_examples=10, deadline=None)
@given(
    st.sampled_from([1, 3, 5]),
    st.sampled_from([1, 3]),
    st.sampled_from([1, 2]),
    st.sampled_from(["cat", "add"]),
    st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(0, 1)),
    st.integers(0, 100),
)
def test_branches_bn_groups(k1, k2, groups, join, pool, seed) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = _Branchy(k1, k2, groups, join, pool).eval()
    adapter = TracedAdapter("b", model, weights_path=None, example_input=torch.zeros(1, 2, 24, 24))
    src = adapter.graph.order[0]  # the input placeholder
    dst = adapter.node("pool")
    fast = compose(adapter.graph, src, dst)
    slow = probe(adapter.graph, src, dst)
    assert fast.stride == slow.stride and fast.offset == slow.offset
    assert torch.allclose(fast.weight, slow.weight, atol=1e-5)
    (s, _), (off, _), (k, _) = fast.stride, fast.offset, fast.kernel_size
    y0 = 3
    size = s * y0 + off + k + 8
    jac = torch.autograd.functional.jacobian(
        lambda x: model.linear(x)[0, :, y0, y0], torch.zeros(1, 2, size, size)
    )[:, 0]
    r0 = s * y0 + off
    window = jac[:, :, r0 : r0 + k, r0 : r0 + k]
    assert torch.allclose(fast.weight, window, atol=1e-5)
    outside = jac.clone()
    outside[:, :, r0 : r0 + k, r0 : r0 + k] = 0
    assert torch.count_nonzero(outside) == 0
