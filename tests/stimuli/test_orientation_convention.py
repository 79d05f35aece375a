"""One orientation convention for curves on the stimulus side: the direction the convex
side points (0deg right, counter-clockwise on screen), in the generator, in `circ tune`
(`orientation_tuning`) and in docs/stimuli.md.

The reference is an arc drawn here from geometry alone, not by the generator: the circle's
centre sits one radius *behind* the apex (opposite to the orientation), so the arc bulges
towards the orientation.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from circuitdsl.measure.stimuli import curve
from circuitdsl.measure.tuning import orientation_tuning

DOCS = Path(__file__).resolve().parents[2] / "docs"


def drawn_arc(theta: float, size: int, radius: float = 8.0, span: float = 90.0) -> torch.Tensor:
    """A 1-pixel arc whose convex side points along `theta` (deg, y up on screen)."""
    t = math.radians(theta)
    c = (size - 1) / 2
    # apex at the image centre; circle centre one radius behind it; screen y grows down
    cx, cy = c - radius * math.cos(t), c + radius * math.sin(t)
    img = torch.zeros(size, size)
    for k in range(400):
        a = t + math.radians(span) * (k / 399 - 0.5)
        x, y = cx + radius * math.cos(a), cy - radius * math.sin(a)
        img[round(y), round(x)] = 1.0
    return img


def test_drawn_arc_bulges_the_way_it_says() -> None:
    up = drawn_arc(90.0, 21)  # convex side up: a cap, its apex above its ends
    rows = up.nonzero()[:, 0]
    apex_row, end_row = int(rows.min()), int(rows.max())
    assert apex_row == 10 and end_row > apex_row  # the apex is the topmost point


@pytest.mark.parametrize("theta", [0.0, 60.0, 90.0, 200.0])
def test_generator_draws_the_convex_side_towards_its_orientation(theta: float) -> None:
    ref = drawn_arc(theta, 33)
    match = {d: float((curve(theta + d, size=33)[0, 0] * ref).sum()) for d in (0, 90, 180, 270)}
    assert max(match, key=match.__getitem__) == 0, match


@pytest.mark.parametrize("theta", [30.0, 135.0, 250.0])
def test_tuning_reports_the_convex_side_direction(theta: float) -> None:
    """`orientation_tuning` (what `circ tune` prints) of a unit whose kernel is the drawn arc."""
    k = drawn_arc(theta, 17)
    net = nn.Sequential(nn.Conv2d(3, 1, 17, padding=8, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight[0] = (k - k.mean())[None] / 3
    res = orientation_tuning(net, "1", "curve", size=32, radius=8.0, width=1.0)
    pref = float(res.preferred[0])
    err = min(abs(pref - theta) % 360, 360 - abs(pref - theta) % 360)
    assert err <= 10, (theta, pref)  # not theta +- 90 (the tangent) nor theta + 180


def test_docs_state_the_convention() -> None:
    text = (DOCS / "stimuli.md").read_text(encoding="utf-8")
    assert "convex side points" in text
