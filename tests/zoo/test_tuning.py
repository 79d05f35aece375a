"""Tuning measurements on planted models whose answers are known by construction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from circuitdsl.measure.stimuli import curve
from circuitdsl.measure.tuning import (
    centre_response,
    centre_unit,
    classify_channels,
    layer_activations,
    main,
    orientation_tuning,
    plot_tuning,
    receptive_field,
    sagitta,
)


def _zero_mean(k: torch.Tensor) -> torch.Tensor:
    return k - k.mean()


class Planted(nn.Module):
    """One 11x11 conv with hand-made kernels: horizontal, 45° and vertical lines, a curve."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv", nn.Conv2d(3, 4, 11, padding=5, bias=False))
        self.features.add_module("relu", nn.ReLU())
        i, j = torch.meshgrid(torch.arange(11), torch.arange(11), indexing="ij")
        horizontal = _zero_mean(((i == 5) & ((j - 5).abs() <= 3)).float())
        # 45°: bottom-left to top-right on screen, i.e. row + column constant
        diagonal = _zero_mean(((i + j == 10) & ((j - 5).abs() <= 2)).float())
        vertical = _zero_mean(((j == 5) & ((i - 5).abs() <= 3)).float())
        # a curve bulging upwards ("⌒") that is inhibited by the opposite curve ("⌣"), as
        # the Circuits articles found for InceptionV1's curve detectors
        up = curve(90.0, radius=4.0, span=120.0, width=1.0, size=11)[0, 0]
        down = curve(270.0, radius=4.0, span=120.0, width=1.0, size=11)[0, 0]
        kernels = torch.stack([horizontal, diagonal, vertical, up - down])
        with torch.no_grad():
            self.features.conv.weight.copy_(kernels[:, None].expand(-1, 3, -1, -1) / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted().eval()


def test_line_detectors_found_with_right_orientation(planted: Planted) -> None:
    res = orientation_tuning(planted, "features.conv", "line", size=21, length=7.0, width=1.0)
    assert res.period == 180.0
    pref = res.preferred.tolist()
    assert pref[0] == 0.0 and pref[1] == 45.0 and pref[2] == 90.0
    assert res.preferred_mean[0] == pytest.approx(0.0, abs=1.0) or res.preferred_mean[0] > 179
    assert float(res.preferred_mean[1]) == pytest.approx(45.0, abs=2.0)
    assert (res.selectivity[:3] > 0.4).all()
    # for a line detector "opposite" is the orthogonal line, which it does not like
    assert (res.echo[:3] < 0.3).all()


def test_curve_detector_prefers_its_orientation_without_echo(planted: Planted) -> None:
    res = orientation_tuning(planted, "features.relu", "curve", size=21, radius=4.0,
                             span=120.0, width=1.0)  # fmt: skip
    assert float(res.preferred[3]) == pytest.approx(90.0, abs=10.0)
    assert float(res.echo[3]) < 0.5
    # a symmetric line detector cannot tell a curve from the curve turned 180°
    assert float(res.echo[0]) == pytest.approx(1.0, abs=0.05)
    flat = orientation_tuning(planted, "features.relu", "curve", size=21, radius=10.0)
    assert float(flat.preferred[0]) % 180 == pytest.approx(90.0, abs=10.0)


def test_rotating_the_kernel_rotates_the_preference(planted: Planted) -> None:
    rotated = Planted().eval()
    with torch.no_grad():
        w = rotated.features.conv.weight
        w.copy_(torch.rot90(w, 1, dims=(-2, -1)))
    a = orientation_tuning(planted, "features.conv", "curve", size=21, radius=4.0, span=120.0)
    b = orientation_tuning(rotated, "features.conv", "curve", size=21, radius=4.0, span=120.0)
    shift = torch.remainder(b.preferred[3] - a.preferred[3], 360.0)
    assert float(shift) == pytest.approx(90.0, abs=5.0)


def test_crossed_parameters_are_averaged(planted: Planted) -> None:
    both = orientation_tuning(planted, "features.conv", "line", [0.0, 45.0], size=21,
                              length=[5.0, 9.0])  # fmt: skip
    five = orientation_tuning(planted, "features.conv", "line", [0.0, 45.0], size=21, length=5.0)
    nine = orientation_tuning(planted, "features.conv", "line", [0.0, 45.0], size=21, length=9.0)
    assert torch.allclose(both.responses, (five.responses + nine.responses) / 2, atol=1e-5)


def test_classify_planted(planted: Planted) -> None:
    calls = classify_channels(
        planted, "features.relu", size=21,
        line_params={"length": [6.3, 8.4], "width": 1.0},
        curve_params={"radius": [4.0, 5.0], "span": 120.0, "width": 1.0},
    )  # fmt: skip
    kinds = [c.kind for c in calls]
    assert kinds[0] == "line" and kinds[1] == "line" and kinds[2] == "line"
    assert calls[1].orientation == 45.0
    assert kinds[3] == "curve"
    assert calls[3].orientation == pytest.approx(90.0, abs=10.0)


def test_centre_response_of_even_and_odd_maps() -> None:
    acts = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert float(centre_response(acts)) == pytest.approx((5 + 6 + 9 + 10) / 4)
    odd = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert float(centre_response(odd)) == 4.0


def test_receptive_field_and_sagitta(planted: Planted) -> None:
    assert receptive_field(planted, "features.conv", size=21) == 11
    torch.manual_seed(0)  # random weights: a dead ReLU could hide part of the field
    two = nn.Sequential(nn.Conv2d(3, 2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(2, 2, 5, padding=2))  # fmt: skip
    assert receptive_field(two, "3", size=32) == 14  # 5, +1 for the pool, +4 x stride 2
    assert sagitta(5.0, 5.0) == pytest.approx(5 - (25 - 6.25) ** 0.5)
    assert sagitta(5.0, 30.0) == 5.0  # the whole half circle fits


def test_centre_unit_receptive_field() -> None:
    assert centre_unit((8, 8), (32, 32)) == (2.0, 2.0)  # stride 4: unit 4 looks at pixel 17.5
    assert centre_unit((7, 7), (28, 28)) == (0.0, 0.0)
    assert centre_unit((32, 16), (32, 32)) == (1.0, 0.5)


def test_offsets_take_the_best_position(planted: Planted) -> None:
    centred = orientation_tuning(planted, "features.conv", "line", [0.0], size=21, y=2.0)
    best = orientation_tuning(planted, "features.conv", "line", [0.0], size=21, y=2.0,
                              offsets=[-2.0, 0.0, 2.0])  # fmt: skip
    # the horizontal detector sees the line 2 px below its centre only when shifted back up
    assert float(best.responses[0, 0]) > float(centred.responses[0, 0])
    assert best.params["offsets"] == [-2.0, 0.0, 2.0]


def test_unknown_layer_lists_names(planted: Planted) -> None:
    with pytest.raises(ValueError, match=r"did you mean `features\.conv`"):
        layer_activations(planted, "features.cnv", torch.zeros(1, 3, 15, 15))


def test_plot_and_table(planted: Planted, tmp_path: Path) -> None:
    res = orientation_tuning(planted, "features.conv", "curve", size=21)
    path = plot_tuning(res, tmp_path / "p.png")
    assert path.stat().st_size > 0
    table = res.table()
    assert table.splitlines()[0].startswith("features.conv / curve")
    assert len(table.splitlines()) == 2 + 4
    assert res.to_dict()["channels"][0]["channel"] == res.order()[0]


def test_cli_on_shipped_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curvenet", "conv1", "--top", "3", "--plot", str(tmp_path / "t.png")]) == 0
    out = capsys.readouterr().out
    assert "conv1 / curve" in out
    assert (tmp_path / "t.png").is_file()
    assert main(["curvenet", "conv9"]) == 2
    assert "conv1" in capsys.readouterr().err
