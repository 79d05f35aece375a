"""`circ check` with several models (universality table) and `--device`."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdsl.cli import main

SPEC = """circuit uni
model curvenet
family curve(orientation: angle) = top 2 of conv2 by curve(radius = 8) over orientation
expect curve prefers orientation self.orientation ± 10deg on curve(radius = 8)
expect curve no echo on curve(orientation = self.orientation + 180deg)
"""


def test_universality_table_and_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "uni.circ"
    spec.write_text(SPEC)
    code = main(["check", str(spec), "--model", "curvenet", "--model", "curvenet-seed1"])
    out = capsys.readouterr().out
    assert "universality: claims x models" in out
    header = next(line for line in out.splitlines() if line.startswith("claim "))
    assert "curvenet" in header and "curvenet-seed1" in header
    # chosen members line up by rank; each cell names the channel it stands for
    row = next(line for line in out.splitlines() if line.startswith("curve#1.prefers_curve"))
    assert row.count("pass") == 2  # a unit chosen by its best orientation prefers it
    assert "selected: curve = top 2 of conv2" in out
    # the echo claims fail on at least one model (measured: echo_ratio 0.41 on seed 0)
    assert code == 1
    assert "claims hold on all 2 models" in out


def test_device_cuda_without_gpu_is_a_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    spec = tmp_path / "uni.circ"
    spec.write_text(SPEC)
    code = main(["check", str(spec), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "torch sees no GPU" in err and "Traceback" not in err
