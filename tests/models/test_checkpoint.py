"""Weight files and model names: every way they can be wrong gets a diagnostic."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.models.base import ModelAdapter, adapter_from_module
from circuitdsl.models.checkpoint import read_state_dict
from circuitdsl.models.registry import load_model, register_model
from tests.models.factories import small_cnn

FACTORY = "tests.models.factories:small_cnn"


def _diag(exc: pytest.ExceptionInfo[DiagnosticError]):  # type: ignore[no-untyped-def]
    (d,) = exc.value.diagnostics
    return d


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.pt"
    torch.save(small_cnn().state_dict(), path)
    return path


def test_factory_model_loads_and_binds_layers(good_file: Path) -> None:
    adapter = load_model(FACTORY, good_file)
    names = [layer.name for layer in adapter.layers()]
    assert names.index("features.0") < names.index("features.3") < names.index("head")
    assert adapter.layer("features.3").channels == 16
    assert adapter.layer("features.3").kind == "conv"  # BatchNorm folded in
    assert adapter.weights_path == str(good_file)
    acts = adapter.activations(torch.randn(2, 1, 28, 28), ["features.2", "head"])
    assert acts["features.2"].shape == (2, 8, 14, 14) and acts["head"].shape == (2, 10)


def test_safetensors_and_wrapped_checkpoints(tmp_path: Path) -> None:
    state = small_cnn().state_dict()
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    assert read_state_dict(st).keys() == state.keys()
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state, "epoch": 3}, wrapped)
    assert read_state_dict(wrapped).keys() == state.keys()
    load_model(FACTORY, st)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        load_model(FACTORY, tmp_path / "nope.pt")
    d = _diag(err)
    assert d.code == "E210" and "nope.pt" in d.message


def test_truncated_file(tmp_path: Path, good_file: Path) -> None:
    cut = tmp_path / "cut.pt"
    data = good_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DiagnosticError) as err:
        load_model(FACTORY, cut)
    assert _diag(err).code == "E211"
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(DiagnosticError) as err:
        read_state_dict(empty)
    assert _diag(err).code == "E211"


class _Evil:
    """Unpickling this would create a file: a stand-in for arbitrary code."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.target, "w"))


@pytest.mark.parametrize("zipped", [True, False])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path: Path, zipped: bool) -> None:
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pt"
    payload = {"features.0.weight": _Evil(str(marker))}
    if zipped:
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()
    with pytest.raises(DiagnosticError) as err:
        load_model(FACTORY, evil)
    assert _diag(err).code == "E213"
    assert not marker.exists()


def test_wrong_shapes_listed_by_name(tmp_path: Path) -> None:
    state = small_cnn().state_dict()
    state["features.3.weight"] = torch.zeros(16, 8, 5, 5)
    state["head.bias"] = torch.zeros(12)
    del state["features.0.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(DiagnosticError) as err:
        load_model(FACTORY, path)
    d = _diag(err)
    assert d.code == "E212"
    for key in ("features.3.weight", "head.bias", "features.0.bias", "extra.weight"):
        assert f"`{key}`" in d.message
    assert "[16, 8, 5, 5]" in d.message and "[16, 8, 3, 3]" in d.message
    assert d.help


def test_weights_of_another_model(tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2))
    path = tmp_path / "other.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(DiagnosticError) as err:
        load_model(FACTORY, path)
    d = _diag(err)
    assert d.code == "E212" and "another model" in d.message


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(DiagnosticError) as err:
        read_state_dict(path)
    assert _diag(err).code == "E211"


def test_unknown_model_did_you_mean() -> None:
    with pytest.raises(DiagnosticError) as err:
        load_model("inceptonv1")
    d = _diag(err)
    assert d.code == "E200" and "`inceptionv1`" in (d.help or "")
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:resnet19")
    d = _diag(err)
    assert d.code == "E200" and "resnet18" in (d.help or "")


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("no_such_pkg_xyz.models:net", "cannot import"),
        ("tests.models.factories:smal_cnn", "no attribute"),
        ("tests.models.factories:broken", "factory exploded"),
        ("tests.models.factories:not_a_module", "not an `nn.Module`"),
    ],
)
def test_factory_errors(spec: str, text: str, good_file: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        load_model(spec, good_file)
    d = _diag(err)
    assert d.code == "E214" and text in d.message


def test_factory_without_weights() -> None:
    with pytest.raises(DiagnosticError) as err:
        load_model(FACTORY)
    assert _diag(err).code == "E210"


def test_registry(good_file: Path) -> None:
    from circuitdsl.models.module import build
    from circuitdsl.models.registry import MODEL_REGISTRY

    register_model("small-test", lambda w: build(FACTORY, w))
    try:
        assert load_model("small-test", good_file).layer("features.0").channels == 8
    finally:
        MODEL_REGISTRY.pop("small-test")

    def zoo_like(weights: Path | None) -> ModelAdapter:
        module = small_cnn()
        if weights is not None:
            module.load_state_dict(torch.load(weights, weights_only=True))
        return adapter_from_module("zoo-like", module, input_shape=(1, 28, 28))

    register_model("zoo-like", zoo_like)
    try:
        adapter = load_model("zoo-like", good_file)
        assert adapter.layer("features.3").channels == 16
        assert "zoo-like" in (_diag_of(lambda: load_model("zoo-lik")).help or "")
    finally:
        MODEL_REGISTRY.pop("zoo-like")


def _diag_of(fn):  # type: ignore[no-untyped-def]
    with pytest.raises(DiagnosticError) as err:
        fn()
    (d,) = err.value.diagnostics
    return d


def test_torchvision_file_roundtrip(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(model.state_dict(), path)
    adapter = load_model("torchvision:resnet18", path)
    assert torch.equal(adapter.module.conv1.weight, model.conv1.weight)
    assert adapter.layer("layer3.1.conv2").channels == 256


def test_torchvision_weights_from_torch_cache(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import torchvision
    from torchvision.models import ResNet18_Weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:resnet18")
    assert _diag(err).code == "E210" and "--weights" in (_diag(err).help or "")
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    ckpt = tmp_path / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    ckpt.parent.mkdir()
    torch.save(model.state_dict(), ckpt)
    adapter = load_model("torchvision:resnet18")
    assert adapter.weights_path == str(ckpt)
    assert torch.equal(adapter.module.fc.weight, model.fc.weight)


def test_inceptionv1_rejects_a_bad_file(tmp_path: Path) -> None:
    junk = tmp_path / "inception5h.pth"
    junk.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DiagnosticError) as err:
        load_model("inceptionv1", junk)
    assert _diag(err).code == "E211"
    other = tmp_path / "other.pth"
    torch.save(small_cnn().state_dict(), other)
    with pytest.raises(DiagnosticError) as err:
        load_model("inceptionv1", other)
    d = _diag(err)
    assert d.code == "E212" and "another model" in d.message and "inceptionv1" in d.message


def test_safetensors_whose_header_looks_like_a_pickle(tmp_path: Path) -> None:
    """The 8-byte header length can begin with 0x80, a pickle's first byte."""
    state = {"w": torch.ones(2)}
    path = tmp_path / "weights.pt"
    for pad in range(300):
        save_file(state, str(path), metadata={"x": "y" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:  # pragma: no cover - the header length is controllable
        pytest.skip("could not make such a header")
    assert torch.equal(read_state_dict(path)["w"], torch.ones(2))


def test_input_shape_and_preprocess_of_other_models(good_file: Path) -> None:
    from circuitdsl.models.torchvision_models import build

    small = load_model(FACTORY, good_file)
    assert small.input_shape == (1, 28, 28)
    x = torch.rand(1, 1, 28, 28)
    assert torch.equal(small.preprocess(x), x)
    tv = build("alexnet", None, allow_random=True, input_size=96)
    rgb = torch.rand(1, 3, 4, 4)
    expected = (rgb - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor(
        [0.229, 0.224, 0.225]
    )[:, None, None]
    assert torch.allclose(tv.preprocess(rgb), expected)
