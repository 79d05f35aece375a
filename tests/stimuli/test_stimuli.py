"""Stimulus library: determinism, shapes, ranges, and geometric truth."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitdsl.measure.stimuli import (
    STIMULI,
    angle,
    circle,
    color_contrast,
    curve,
    edge,
    high_low,
    line,
    make_stimulus,
)

ORIENTED = [name for name, spec in STIMULI.items() if spec.orientation_period is not None]


def centroid(img: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted centre of an ``[3, H, W]`` image as ``(x, y)`` from the image centre."""
    m = img.mean(0)
    h, w = m.shape
    ys = torch.arange(h, dtype=m.dtype) - (h - 1) / 2
    xs = torch.arange(w, dtype=m.dtype) - (w - 1) / 2
    total = m.sum()
    return float((m.sum(0) * xs).sum() / total), float((m.sum(1) * ys).sum() / total)


@pytest.mark.parametrize("name", list(STIMULI))
def test_shape_range_dtype_and_determinism(name: str) -> None:
    spec = STIMULI[name]
    sweep = torch.linspace(2.0, 12.0, 5) if spec.sweep == "radius" else torch.arange(0.0, 360, 72)
    a = spec(size=(24, 40), **{spec.sweep: sweep})
    b = spec(size=(24, 40), **{spec.sweep: sweep})
    assert a.shape == (5, 3, 24, 40)
    assert a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)
    assert float(a.std()) > 0.01  # something was drawn


@pytest.mark.parametrize("name", list(STIMULI))
def test_batch_equals_single_calls(name: str) -> None:
    spec = STIMULI[name]
    values = [3.0, 7.0] if spec.sweep == "radius" else [10.0, 200.0]
    batched = spec(**{spec.sweep: torch.tensor(values)})
    for i, v in enumerate(values):
        assert torch.allclose(batched[i], spec(**{spec.sweep: v})[0], atol=1e-6)


@pytest.mark.parametrize("name", ORIENTED)
@pytest.mark.parametrize("theta", [0.0, 30.0, 45.0, 100.0, 222.5])
def test_rotating_orientation_by_90_equals_rot90(name: str, theta: float) -> None:
    spec = STIMULI[name]
    img = spec(size=32, orientation=theta)
    rotated = spec(size=32, orientation=theta + 90.0)
    assert torch.allclose(torch.rot90(img, 1, dims=(-2, -1)), rotated, atol=2e-4)


@pytest.mark.parametrize("name", ORIENTED)
def test_orientation_period(name: str) -> None:
    spec = STIMULI[name]
    img = spec(size=32, orientation=33.0)
    assert spec.orientation_period is not None
    assert torch.allclose(img, spec(size=32, orientation=33.0 + spec.orientation_period), atol=2e-4)
    if spec.orientation_period == 360.0:
        assert not torch.allclose(img, spec(size=32, orientation=33.0 + 180.0), atol=1e-2)


def test_horizontal_line_mass_in_its_row() -> None:
    img = line(0.0, width=1.0, length=20.0, y=-6.5, size=32)[0, 0]
    # y = -6.5 from the centre (15.5) is row 9, exactly one pixel tall
    rows = img.sum(1)
    assert int(rows.argmax()) == 9
    assert float(rows[9] / rows.sum()) > 0.99
    vertical = line(90.0, width=1.0, length=20.0, x=3.5, size=32)[0, 0]
    assert int(vertical.sum(0).argmax()) == 19


def test_line_length_and_width_scale_mass() -> None:
    base = float(line(0.0, length=10.0, width=1.0).sum())
    assert float(line(0.0, length=20.0, width=1.0).sum()) == pytest.approx(
        base * (21 / 11), rel=0.05
    )  # round caps add one width
    assert float(line(0.0, length=10.0, width=2.0).sum()) == pytest.approx(2 * base, rel=0.15)


@pytest.mark.parametrize("theta", [0.0, 45.0, 90.0, 135.0, 180.0, 270.0, 300.0])
def test_curve_centroid_moves_with_orientation(theta: float) -> None:
    """The arc's mass lies on its concave side, towards the circle's centre: direction θ+180°."""
    radius, span = 8.0, 90.0
    cx, cy = centroid(curve(theta, radius=radius, span=span, size=48)[0])
    half = math.radians(span / 2)
    expected = radius * (1 - math.sin(half) / half)  # distance midpoint -> arc centroid
    ux, uy = math.cos(math.radians(theta)), -math.sin(math.radians(theta))
    assert cx == pytest.approx(-expected * ux, abs=0.3)
    assert cy == pytest.approx(-expected * uy, abs=0.3)


def test_curve_convex_side_points_to_orientation() -> None:
    # 0°: bulges to the right like ")", so the right-most ink is at the middle row
    img = curve(0.0, radius=8.0, span=120.0, size=32)[0, 0]
    cols = (img > 0.5).any(0).nonzero().flatten()
    rightmost = int(cols.max())
    assert float(img[15:17, rightmost].sum()) > 0
    assert float(img[:8, rightmost].sum()) == 0.0


def test_curve_radius_changes_curvature_not_position() -> None:
    small, big = curve(90.0, radius=torch.tensor([4.0, 40.0]), size=48)
    # the arc's midpoint (top of the "⌒") stays at the centre for every radius
    for img in (small, big):
        col_ = img[0, :, 23] + img[0, :, 24]
        assert abs(int(col_.argmax()) - 23.5) <= 1.0


def test_angle_vertex_and_arms() -> None:
    img = angle(0.0, opening=90.0, length=10.0, size=32)[0]
    cx, _ = centroid(img)
    assert cx < -2.0  # ">" : arms extend to the left of the vertex
    assert torch.allclose(torch.flip(img, dims=(-2,)), img, atol=1e-5)  # symmetric about x axis


def test_circle_radius() -> None:
    radii = torch.tensor([4.0, 8.0, 12.0])
    imgs = circle(radii, width=1.0, size=40)
    for r, img in zip(radii, imgs, strict=True):
        m = img[0]
        h, w = m.shape
        ys = torch.arange(h) - (h - 1) / 2
        xs = torch.arange(w) - (w - 1) / 2
        rho = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
        mean_r = float((m * rho).sum() / m.sum())
        assert mean_r == pytest.approx(float(r), abs=0.2)
        assert float(m.sum()) == pytest.approx(2 * math.pi * float(r), rel=0.05)


def test_edge_bright_side() -> None:
    img = edge(0.0)[0, 0]
    assert float(img[:, 20:].min()) == 1.0 and float(img[:, :12].max()) == 0.0
    up = edge(90.0)[0, 0]
    assert float(up[:12].min()) == 1.0 and float(up[20:].max()) == 0.0


def test_color_contrast_colours() -> None:
    a, b = (0.2, 0.4, 0.9), (0.9, 0.5, 0.1)
    img = color_contrast(180.0, color_a=a, color_b=b)[0]
    assert torch.allclose(img[:, 5, 2], torch.tensor(a))  # 180°: colour A on the left
    assert torch.allclose(img[:, 5, 29], torch.tensor(b))
    batch_ = color_contrast(
        0.0, color_a=torch.rand(4, 3, generator=torch.Generator().manual_seed(0))
    )
    assert batch_.shape == (4, 3, 32, 32)


@pytest.mark.parametrize("ratio", [2.0, 4.0, 8.0])
def test_high_low_frequency_content(ratio: float) -> None:
    f_low, size = 0.04, 64
    img = high_low(0.0, frequency=f_low, ratio=ratio, size=size)[0, 0]

    # 0°: high frequency on the right; stripes are horizontal, so frequency is along rows
    def peak_freq(half: torch.Tensor) -> float:
        spectrum = torch.fft.rfft(half - half.mean(0), dim=0, n=1000).abs().mean(1)
        return float(spectrum.argmax()) / 1000

    assert peak_freq(img[:, 40:]) == pytest.approx(f_low * ratio, abs=0.004)
    assert peak_freq(img[:, :24]) == pytest.approx(f_low, abs=0.004)
    assert float(img.mean()) == pytest.approx(0.5, abs=0.05)


def test_high_low_rejects_aliasing() -> None:
    with pytest.raises(ValueError, match=r"0\.5 cycles"):
        high_low(0.0, frequency=0.1, ratio=10.0)


def test_registry_validation_messages() -> None:
    with pytest.raises(ValueError, match="did you mean `radius`"):
        make_stimulus("curve", radus=3)
    with pytest.raises(KeyError, match="did you mean `curve`"):
        make_stimulus("curv")
    with pytest.raises(ValueError, match="lengths disagree"):
        curve(torch.zeros(3), radius=torch.ones(2))
    spec = STIMULI["curve"]
    assert spec.defaults()["radius"] == 8.0
    assert {p.unit for p in spec.params} >= {"deg", "px"}


@settings(max_examples=25, deadline=None)
@given(theta=st.floats(0, 360), radius=st.floats(3, 20), width=st.floats(0.5, 4))
def test_curve_always_valid(theta: float, radius: float, width: float) -> None:
    img = curve(theta, radius=radius, width=width)
    assert img.shape == (1, 3, 32, 32)
    assert 0.0 <= float(img.min()) <= float(img.max()) <= 1.0
    assert float(img.sum()) > 0


def test_preview_writes_pngs(tmp_path: Path) -> None:
    from circuitdsl.measure.stimuli.preview import main

    assert main([str(tmp_path), "--scale", "1"]) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(STIMULI)


def test_docs_list_every_stimulus_and_parameter() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "stimuli.md").read_text()
    for name, spec in STIMULI.items():
        assert f"### `{name}`" in doc
        for p in spec.params:
            assert f"`{p.name}`" in doc
