"""`circ check` on networks as saved: per-model weights, --preprocess, backbone files.

SqueezeNet 1.1 (1.2M parameters, random weights saved to tmp) keeps these fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuitdsl.cli import main

SPEC = """circuit squeeze
model torchvision:squeezenet1_1
feature a = features.0:1
feature b = features.3.squeeze:2
a -> b : excites
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torchvision

    d = tmp_path_factory.mktemp("squeeze")
    out = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = torchvision.models.squeezenet1_1(weights=None)
        with torch.no_grad():  # a planted, known sign on seed 0, its opposite on seed 1
            model.features[3].squeeze.weight[2, 1] = 1.0 if seed == 0 else -1.0
        out[f"seed{seed}"] = d / f"seed{seed}.pth"
        torch.save(model.state_dict(), out[f"seed{seed}"])
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    out["backbone"] = d / "backbone.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in backbone.items()}}, out["backbone"])
    spec = d / "squeeze.circ"
    spec.write_text(SPEC)
    out["spec"] = spec
    return out


def test_each_model_its_own_weights_in_one_table(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    m = "torchvision:squeezenet1_1"
    seeds = [f"{m}={files['seed0']}", f"{m}={files['seed1']}"]
    code = main(["check", str(files["spec"]), "--model", seeds[0], "--model", seeds[1]])
    out = capsys.readouterr().out
    assert code == 1  # the claim holds on seed 0 and fails on seed 1
    table = out[out.index("universality") :]
    assert f"{m}=seed0.pth" in table and f"{m}=seed1.pth" in table
    row = next(line for line in table.splitlines() if line.startswith("a->b.excites"))
    assert row.split()[1] == "pass" and "FAIL" in row
    assert "0/1 claims hold on all 2 models" in table


def test_weights_still_serves_a_single_model(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(files["spec"]), "--weights", str(files["seed0"])]) == 0
    assert f"weights {files['seed0']}" in capsys.readouterr().out


def test_preprocess_flag_is_reported(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["check", str(files["spec"]), "--weights", str(files["seed0"]), "--format", "json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["model"]["preprocess"].startswith("imagenet")
    assert main([*args, "--preprocess", "caffe"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["preprocess"].startswith("caffe")


def test_a_backbone_file_checks_with_one_note(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", str(files["spec"]), "--weights", str(files["backbone"])])
    err = capsys.readouterr().err
    assert code in (0, 1)
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "`classifier.*` (2)" in notes[0] and "skipped" in notes[0]


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("torchvision:squeezenet1_1=no/such/file.pth", "E210"),
        ("=x.pth", "E300"),
        ("torchvision:squeezenet9", "E200"),
    ],
)
def test_bad_models_exit_2_with_one_paragraph(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], model: str, code: str
) -> None:
    assert main(["check", str(files["spec"]), "--model", model]) == 2
    err = capsys.readouterr().err
    assert code in err and "Traceback" not in err


def test_unknown_preprocess_word_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.circ"
    spec.write_text(SPEC.replace("squeezenet1_1", "squeezenet1_1 preprocess cafe"))
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "E218" in err and "bad.circ:2:" in err and "`caffe`" in err
