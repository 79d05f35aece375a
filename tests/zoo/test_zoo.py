"""The shipped models: registry, weight files, recorded accuracy, reproducible training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from circuitdsl.zoo import ZOO, get_zoo_entry, load_zoo_model
from circuitdsl.zoo.data import curve_eval_set, curve_task_batch, fashion_dir, load_fashion_mnist
from circuitdsl.zoo.train import accuracy, main, save, train


@pytest.mark.parametrize("name", list(ZOO))
def test_shipped_file_matches_factory(name: str) -> None:
    entry = ZOO[name]
    path = entry.weights_path()
    assert path.is_file(), f"missing shipped weights {path}"
    assert path.stat().st_size < 1_000_000
    state = load_file(str(path))
    expected = entry.factory().state_dict()
    assert set(state) == set(expected)
    for key, tensor in expected.items():
        assert state[key].shape == tensor.shape, key
    for layer in entry.layers:
        entry.factory().get_submodule(layer)  # every listed layer exists
    meta = entry.metadata()
    assert meta["weights"] == entry.weights
    for key in ("task", "accuracy", "seed", "training_time_s", "torch_version", "command"):
        assert key in meta


@pytest.mark.parametrize("name", [n for n in ZOO if n.startswith("curvenet")])
def test_curvenet_reproduces_recorded_accuracy(name: str) -> None:
    entry = ZOO[name]
    meta = entry.metadata()
    model = load_zoo_model(name)
    assert not model.training
    x, y = curve_eval_set(meta["check_images"])
    acc = accuracy(model, x, y)
    assert acc == pytest.approx(meta["accuracy_check"], abs=0.01)
    assert meta["accuracy"] > 0.8


@pytest.mark.skipif(
    not (fashion_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashionnet_reproduces_recorded_accuracy() -> None:
    meta = ZOO["fashionnet"].metadata()
    x, y = load_fashion_mnist("test")
    n = meta["check_images"]
    acc = accuracy(load_zoo_model("fashionnet"), x[:n], y[:n])
    assert acc == pytest.approx(meta["accuracy_check"], abs=0.01)
    assert meta["accuracy"] > 0.8


def test_training_is_deterministic(tmp_path: Path) -> None:
    a, meta_a = train("curvenet", seed=3, steps=5)
    b, _ = train("curvenet", seed=3, steps=5)
    c, _ = train("curvenet", seed=4, steps=5)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.state_dict()["conv1.weight"], c.state_dict()["conv1.weight"])
    path = save(a, meta_a, tmp_path)
    again = save(b, meta_a, tmp_path / "again")
    assert path.read_bytes() == again.read_bytes()  # the file, not just the tensors
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["command"] == "python -m circuitdsl.zoo.train curvenet --seed 3 --steps 5"
    reloaded = load_zoo_model("curvenet", path)
    assert torch.equal(reloaded.conv1.weight, a.conv1.weight)


def test_train_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curvenet", "--seed", "1", "--steps", "2", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "curvenet_seed1.safetensors").is_file()
    assert "accuracy" in capsys.readouterr().out


def test_task_batches_are_deterministic_and_balanced() -> None:
    x1, y1 = curve_task_batch(64, torch.Generator().manual_seed(7))
    x2, y2 = curve_task_batch(64, torch.Generator().manual_seed(7))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (64, 3, 32, 32) and 0 <= float(x1.min()) <= float(x1.max()) <= 1
    assert int((y1 < 8).sum()) == 48  # curve_fraction 0.75


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="did you mean `curvenet`"):
        get_zoo_entry("curvnet")
    # a wrong --weights path is the user's typo: retraining would not help (issue 15)
    with pytest.raises(FileNotFoundError, match="check the path given to --weights") as info:
        load_zoo_model("curvenet", tmp_path / "nope.safetensors")
    assert "zoo.train" not in str(info.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_zoo_model("curvenet", bad)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv1.weight": torch.zeros(2, 2)}, str(wrong))
    with pytest.raises(ValueError, match="does not fit"):
        load_zoo_model("curvenet", wrong)


def test_fashion_missing_package_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIRCUITDSL_FASHION_MNIST", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("train")


def test_docs_have_a_card_for_every_model() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "zoo.md").read_text()
    for name, entry in ZOO.items():
        assert f"`{name}`" in doc
        assert entry.metadata()["command"] in doc
