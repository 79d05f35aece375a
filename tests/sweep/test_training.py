"""Checkpoints saved during training, and the figure of a circuit across them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from circuitdsl.render.training import formation, plot_training, training_html
from circuitdsl.sweep import expand_checkpoints, step_of
from circuitdsl.zoo.train import main, train


def test_checkpoints_during_training(tmp_path: Path) -> None:
    plain, _ = train("curvenet", seed=5, steps=5)
    model, _ = train(
        "curvenet", seed=5, steps=5, checkpoint_every=2, checkpoint_dir=tmp_path / "run"
    )
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [f"step_00000{s}.safetensors" for s in (0, 2, 4, 5)]  # init, every 2, last
    # Saving draws no random numbers: the same final weights as without checkpoints.
    final = load_file(str(tmp_path / "run" / "step_000005.safetensors"))
    for k, v in plain.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
        assert torch.equal(v, final[k])
    first = load_file(str(tmp_path / "run" / "step_000000.safetensors"))
    assert not torch.equal(first["conv1.weight"], final["conv1.weight"])
    # Nothing half-written is left behind, and a sweep finds them in step order.
    assert not list((tmp_path / "run").glob(".*"))
    found = expand_checkpoints(str(tmp_path / "run" / "*.safetensors"))
    assert [step_of(p) for p in found] == [0, 2, 4, 5]


def test_train_cli_checkpoint_folder(tmp_path: Path) -> None:
    assert (
        main(
            [
                "curvenet",
                "--seed",
                "2",
                "--steps",
                "3",
                "--checkpoint-every",
                "3",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "curvenet_seed2").iterdir()) == [
        "step_000000.safetensors",
        "step_000003.safetensors",
    ]
    assert (tmp_path / "curvenet_seed2.safetensors").is_file()


def _rows() -> list[dict[str, object]]:
    # Claim a holds from step 20 on, b only at 30; checkpoint 40 failed to load.
    table = {
        ("a", 0): ("fail", 0.2),
        ("a", 10): ("pass", 1.5),
        ("a", 20): ("pass", 1.4),
        ("a", 30): ("pass", 1.6),
        ("b", 0): ("fail", -0.1),
        ("b", 10): ("fail", -0.5),
        ("b", 20): ("fail", -0.9),
        ("b", 30): ("pass", -1.2),
    }
    rows: list[dict[str, object]] = [
        {
            "id": cid,
            "step": s,
            "status": st,
            "z": z,
            "kind": "sign",
            "text": f"x -> {cid} : {'excites' if cid == 'a' else 'inhibits'}",
            "z_expected": ">= 1" if cid == "a" else "<= -1",
        }
        for (cid, s), (st, z) in table.items()
    ]
    rows += [{"id": c, "step": 40, "status": "error", "kind": "sign", "text": ""} for c in "ab"]
    return rows


def test_formation() -> None:
    info = formation(_rows())
    assert info["steps"] == [0, 10, 20, 30]  # the all-error checkpoint left out
    assert info["share"] == {0: 0.0, 10: 0.5, 20: 0.5, 30: 1.0}
    assert info["formed"] == 30
    assert info["claims"] == {"a": 10, "b": 30}
    assert formation(_rows(), share=0.5)["formed"] == 10


def test_plot_and_html(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import circuitdsl

    out = tmp_path / "t.png"
    plot_training(_rows(), out, accuracy={0: 0.1, 30: 0.9})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = circuitdsl.loads(
        "circuit c\nfeature x = conv1:0\nfeature a = conv2:1\nx -> a : excites\n"
    )
    page = training_html(spec.circuit, _rows(), None)
    assert "every claim holds from step 30 on" in page
    assert page.index('class="training"') < page.index("<h2>Diagram</h2>")
    assert "data:image/png;base64," in page
