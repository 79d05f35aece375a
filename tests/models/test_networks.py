"""Networks as researchers hold them: torchvision/timm by name, nn.Module objects,
checkpoints as saved (nested, prefixed, backbone-only), and the model's preprocessing.

Nothing is downloaded: every model is built with random weights and saved to tmp.
VGG16 is big (138M parameters), so only its `features` (14.7M) are ever built.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.models import Preprocess, load_model
from circuitdsl.models.preprocess import CAFFE, IMAGENET, PRESETS
from circuitdsl.models.probe import runner_for

ROOT = Path(__file__).parents[2]


def _diag(err: pytest.ExceptionInfo[DiagnosticError]):  # type: ignore[no-untyped-def]
    (d,) = err.value.diagnostics
    return d


@pytest.fixture(scope="module")
def vgg_features() -> dict[str, torch.Tensor]:
    """A random VGG16 `features` state dict, keyed as in `torchvision.models.vgg16()`."""
    import torchvision

    torch.manual_seed(0)
    feats = torchvision.models.vgg16(weights=None).features
    return {f"features.{k}": v for k, v in feats.state_dict().items()}


VGG_SPEC = """
circuit vgg
model torchvision:vgg16
feature a = features.0:3
feature b = features.2:5
feature c = features.5:7
a -> b : excites
b -> c : excites
"""


def _vgg_check(path: Path) -> None:
    adapter = load_model("torchvision:vgg16", path)
    assert sorted(adapter.missing_parameters) == [
        f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("bias", "weight")
    ]
    spec = circuitdsl.loads(VGG_SPEC)
    notes: list[str] = []
    report = check_spec(spec.circuit, adapter, note=notes.append)
    assert {c.status for c in report.claims} <= {"pass", "fail"}  # measured, not refused
    (line,) = notes
    assert "`classifier.*` (6)" in line and "skipped" in line
    # the loaded conv kernels are the file's
    w = adapter.weights("features.0", "features.2")
    assert w.shape == (64, 64, 3, 3)


def test_vgg16_from_a_features_only_file(
    tmp_path: Path, vgg_features: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "vgg16_features.pth"
    torch.save(vgg_features, path)
    _vgg_check(path)
    adapter = load_model("torchvision:vgg16", path)
    conv = adapter.module.get_submodule("features.28")
    assert torch.equal(conv.weight, vgg_features["features.28.weight"])


def test_vgg16_from_a_nested_file(tmp_path: Path, vgg_features: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "lightning.ckpt"
    torch.save({"epoch": 3, "global_step": 10, "state_dict": vgg_features}, path)
    _vgg_check(path)


def test_vgg16_from_a_prefixed_file(tmp_path: Path, vgg_features: dict[str, torch.Tensor]) -> None:
    # DataParallel around a Lightning module: `module.model.features.0.weight`, nested
    path = tmp_path / "prefixed.pth"
    torch.save({"model": {f"module.model.{k}": v for k, v in vgg_features.items()}}, path)
    _vgg_check(path)


def test_vgg16_from_a_submodule_state_dict(
    tmp_path: Path, vgg_features: dict[str, torch.Tensor]
) -> None:
    # `torch.save(vgg.features.state_dict())`: keys `0.weight`, the model's `features.0.weight`
    from safetensors.torch import save_file

    path = tmp_path / "features.safetensors"
    save_file({k.removeprefix("features."): v for k, v in vgg_features.items()}, str(path))
    _vgg_check(path)


def test_a_claim_that_needs_a_missing_parameter_names_it(
    tmp_path: Path, vgg_features: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "vgg16_features.pth"
    torch.save(vgg_features, path)
    spec = circuitdsl.loads(
        "model torchvision:vgg16\nfeature a = features.30:1\nfeature logit = classifier.0:3\n"
        "expect logit responds to line(orientation = 0deg)\n"
    )
    with pytest.raises(DiagnosticError) as err:
        check_spec(spec.circuit, "torchvision:vgg16", path, note=lambda _: None)
    d = _diag(err)
    assert d.code == "E217" and "`classifier.0.weight`" in d.message and d.span is not None
    # the adapter itself never serves weights or activations made of skipped zeros
    adapter = load_model("torchvision:vgg16", path)
    adapter.weights("features.28", "features.30")  # covered by the file
    with pytest.raises(DiagnosticError) as err:
        adapter.activations(torch.zeros(1, 3, 224, 224), ["classifier.0"])
    assert _diag(err).code == "E217"
    with pytest.raises(DiagnosticError) as err:
        adapter.weights("input", "classifier.0")
    assert _diag(err).code == "E217" and "from `input`" in _diag(err).message


def test_head_only_empty_and_foreign_checkpoints_are_refused(
    tmp_path: Path, vgg_features: dict[str, torch.Tensor]
) -> None:
    import torchvision

    head = {"classifier.0.weight": torch.zeros(4096, 25088), "classifier.0.bias": torch.zeros(4096)}
    torch.save(head, tmp_path / "head.pth")
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:vgg16", tmp_path / "head.pth")
    d = _diag(err)
    assert d.code == "E212" and "head-only" in d.message

    torch.save({}, tmp_path / "empty.pth")
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:vgg16", tmp_path / "empty.pth")
    assert _diag(err).code == "E212" and "no tensors" in _diag(err).message

    torch.save(torchvision.models.squeezenet1_0().state_dict(), tmp_path / "squeeze.pth")
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:vgg16", tmp_path / "squeeze.pth")
    assert "another model" in _diag(err).message

    # a gap (conv weights missing in the middle) is not a backbone: refused
    gappy = {k: v for k, v in vgg_features.items() if not k.startswith("features.10.")}
    torch.save(gappy, tmp_path / "gappy.pth")
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:vgg16", tmp_path / "gappy.pth")
    assert "`features.10.weight`" in _diag(err).message


def test_every_torchvision_classifier_by_name(tmp_path: Path) -> None:
    import torchvision

    from circuitdsl.models.torchvision_models import available

    names = available()
    assert names == torchvision.models.list_models(module=torchvision.models)
    assert {"mobilenet_v3_small", "convnext_tiny", "regnet_y_400mf", "vgg16"} <= set(names)
    adapter = load_model("torchvision:mobilenet_v3_small", allow_random=True)
    assert adapter.layer("features.1.block.0.0").kind == "conv"
    assert adapter.preprocess is IMAGENET
    # regnet's constructor computes with tensors, so it cannot be built on the meta device
    torch.save(torchvision.models.regnet_y_400mf().state_dict(), tmp_path / "regnet.pth")
    regnet = load_model("torchvision:regnet_y_400mf", tmp_path / "regnet.pth")
    assert regnet.layer("stem.0").channels == 32
    big = load_model("torchvision:inception_v3", allow_random=True)
    assert big.input_shape == (3, 299, 299)  # from the published weights' transforms
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:mobilenet_v3_smal", allow_random=True)
    assert "mobilenet_v3_small" in (_diag(err).help or "")


def test_timm_model_from_a_local_file(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ref = timm.create_model("resnet18", pretrained=False).eval()
    path = tmp_path / "timm_resnet18.pth"
    torch.save(ref.state_dict(), path)
    adapter = load_model("timm:resnet18", path)
    assert adapter.preprocess == IMAGENET and adapter.input_shape == (3, 224, 224)
    assert adapter.weights_path == str(path)
    x = torch.rand(2, 3, 64, 64)
    got = adapter.activations(x, ["layer1"])["layer1"]
    with torch.no_grad():
        want = ref.layer1(ref.maxpool(ref.act1(ref.bn1(ref.conv1(x)))))
    torch.testing.assert_close(got, want)
    from circuitdsl.models.timm_models import cached_checkpoint

    if cached_checkpoint(dict(ref.pretrained_cfg)) is None:
        with pytest.raises(DiagnosticError) as err:
            load_model("timm:resnet18")  # no file, nothing cached: never a download
        assert _diag(err).code == "E210"


def test_timm_missing_is_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(DiagnosticError) as err:
        load_model("timm:resnet18")
    assert "pip install timm" in (_diag(err).help or "")


def _sequential() -> nn.Sequential:
    torch.manual_seed(1)
    seq = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1)),
        nn.ReLU(),
    )
    with torch.no_grad():
        seq[0][2].weight[5, 1] = 1.0  # 0.0:1 -> 0.2:5 excites, planted
    seq.input_shape = (3, 48, 48)  # small stimuli keep the test fast
    return seq


SEQ_SPEC = """
circuit seq
feature a = 0.0:1
feature b = 0.2:5
a -> b : excites
expect b responds to line(orientation = 0deg)
"""


def test_an_nn_module_object_with_sequential_indices() -> None:
    spec = circuitdsl.loads(SEQ_SPEC)
    report = spec.check(_sequential(), preprocess="imagenet")
    assert report.result("a->b.excites").status == "pass"
    assert report.preprocess is not None and report.preprocess.startswith("imagenet")
    assert report.to_dict()["model"]["preprocess"] == report.preprocess
    assert report.model == "Sequential"


def _response(report: circuitdsl.api.Report) -> dict[str, float]:  # type: ignore[name-defined]
    (act,) = [c for c in report.claims if c.kind == "activation"]
    return act.measured


def test_preprocessing_reaches_the_model() -> None:
    """A known image through the one runner equals a hand-written forward pass."""
    from circuitdsl.models.module import from_module

    seq = _sequential().eval()
    adapter = from_module("seq", seq, preprocess="caffe", input_shape=(3, 16, 16))
    img = torch.linspace(0, 1, 3 * 16 * 16).reshape(1, 3, 16, 16)
    got = runner_for(adapter).centres(img, [adapter.node("0.2")])[adapter.node("0.2")]
    mean = torch.tensor([123.68, 116.779, 103.939])[:, None, None]
    x = img * 255 - mean  # Caffe: x * 255 minus the BGR means (in RGB order)
    conv1, conv2 = seq[0][0], seq[0][2]
    with torch.no_grad():
        h1 = F.relu(F.conv2d(x, conv1.weight, conv1.bias, padding=1))
        hand = F.conv2d(h1, conv2.weight, conv2.bias, padding=1)
    centre = hand[:, :, 7:9, 7:9].mean(dim=(2, 3))  # even map: the central 2x2
    torch.testing.assert_close(got, centre)

    # ImageNet mean/std, as the adapter declares them
    adapter.preprocess = IMAGENET
    got = runner_for(adapter).centres(img, [adapter.node("0.0")])[adapter.node("0.0")]
    m = torch.tensor(IMAGENET.mean)[:, None, None]
    s = torch.tensor(IMAGENET.std)[:, None, None]
    with torch.no_grad():
        hand = F.conv2d((img - m) / s, conv1.weight, conv1.bias, padding=1)
    torch.testing.assert_close(got, hand[:, :, 7:9, 7:9].mean(dim=(2, 3)))


def test_spec_cli_and_api_choose_the_preprocessing() -> None:
    from circuitdsl.models.module import from_module
    from circuitdsl.models.registry import MODEL_REGISTRY, register_model

    text = SEQ_SPEC.replace("circuit seq", "circuit seq\nmodel seq preprocess caffe")
    spec = circuitdsl.loads(text)
    assert spec.circuit.preprocess == "caffe"
    seq = _sequential()
    register_model("seq", lambda _: from_module("seq", seq))
    try:
        by_spec = check_spec(spec.circuit)  # the spec's model, with the spec's word
    finally:
        MODEL_REGISTRY.pop("seq")
    assert by_spec.preprocess is not None and by_spec.preprocess.startswith("caffe")
    other = check_spec(spec.circuit, seq)  # another model than the spec's: its own
    assert other.preprocess is not None and other.preprocess.startswith("none")
    by_api = spec.check(seq, preprocess="none")  # the caller's word wins over the spec's
    assert by_api.preprocess is not None and by_api.preprocess.startswith("none")
    # a different transform is a different measurement of the same unit
    assert _response(by_spec) != _response(by_api)
    # a callable: named after itself in the report
    halve = spec.check(seq, preprocess=lambda x: x / 2)
    assert halve.preprocess is not None and "lambda" in halve.preprocess


def test_preprocessing_that_does_not_fit_is_refused() -> None:
    grey = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    spec = circuitdsl.loads("feature a = 0:1\nexpect a responds to line(orientation = 0deg)\n")
    with pytest.raises(DiagnosticError) as err:
        spec.check(grey, preprocess="imagenet")  # 3 means for a 1-channel input
    assert _diag(err).code in ("E218",)


def test_presets_are_the_transforms_they_name() -> None:
    x = torch.rand(1, 3, 4, 4)
    assert set(PRESETS) == {"imagenet", "caffe", "lucent", "none"}
    torch.testing.assert_close(PRESETS["lucent"](x), x * 255 - 117)
    torch.testing.assert_close(PRESETS["none"](x), x)
    bgr = torch.tensor([103.939, 116.779, 123.68])
    torch.testing.assert_close(CAFFE(x), x * 255 - bgr.flip(0)[:, None, None])
    custom = Preprocess("mine", 2.0, (1.0,), (4.0,))
    torch.testing.assert_close(custom(x), (x * 2 - 1) / 4)
    assert "x * 2" in custom.describe()


def test_factory_next_to_the_spec_needs_no_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "mynets_rel.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),"
        " nn.Conv2d(4, 5, 3, padding=1))\n"
    )
    import importlib
    import sys

    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    (tmp_path / "w").mkdir()
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1))
    torch.save(ref.state_dict(), tmp_path / "w" / "net.pth")
    spec_path = tmp_path / "net.circ"
    spec_path.write_text("feature a = 0:1\nfeature b = 2:3\na -> b : excites\n")
    spec = circuitdsl.load(spec_path)
    for ref_name in ("mynets_rel:make", "mynets_rel.py:make"):
        report = check_spec(spec.circuit, ref_name, tmp_path / "w" / "net.pth")
        assert report.claims[0].status in ("pass", "fail")
    assert "mynets_rel" not in [Path(p).name for p in sys.path]  # the path is restored


def test_adapters_never_import_the_registry() -> None:
    """base <-> adapters had a hidden cycle; adapters import base, the registry them."""
    models = ROOT / "circuitdsl" / "models"
    for path in models.glob("*.py"):
        if path.name in ("registry.py", "__init__.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "circuitdsl.models.registry", path.name
                assert node.module != "circuitdsl.models" or path.name == "__init__.py", path.name


def test_callers_never_probe_adapters() -> None:
    """The ModelAdapter / Bound interfaces are complete: no getattr/hasattr stand-ins."""
    probes = ["getattr(adapter", "hasattr(adapter", "getattr(model", "hasattr(model"]
    probes += ["getattr(ctx", "getattr(bound", "getattr(self.bound"]
    for path in (ROOT / "circuitdsl").rglob("*.py"):
        text = path.read_text()
        for p in probes:
            assert p not in text, f"{path.relative_to(ROOT)}: {p}"


def test_module_versions_survive_unwrapping(tmp_path: Path) -> None:
    """`state_dict()._metadata` (module versions) travels through nesting and prefixes:
    torchvision's MNASNet refuses a state dict without it."""
    from collections import OrderedDict

    import torchvision

    state = torchvision.models.mnasnet0_5().state_dict()
    wrapped: OrderedDict[str, torch.Tensor] = OrderedDict(
        (f"module.{k}", v) for k, v in state.items()
    )
    wrapped._metadata = {  # type: ignore[attr-defined]
        (f"module.{k}" if k else "module"): v
        for k, v in state._metadata.items()  # type: ignore[attr-defined]
    }
    torch.save({"state_dict": wrapped}, tmp_path / "mnasnet.ckpt")
    adapter = load_model("torchvision:mnasnet0_5", tmp_path / "mnasnet.ckpt")
    assert adapter.layer("layers.0").kind == "conv"
    # without the versions, MNASNet's own loader objects: a diagnostic, not a traceback
    torch.save(OrderedDict(state), tmp_path / "bare.pth")
    with pytest.raises(DiagnosticError) as err:
        load_model("torchvision:mnasnet0_5", tmp_path / "bare.pth")
    assert _diag(err).code == "E212"
