"""Weight edits, checked against independent computations.

* direct conv: the edited model equals a copy edited by hand (BatchNorm folded);
* linear-path correction (InceptionV1 mixed3a -> mixed3b, ResNet blocks): probing the
  *linearised edited network* with impulses gives ``W_edited`` to 1e-5, channels
  outside the edit are untouched (linearised and real network);
* edits compose; ablations zero units and project out directions;
* `restore` makes the copy bit-identical again; the original model and the adapter's
  weight cache never change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
import torch.fx as fx
import torchvision
from torch import nn

from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.edits import ABLATION, CORRECTION, DIRECT, edited_copy
from circuitdsl.models.inceptionv1 import InceptionV1, layer_aliases
from circuitdsl.models.traced import TracedGraph
from circuitdsl.models.weights import probe


@dataclass
class F:
    layer: str
    channels: tuple[int, ...]
    coefficients: tuple[float, ...]


class Bound:
    """The part of a BoundCircuit that edits use: names -> features."""

    def __init__(self, **refs: list[F]) -> None:
        self.refs = refs

    def members(self, ref: str) -> list[F]:
        return self.refs[ref]


def units(layer: str, *chans: int) -> list[F]:
    return [F(layer, (c,), (1.0,)) for c in chans]


def full_maps(gm: fx.GraphModule, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    interp = fx.Interpreter(gm)
    run = interp.run_node

    def rec(n: fx.Node):  # type: ignore[no-untyped-def]
        v = run(n)
        if isinstance(v, torch.Tensor):
            out[n.name] = v
        return v

    interp.run_node = rec  # type: ignore[method-assign]
    with torch.no_grad():
        interp.run(x)
    return out


def linearised(adapter, edited, src: str, dst: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Impulse probing of the edited network's linearisation (an independent mechanism)."""
    shape = adapter.graph.nodes[adapter.node("input")].shape
    g = TracedGraph(edited.gm, example_input=torch.zeros(1, *shape[1:]), retrace=False)
    block = probe(g, adapter.node(src), adapter.node(dst))
    ref = adapter.weight_block(src, dst)
    assert block.stride == ref.stride and block.offset == ref.offset
    return block.weight


def snapshot(adapter) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return {k: v.clone() for k, v in adapter.module.state_dict().items()}


def assert_same_state(adapter, state) -> None:  # type: ignore[no-untyped-def]
    now = adapter.module.state_dict()
    assert now.keys() == state.keys()
    for k, v in now.items():
        assert torch.equal(v, state[k]), k


# ---- direct conv -------------------------------------------------------------------


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(5)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def _random_bn(m: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(torch.randn(n, generator=g))  # some gammas < 0
                mod.bias.copy_(torch.randn(n, generator=g))
                mod.running_mean.copy_(torch.randn(n, generator=g))
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)


@pytest.fixture
def small() -> TracedAdapter:
    torch.manual_seed(0)
    m = Small()
    _random_bn(m, torch.Generator().manual_seed(1))
    return TracedAdapter(
        "small", m.eval(), weights_path=None, example_input=torch.zeros(1, 3, 12, 12)
    )


def test_direct_conv_equals_hand_edited_copy(small: TracedAdapter) -> None:
    state = snapshot(small)
    bound = Bound(a=units("conv1", 0, 1), b=units("conv2", 2, 3))
    edited = edited_copy(small, bound, [{"kind": "remove", "part": "negative", "edge": ("a", "b")}])
    assert edited.kinds == [DIRECT]
    hand = copy.deepcopy(small.module)
    bn = hand.bn2
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # the folded weights' sign
    with torch.no_grad():
        for o in (2, 3):
            for i in (0, 1):
                w = hand.conv2.weight[o, i]
                w[(w * scale[o]) < 0] = 0.0
    changed = int((hand.conv2.weight != small.module.conv2.weight).sum())
    assert changed == edited.weights_changed > 0
    x = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(edited.gm(x), hand(x))
        assert not torch.equal(edited.gm(x), small.module(x))
    assert_same_state(small, state)


def test_scale_by_factor_is_exactly_the_product(small: TracedAdapter) -> None:
    bound = Bound(a=units("conv1", 1), b=units("conv2", 4))
    edited = edited_copy(
        small, bound, [{"kind": "scale", "part": "all", "edge": ("a", "b"), "factor": 3.0}]
    )
    new = dict(edited.gm.named_parameters())["conv2.weight"]
    assert torch.equal(new[4, 1], small.module.conv2.weight[4, 1] * 3.0)
    mask = torch.ones_like(new, dtype=torch.bool)
    mask[4, 1] = False
    assert torch.equal(new[mask], small.module.conv2.weight[mask])


# ---- linear-path corrections: InceptionV1 --------------------------------------------

EARLY = (145, 71, 147, 81)
# one unit of every branch of mixed3b: 1x1 (5), 3x3 (200), 5x5 (342, 379), pool (420)
TARGETS = (5, 200, 342, 379, 420)


@pytest.fixture(scope="module")
def inception() -> TracedAdapter:
    torch.manual_seed(0)
    m = InceptionV1()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
    return TracedAdapter(
        "inceptionv1",
        m.eval(),
        weights_path=None,
        example_input=torch.zeros(1, 3, 224, 224),
        aliases=layer_aliases(),
    )


def _edited_block(w: torch.Tensor, dst, src, part: str, factor: float) -> torch.Tensor:  # type: ignore[no-untyped-def]
    out = w.clone()
    for o in dst:
        for i in src:
            k = out[o, i]
            sel = (
                k < 0
                if part == "negative"
                else k > 0
                if part == "positive"
                else torch.ones_like(k, dtype=torch.bool)
            )
            out[o, i] = torch.where(sel, k * factor, k)
    return out


def test_inception_mixed3a_to_mixed3b(inception: TracedAdapter) -> None:
    state = snapshot(inception)
    cache = inception.weights("mixed3a", "mixed3b")
    cached = cache.clone()
    bound = Bound(a=units("mixed3a", *EARLY), b=units("mixed3b", *TARGETS))
    edited = edited_copy(
        inception, bound, [{"kind": "remove", "part": "negative", "edge": ("a", "b")}]
    )
    assert edited.kinds == [CORRECTION]
    for branch in ("1x1", "3x3", "5x5", "pool_reduce"):
        assert f"mixed3b_{branch}_pre_relu_conv" in edited.notes[0]
    expected = _edited_block(cached, TARGETS, EARLY, "negative", 0.0)
    got = linearised(inception, edited, "mixed3a", "mixed3b")
    assert (got - expected).abs().max() < 1e-5
    assert (expected - cached).abs().max() > 1e-2  # the edit is not empty
    # the real (nonlinear) network: the source and every other channel are untouched
    x = torch.randn(2, 3, 224, 224) * 50
    before, after = full_maps(inception.graph.gm, x), full_maps(edited.gm, x)
    s, t = inception.node("mixed3a"), inception.node("mixed3b")
    assert torch.equal(before[s], after[s])
    others = [c for c in range(480) if c not in TARGETS]
    assert torch.equal(before[t][:, others], after[t][:, others])
    pre = inception.node("mixed3b_5x5_pre_relu")  # the edited units' pre-activation
    assert not torch.equal(before[pre][:, 379 - 320], after[pre][:, 379 - 320])
    assert torch.equal(before[pre][:, 0], after[pre][:, 0])
    # the original model and its cache are never changed
    assert_same_state(inception, state)
    assert inception.weights("mixed3a", "mixed3b") is cache
    assert torch.equal(cache, cached)


def test_inception_edits_compose(inception: TracedAdapter) -> None:
    cached = inception.weights("mixed3a", "mixed3b")
    bound = Bound(
        a=units("mixed3a", 145, 71), b=units("mixed3b", 379), c=units("mixed3b", 379, 200)
    )
    edits = [
        {"kind": "scale", "part": "all", "edge": ("a", "b"), "factor": 2.0},
        {"kind": "scale", "part": "all", "edge": ("a", "c"), "factor": 3.0},
        {"kind": "remove", "part": "positive", "edge": ("a", "c")},
    ]
    edited = edited_copy(inception, bound, edits)
    assert edited.kinds == [CORRECTION] * 3
    expected = _edited_block(cached, (379,), (145, 71), "all", 2.0)
    expected = _edited_block(expected, (379, 200), (145, 71), "all", 3.0)
    expected = _edited_block(expected, (379, 200), (145, 71), "positive", 0.0)
    got = linearised(inception, edited, "mixed3a", "mixed3b")
    assert (got - expected).abs().max() < 1e-5


def test_direction_edit_removes_only_the_direction(inception: TracedAdapter) -> None:
    cached = inception.weights("mixed3a", "mixed3b")
    c = torch.tensor([0.6, -0.8])
    bound = Bound(d=[F("mixed3a", (145, 71), (0.6, -0.8))], b=units("mixed3b", 379))
    edited = edited_copy(inception, bound, [{"kind": "remove", "part": "all", "edge": ("d", "b")}])
    got = linearised(inception, edited, "mixed3a", "mixed3b")
    k = torch.einsum("i,ihw->hw", c, cached[379, [145, 71]])
    expected = cached.clone()
    expected[379, [145, 71]] = cached[379, [145, 71]] - c[:, None, None] * k
    assert (got - expected).abs().max() < 1e-5
    # the kernel along the direction is gone; the orthogonal one is kept
    assert torch.einsum("i,ihw->hw", c, got[379, [145, 71]]).abs().max() < 1e-5
    ortho = torch.tensor([0.8, 0.6])
    assert torch.allclose(
        torch.einsum("i,ihw->hw", ortho, got[379, [145, 71]]),
        torch.einsum("i,ihw->hw", ortho, cached[379, [145, 71]]),
        atol=1e-5,
    )


def test_inception_across_a_stride(inception: TracedAdapter) -> None:
    """mixed3b -> mixed4a goes through maxpool4 (stride 2): an 11x11 correction."""
    cached = inception.weights("mixed3b", "mixed4a")
    bound = Bound(a=units("mixed3b", 379, 10), b=units("mixed4a", 3, 250, 400))
    edited = edited_copy(
        inception, bound, [{"kind": "remove", "part": "negative", "edge": ("a", "b")}]
    )
    assert edited.kinds == [CORRECTION]
    got = linearised(inception, edited, "mixed3b", "mixed4a")
    expected = _edited_block(cached, (3, 250, 400), (379, 10), "negative", 0.0)
    assert (got - expected).abs().max() < 1e-5


# ---- linear-path corrections: a ResNet -----------------------------------------------


@pytest.fixture(scope="module")
def resnet() -> TracedAdapter:
    torch.manual_seed(0)
    m = torchvision.models.resnet18(weights=None)
    _random_bn(m, torch.Generator().manual_seed(2))
    return TracedAdapter(
        "resnet18", m.eval(), weights_path=None, example_input=torch.zeros(1, 3, 64, 64)
    )


def test_resnet_blocks(resnet: TracedAdapter) -> None:
    state = snapshot(resnet)
    cached = resnet.weights("maxpool", "layer1.1").clone()
    bound = Bound(a=units("maxpool", 3, 7, 11), b=units("layer1.1", 0, 5, 63))
    edits = [{"kind": "scale", "part": "negative", "edge": ("a", "b"), "factor": 0.25}]
    edited = edited_copy(resnet, bound, edits)
    assert edited.kinds == [CORRECTION]
    assert "`add_1`" in edited.notes[0]  # the second block's sum, before its ReLU
    got = linearised(resnet, edited, "maxpool", "layer1.1")
    expected = _edited_block(cached, (0, 5, 63), (3, 7, 11), "negative", 0.25)
    scale = float(cached.abs().max())
    assert (got - expected).abs().max() < 1e-5 * max(1.0, scale)
    x = torch.randn(2, 3, 64, 64)
    before, after = full_maps(resnet.graph.gm, x), full_maps(edited.gm, x)
    t = resnet.node("layer1.1")
    others = [c for c in range(64) if c not in (0, 5, 63)]
    assert torch.equal(before[t][:, others], after[t][:, others])
    assert not torch.equal(before[t][:, 5], after[t][:, 5])
    assert_same_state(resnet, state)


def test_resnet_direct_then_correction_compose(resnet: TracedAdapter) -> None:
    """A direct edit in a block, then a correction across it, computed on the edited model."""
    bound = Bound(
        a=units("layer1.0.conv1", 0, 1, 2),
        b=units("layer1.0.conv2", 4, 9),
        p=units("maxpool", 0, 1),
        q=units("layer1.0", 4, 9, 20),
    )
    edits = [
        {"kind": "remove", "part": "all", "edge": ("a", "b")},
        {"kind": "scale", "part": "all", "edge": ("p", "q"), "factor": 0.5},
    ]
    edited = edited_copy(resnet, bound, edits)
    assert edited.kinds == [DIRECT, CORRECTION]
    hand = copy.deepcopy(resnet.module)
    with torch.no_grad():
        for o in (4, 9):
            for i in (0, 1, 2):
                hand.layer1[0].conv2.weight[o, i] = 0.0
    hand_adapter = TracedAdapter(
        "hand", hand, weights_path=None, example_input=torch.zeros(1, 3, 64, 64)
    )
    expected = _edited_block(
        hand_adapter.weights("maxpool", "layer1.0"), (4, 9, 20), (0, 1), "all", 0.5
    )
    got = linearised(resnet, edited, "maxpool", "layer1.0")
    assert (got - expected).abs().max() < 1e-5 * max(1.0, float(expected.abs().max()))


# ---- ablations ---------------------------------------------------------------------


def test_ablate_units_and_directions(inception: TracedAdapter) -> None:
    x = torch.randn(2, 3, 224, 224) * 50
    base = full_maps(inception.graph.gm, x)
    n = inception.node("mixed3a")
    bound = Bound(u=units("mixed3a", 3, 147), d=[F("mixed3a", (10, 20, 30), (1.0, 2.0, -2.0))])
    edited = edited_copy(inception, bound, [{"kind": "ablate", "target": "u"}])
    assert edited.kinds == [ABLATION]
    out = full_maps(edited.gm, x)[n]
    assert bool((out[:, [3, 147]] == 0).all())
    keep = [c for c in range(256) if c not in (3, 147)]
    assert torch.equal(out[:, keep], base[n][:, keep])
    edited = edited_copy(inception, bound, [{"kind": "ablate", "target": "d"}])
    out = full_maps(edited.gm, x)[n]
    d = torch.tensor([1.0, 2.0, -2.0]) / 3.0
    sub, old = out[:, [10, 20, 30]], base[n][:, [10, 20, 30]]
    assert torch.einsum("c,nchw->nhw", d, sub).abs().max() < 1e-4 * float(old.abs().max())
    expected = old - d[None, :, None, None] * torch.einsum("c,nchw->nhw", d, old)[:, None]
    assert torch.allclose(sub, expected, atol=1e-4)
    keep = [c for c in range(256) if c not in (10, 20, 30)]
    assert torch.equal(out[:, keep], base[n][:, keep])
    # downstream layers see the ablation
    t = inception.node("mixed3b")
    assert not torch.equal(full_maps(edited.gm, x)[t], base[t])


# ---- restore -------------------------------------------------------------------------


def test_edit_and_inverse_leave_the_model_bit_identical(resnet: TracedAdapter) -> None:
    original = resnet.graph.gm
    code, state = original.code, {k: v.clone() for k, v in original.state_dict().items()}
    bound = Bound(
        a=units("layer1.0.conv1", 0, 1),
        b=units("layer1.0.conv2", 4),
        p=units("maxpool", 0, 1),
        q=units("layer1.1", 4, 20),
        d=[F("layer1.0", (1, 2), (1.0, 1.0))],
    )
    edits = [
        {"kind": "scale", "part": "positive", "edge": ("a", "b"), "factor": 1.7},
        {"kind": "remove", "part": "negative", "edge": ("p", "q")},
        {"kind": "ablate", "target": "d"},
        {"kind": "ablate", "target": "p"},
    ]
    edited = edited_copy(resnet, bound, edits)
    assert edited.kinds == [DIRECT, CORRECTION, ABLATION, ABLATION]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(edited.gm(x), original(x))
    edited.restore()
    assert edited.gm.code == code
    restored = edited.gm.state_dict()
    assert restored.keys() == state.keys()
    for k, v in restored.items():
        assert torch.equal(v, state[k]), k
    with torch.no_grad():
        assert torch.equal(edited.gm(x), original(x))
    assert original.code == code
