"""InceptionV1: lucent's state-dict layout, forward pass, branch table, kernels.

Every weight check here compares against a computation written independently of the
traced graph: raw parameters, the bottleneck einsum written out, and the autograd
Jacobian of a hand-written linearised mixed layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.models.inceptionv1 import WEIGHTS_URL, InceptionV1, preprocess
from circuitdsl.models.layers_cmd import format_layers
from circuitdsl.models.registry import load_model
from circuitdsl.models.weights import compose, probe

DATA = Path(__file__).parent / "data"

# From the brief's branch table (circuits.md): layer -> (1x1, 3x3, 5x5, pool_reduce)
# as inclusive channel ranges of the concatenated layer, and the total.
BRANCH_TABLE = {
    "mixed3a": ((0, 63), (64, 191), (192, 223), (224, 255), 256),
    "mixed3b": ((0, 127), (128, 319), (320, 415), (416, 479), 480),
    "mixed4a": ((0, 191), (192, 395), (396, 443), (444, 507), 508),
    "mixed4b": ((0, 159), (160, 383), (384, 447), (448, 511), 512),
    "mixed4c": ((0, 127), (128, 383), (384, 447), (448, 511), 512),
    "mixed4d": ((0, 111), (112, 399), (400, 463), (464, 527), 528),
    "mixed4e": ((0, 255), (256, 575), (576, 703), (704, 831), 832),
    "mixed5a": ((0, 255), (256, 575), (576, 703), (704, 831), 832),
    "mixed5b": ((0, 383), (384, 767), (768, 895), (896, 1023), 1024),
}
BOTTLENECKS = {  # (3x3 bottleneck, 5x5 bottleneck) widths, also from the table
    "mixed3a": (96, 16),
    "mixed3b": (128, 32),
    "mixed4a": (96, 16),
    "mixed4b": (112, 24),
    "mixed4c": (128, 24),
    "mixed4d": (144, 32),
    "mixed4e": (160, 32),
    "mixed5a": (160, 48),
    "mixed5b": (192, 48),
}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = InceptionV1()
    # Larger-than-default weights so that expanded weights are not tiny.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    path = tmp_path_factory.mktemp("w") / "inception5h.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def adapter(weights_file: Path):  # type: ignore[no-untyped-def]
    return load_model("inceptionv1", weights_file)


def param(adapter, name: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return dict(adapter.module.named_parameters())[name].detach()


def test_state_dict_keys_and_shapes_equal_lucent() -> None:
    expected = json.loads((DATA / "lucent_inceptionv1_keys.json").read_text())["state_dict"]
    got = {k: list(v.shape) for k, v in InceptionV1().state_dict().items()}
    assert list(got) == list(expected)
    assert got == expected
    assert sum(v.numel() for v in InceptionV1().state_dict().values()) == 7_066_380


def test_forward_gives_1008_probabilities(adapter) -> None:  # type: ignore[no-untyped-def]
    x = preprocess(torch.rand(1, 3, 224, 224))
    with torch.no_grad():
        y = adapter.module(x)
    assert y.shape == (1, 1008)
    assert torch.allclose(y.sum(1), torch.ones(1))


def test_activations_match_hand_computation(adapter) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    x = torch.randn(1, 3, 224, 224)
    acts = adapter.activations(x, ["conv2d0", "maxpool0", "mixed3b", "mixed3b_5x5_pre_relu"])
    w, b = (
        param(adapter, "conv2d0_pre_relu_conv.weight"),
        param(adapter, "conv2d0_pre_relu_conv.bias"),
    )
    conv2d0 = F.relu(F.conv2d(F.pad(x, (2, 3, 2, 3)), w, b, stride=2))
    assert torch.allclose(acts["conv2d0"], conv2d0, atol=1e-5)
    pooled = F.max_pool2d(F.pad(conv2d0, (0, 1, 0, 1), value=float("-inf")), 3, 2)
    assert torch.allclose(acts["maxpool0"], pooled, atol=1e-5)
    assert acts["conv2d0"].shape == (1, 64, 112, 112)
    assert acts["maxpool0"].shape == (1, 64, 56, 56)
    assert acts["mixed3b"].shape == (1, 480, 28, 28)
    assert acts["mixed3b_5x5_pre_relu"].shape == (1, 96, 28, 28)
    # The concat's 5x5 block is the post-ReLU 5x5 branch.
    assert torch.allclose(acts["mixed3b"][:, 320:416], acts["mixed3b_5x5_pre_relu"].clamp(min=0))


@pytest.mark.parametrize("layer", sorted(BRANCH_TABLE))
def test_branch_table(adapter, layer: str) -> None:  # type: ignore[no-untyped-def]
    *ranges, total = BRANCH_TABLE[layer]
    assert adapter.layer(layer).channels == total
    for (lo, hi), branch in zip(ranges, ("1x1", "3x3", "5x5", "pool_reduce"), strict=True):
        name = f"{layer}_{branch}"
        assert adapter.layer(name).channels == hi - lo + 1
        for ch in (lo, (lo + hi) // 2, hi):
            assert adapter.branch_of(layer, ch) == (name, ch - lo)
    b3, b5 = BOTTLENECKS[layer]
    assert adapter.layer(f"{layer}_3x3_bottleneck").channels == b3
    assert adapter.layer(f"{layer}_5x5_bottleneck").channels == b5
    assert adapter.branch_of(f"{layer}_3x3", 0) is None


def test_published_indices(adapter) -> None:  # type: ignore[no-untyped-def]
    assert adapter.branch_of("mixed3b", 379) == ("mixed3b_5x5", 59)
    assert adapter.branch_of("mixed4c", 447) == ("mixed4c_5x5", 63)
    # The articles' short names are aliases of the same activation point.
    assert adapter.branch_of("4c", 447) == ("mixed4c_5x5", 63)
    assert adapter.layer("3b").channels == 480
    assert adapter.weights("3a", "3b") is not None


def test_kernel_slices_are_raw_parameters(adapter) -> None:  # type: ignore[no-untyped-def]
    for src, dst, p in [
        ("mixed3a", "mixed3b_3x3_bottleneck_pre_relu", "mixed3b_3x3_bottleneck_pre_relu_conv"),
        ("mixed3b_5x5_bottleneck", "mixed3b_5x5_pre_relu", "mixed3b_5x5_pre_relu_conv"),
        ("conv2d1", "conv2d2", "conv2d2_pre_relu_conv"),
        ("input", "conv2d0_pre_relu", "conv2d0_pre_relu_conv"),
    ]:
        w = adapter.weights(src, dst)
        assert torch.equal(w, param(adapter, p + ".weight"))


def test_fast_path_is_the_bottleneck_einsum(adapter) -> None:  # type: ignore[no-untyped-def]
    block = adapter.weight_block("mixed3a", "mixed3b")
    assert block.weight.shape == (480, 256, 5, 5)
    assert block.stride == (1, 1) and block.offset == (-2, -2)
    w5 = param(adapter, "mixed3b_5x5_pre_relu_conv.weight")  # [96, 32, 5, 5]
    wb = param(adapter, "mixed3b_5x5_bottleneck_pre_relu_conv.weight")[:, :, 0, 0]
    expected = torch.zeros(96, 256, 5, 5)
    for o in range(96):
        for b in range(32):
            expected[o] += w5[o, b][None] * wb[b][:, None, None]
    assert torch.allclose(block.weight[320:416], expected, atol=1e-6)
    # 3x3 branch: centred in the 5x5 window.
    w3 = param(adapter, "mixed3b_3x3_pre_relu_conv.weight")
    wb3 = param(adapter, "mixed3b_3x3_bottleneck_pre_relu_conv.weight")[:, :, 0, 0]
    exp3 = torch.einsum("obhw,bi->oihw", w3, wb3)
    assert torch.allclose(block.weight[128:320, :, 1:4, 1:4], exp3, atol=1e-6)
    assert torch.count_nonzero(block.weight[128:320, :, 0]) == 0
    # 1x1 branch: the raw weight at the centre only.
    w1 = param(adapter, "mixed3b_1x1_pre_relu_conv.weight")[:, :, 0, 0]
    assert torch.equal(block.weight[:128, :, 2, 2], w1)
    # pool_reduce: its 1x1 weight spread evenly (1/9) over the 3x3 pooling window.
    wp = param(adapter, "mixed3b_pool_reduce_pre_relu_conv.weight")[:, :, 0, 0]
    spread = block.weight[416:, :, 1:4, 1:4]
    assert torch.allclose(spread, (wp / 9)[:, :, None, None].expand_as(spread), atol=1e-7)
    assert torch.count_nonzero(block.weight[416:, :, 0]) == 0


def test_cache_returns_same_tensor(adapter) -> None:  # type: ignore[no-untyped-def]
    assert adapter.weights("mixed3a", "mixed3b") is adapter.weights("mixed3a", "mixed3b")


@pytest.mark.parametrize(
    ("src", "dst"),
    [("mixed3a", "mixed3b"), ("conv2d2", "mixed3a"), ("mixed3a_pool", "mixed3a")],
)
def test_fast_path_equals_impulse_probe(adapter, src: str, dst: str) -> None:  # type: ignore[no-untyped-def]
    g = adapter.graph
    fast = compose(g, adapter.node(src), adapter.node(dst))
    slow = probe(g, adapter.node(src), adapter.node(dst))
    assert fast.stride == slow.stride and fast.offset == slow.offset
    scale = fast.weight.abs().max()
    assert torch.allclose(fast.weight, slow.weight, atol=1e-5 * float(scale))


def _linear_mixed(adapter, name: str, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Hand-written linearised mixed layer: no ReLU, no bias, avg-pool for max-pool."""

    def w(part: str) -> torch.Tensor:
        return param(adapter, f"{name}_{part}_pre_relu_conv.weight")

    b1 = F.conv2d(x, w("1x1"))
    b3 = F.conv2d(F.pad(F.conv2d(x, w("3x3_bottleneck")), (1, 1, 1, 1)), w("3x3"))
    b5 = F.conv2d(F.pad(F.conv2d(x, w("5x5_bottleneck")), (2, 2, 2, 2)), w("5x5"))
    bp = F.conv2d(F.avg_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 1), w("pool_reduce"))
    return torch.cat([b1, b3, b5, bp], 1)


def test_expanded_weights_equal_jacobian_mixed3b(adapter) -> None:  # type: ignore[no-untyped-def]
    block = adapter.weight_block("mixed3a", "mixed3b")
    # Units from every branch (a full Jacobian is 480 backward passes).
    units = [0, 127, 128, 200, 319, 320, 379, 415, 416, 479]
    x0 = torch.zeros(1, 256, 5, 5)
    jac = torch.autograd.functional.jacobian(
        lambda x: _linear_mixed(adapter, "mixed3b", x)[0, units, 2, 2], x0, vectorize=True
    )  # [units, 1, 256, 5, 5]: output at the centre, input around it
    expected = jac[:, 0]
    got = block.weight[units]
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_expanded_weights_equal_jacobian_through_strided_pool(adapter) -> None:  # type: ignore[no-untyped-def]
    """conv2d2 -> mixed3a: LRN dropped, -inf pad + max-pool 3x3/2 become 0 pad + avg-pool."""
    block = adapter.weight_block("conv2d2", "mixed3a")
    assert block.stride == (2, 2)
    (kh, kw), (oy, ox) = block.kernel_size, block.offset
    y0, size = 4, 20

    def f(x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 3, 2)
        return _linear_mixed(adapter, "mixed3a", pooled)[0, :, y0, y0]

    jac = torch.autograd.functional.jacobian(f, torch.zeros(1, 192, size, size), vectorize=True)
    r0, c0 = 2 * y0 + oy, 2 * y0 + ox
    expected = jac[:, 0, :, r0 : r0 + kh, c0 : c0 + kw]
    tol = 1e-5 * float(expected.abs().max())
    assert torch.allclose(block.weight, expected, rtol=1e-5, atol=tol)
    # Nothing outside the kernel window.
    outside = jac[:, 0].clone()
    outside[:, :, r0 : r0 + kh, c0 : c0 + kw] = 0
    assert torch.count_nonzero(outside) == 0


def test_upstream(adapter) -> None:  # type: ignore[no-untyped-def]
    assert adapter.is_upstream("mixed3a", "mixed3b")
    assert adapter.is_upstream("conv2d0", "mixed5b")
    assert not adapter.is_upstream("mixed3b", "mixed3a")
    assert not adapter.is_upstream("mixed3b_3x3", "mixed3b_5x5")
    assert not adapter.is_upstream("mixed3b", "mixed3b")


def test_unknown_layer_did_you_mean(adapter) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DiagnosticError) as err:
        adapter.layer("mixed3c")
    (d,) = err.value.diagnostics
    assert d.code == "E201"
    assert "mixed3a" in (d.help or "") or "mixed3b" in (d.help or "")


def test_no_weights_message_names_url_and_flag(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(DiagnosticError) as err:
        load_model("inceptionv1")
    (d,) = err.value.diagnostics
    assert d.code == "E210"
    assert WEIGHTS_URL in (d.help or "")
    assert "--weights" in (d.help or "")


def test_layers_listing(adapter) -> None:  # type: ignore[no-untyped-def]
    text = format_layers(adapter)
    assert "mixed4c " in text and "512" in text
    assert "mixed3b_5x5_bottleneck" in text
    assert "320-415 mixed3b_5x5" in text
    names = [layer.name for layer in adapter.layers()]
    assert names.index("conv2d0") < names.index("mixed3a") < names.index("maxpool4")
    assert names.index("maxpool4") < names.index("mixed4a") < names.index("mixed5b")


def test_huge_blocks_are_refused(adapter) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DiagnosticError) as err:
        adapter.weights("conv2d0", "mixed5b")
    (d,) = err.value.diagnostics
    assert d.code == "E216" and "GiB" in d.message


def test_aliases_prefer_lucid_names(adapter) -> None:  # type: ignore[no-untyped-def]
    aliases = adapter.aliases()
    assert aliases["mixed3b_5x5_pre_relu_conv"] == "mixed3b_5x5_pre_relu"
    assert aliases["4c"] == "mixed4c"
    text = format_layers(adapter)
    assert "mixed3b_5x5_pre_relu " in text and "(also mixed3b_5x5_pre_relu_conv)" in text


def test_input_shape_and_preprocess(adapter) -> None:  # type: ignore[no-untyped-def]
    assert adapter.input_shape == (3, 224, 224)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(adapter.preprocess(x), x * 255 - 117)
