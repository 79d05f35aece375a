"""bind(): features located in a model, errors collected, kernels between features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from circuitdsl.language.diagnostics import DiagnosticError, Span
from circuitdsl.language.ir import Circuit, Claim, Family, Feature, Param
from circuitdsl.language.kinds import SignClaim, WithinClaim
from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.bind import bind
from tests.models.factories import small_cnn

_EXC = SignClaim("excites")


def span(line: int) -> Span:
    return Span("x.circ", line, 1, line, 10)


def feat(name: str, layer: str, channels, coefficients=None, family=None, line=1):  # type: ignore[no-untyped-def]
    coefficients = coefficients or [1.0] * len(channels)
    return Feature(
        name, layer, tuple(channels), tuple(coefficients), family=family, span=span(line)
    )


def circuit(features, families=(), claims=()):  # type: ignore[no-untyped-def]
    return Circuit("t", None, (), None, tuple(features), tuple(families), tuple(claims))


@pytest.fixture(scope="module")
def adapter():  # type: ignore[no-untyped-def]
    model = small_cnn().eval()
    return TracedAdapter("small", model, weights_path=None, example_input=torch.zeros(1, 1, 28, 28))


def test_bind_and_kernels(adapter) -> None:  # type: ignore[no-untyped-def]
    members = [
        Feature(
            f"fam[{c}]",
            "features.0",
            (c,),
            (1.0,),
            family="fam",
            params=(Param("angle", "angle", 10.0 * c),),
            span=span(3),
        )
        for c in (1, 2)
    ]
    c = circuit(
        [
            feat("a", "features.0", [3]),
            feat("b", "features.3", [5]),
            feat("d", "features.3", [1, 7], [0.5, -2.0]),
            *members,
        ],
        [Family("fam", "features.0", (("angle", "angle"),), ("fam[1]", "fam[2]"), span=span(2))],
        [
            Claim("c1", "sign", "a -> b", edges=(("a", "b"),), span=span(5), payload=_EXC),
            Claim("c2", "sign", "fam -> d", edges=(("fam", "d"),), span=span(6), payload=_EXC),
        ],
    )
    bound = bind(c, adapter)
    block = bound.block("features.0", "features.3")
    assert block.shape == (16, 8, 6, 6)  # 3x3 conv after a 2x2/2 pool: 2*2 + 2 = 6
    assert torch.equal(bound.kernel("a", "b", crop=False), block[5, 3])
    expected = 0.5 * block[1, 3] - 2.0 * block[7, 3]
    assert torch.allclose(bound.kernel("a", "d", crop=False), expected)
    assert torch.allclose(
        bound.all_inputs("features.0", "d", crop=False), 0.5 * block[1] - 2 * block[7]
    )
    assert [m.name for m in bound.members("fam")] == ["fam[1]", "fam[2]"]
    assert bound.layer_of("fam") == "features.0"
    assert bound.features["d"].coefficients == (0.5, -2.0)
    geo = bound.geometry("features.0", "features.3")
    assert geo.stride == (2, 2)


def test_all_binding_errors_at_once(adapter) -> None:  # type: ignore[no-untyped-def]
    c = circuit(
        [
            feat("a", "features.0", [3], line=1),
            feat("b", "feature.3", [5], line=2),
            feat("c", "features.3", [16], line=3),
            feat("e", "features.3", [2], line=4),
        ],
        claims=[Claim("back", "sign", "e -> a", edges=(("e", "a"),), span=span(9), payload=_EXC)],
    )
    with pytest.raises(DiagnosticError) as err:
        bind(c, adapter)
    diags = err.value.diagnostics
    assert [d.code for d in diags] == ["E201", "E202", "E203"]
    unknown, out_of_range, not_upstream = diags
    assert unknown.span == span(2) and "`features.3`" in (unknown.help or "")
    assert "16 channels" in out_of_range.message and out_of_range.span == span(3)
    assert not_upstream.span == span(9)


def test_family_with_unknown_layer_reported_once(adapter) -> None:  # type: ignore[no-untyped-def]
    members = [feat(f"f[{i}]", "nope", [i], family="f", line=4 + i) for i in range(3)]
    c = circuit(members, [Family("f", "nope", (), tuple(m.name for m in members), span=span(3))])
    with pytest.raises(DiagnosticError) as err:
        bind(c, adapter)
    (d,) = err.value.diagnostics
    assert d.code == "E201" and d.span == span(3)


def test_within_and_banding_layers_checked(adapter) -> None:  # type: ignore[no-untyped-def]
    c = circuit(
        [feat("a", "features.0", [3])],
        claims=[
            Claim("w", "within", "a within x", subjects=("a",), payload=WithinClaim("featurs.0"))
        ],
    )
    with pytest.raises(DiagnosticError) as err:
        bind(c, adapter)
    assert err.value.diagnostics[0].code == "E201"


class Branches(nn.Module):
    """A concat of a 1x1 and a 3x3 branch: kernels crop to each unit's own window."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 1)
        self.one = nn.Conv2d(4, 3, 1)
        self.three = nn.Conv2d(4, 5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        return torch.cat([self.one(h), self.three(h)], 1)


def test_kernels_crop_to_the_units_own_window() -> None:
    torch.manual_seed(0)
    model = Branches().eval()
    adapter = TracedAdapter("br", model, weights_path=None, example_input=torch.zeros(1, 2, 8, 8))
    cat_layer = "cat"  # a function in the top-level forward: named by its fx node
    assert adapter.layer(cat_layer).kind == "concat"
    c = circuit(
        [
            feat("s", "stem", [1]),
            feat("u1", cat_layer, [2]),
            feat("u3", cat_layer, [4]),
        ]
    )
    bound = bind(c, adapter)
    assert bound.block("stem", cat_layer).shape == (8, 4, 3, 3)
    k1 = bound.kernel("s", "u1")
    assert k1.shape == (1, 1) and torch.equal(k1[0, 0], model.one.weight[2, 1, 0, 0].detach())
    k3 = bound.kernel("s", "u3")
    assert k3.shape == (3, 3) and torch.equal(k3, model.three.weight[1, 1].detach())
    assert bound.all_inputs("stem", "u1").shape == (4, 1, 1)
    assert adapter.branch_of(cat_layer, 4) == ("three", 1)


def test_no_kernel_form_is_e216(adapter) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DiagnosticError) as err:
        adapter.weights("features.0", "head")
    (d,) = err.value.diagnostics
    assert d.code == "E216" and "flatten" in d.message
    with pytest.raises(DiagnosticError) as err:
        adapter.weights("features.3", "features.0")
    assert err.value.diagnostics[0].code == "E203"


def test_probe_through_the_adapter(adapter) -> None:  # type: ignore[no-untyped-def]
    fast = adapter.block("features.0", "features.3")
    slow = adapter.block("features.0", "features.3", method="probe")
    assert fast.offset == slow.offset == (-2, -2) and fast.stride == (2, 2)
    assert torch.allclose(fast.weight, slow.weight, atol=1e-6)


def test_family_edges_expand_to_member_pairs(adapter) -> None:  # type: ignore[no-untyped-def]
    members = [feat(f"f[{c}]", "features.0", [c], family="f") for c in (0, 1)]
    c = circuit(
        [*members, feat("t", "features.3", [2])],
        [Family("f", "features.0", (), ("f[0]", "f[1]"), span=span(1))],
    )
    bound = bind(c, adapter)
    assert bound.pairs("f", "t") == [("f[0]", "t"), ("f[1]", "t")]
    acts = bound.activations(torch.randn(1, 1, 28, 28), ["features.0", "features.3"])
    assert acts["features.3"].shape == (1, 16, 14, 14)


def test_binding_asks_the_model_once_per_layer_pair(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Binding is linear in the claims: names come from indexes, and the model is asked
    whether a source feeds a target once per layer pair, not once per claim."""
    import circuitdsl
    from circuitdsl.models.registry import load_model

    adapter = load_model("curvenet")
    calls: list[tuple[str, str]] = []
    orig = type(adapter).is_upstream

    def counting(self, a: str, b: str) -> bool:  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return orig(self, a, b)

    monkeypatch.setattr(type(adapter), "is_upstream", counting)
    lines = ["circuit b"]
    for i in range(300):
        lines += [f"feature f{i} = conv1:{i % 16}", f"feature g{i} = conv2:{i % 32}"]
        lines.append(f"f{i} -> g{i} : excites")
    lines.append("feature h = conv3:0")
    lines.append("g0 -> h : excites")
    bound = bind(circuitdsl.loads("\n".join(lines)).circuit, adapter)
    assert len(bound.features) == 601
    assert sorted(set(calls)) == sorted(calls) == [("conv1", "conv2"), ("conv2", "conv3")]
