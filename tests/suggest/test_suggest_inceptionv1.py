"""`circ inputs` / `circ suggest` on InceptionV1 with random weights and a planted car unit.

The car unit `mixed4c:447` (unit 63 of the 5x5 branch) gets three planted inputs from
`mixed4b` through its 5x5 bottleneck, so everything is read off expanded weights:
windows (`mixed4b:237`) excite at the top and inhibit at the bottom, the car body
(`mixed4b:491`) excites most at the bottom, wheels (`mixed4b:373`) inhibit at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import circuitdsl
from circuitdsl.check.engine import check
from circuitdsl.cli import main
from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.bind import bind
from circuitdsl.models.inceptionv1 import InceptionV1, layer_aliases
from circuitdsl.tools.inputs import analyse, default_source
from circuitdsl.tools.suggest import suggest

CAR = 447
CAR_UNIT = CAR - 384  # the 5x5 branch of mixed4c starts at channel 384
WINDOWS, BODY, WHEELS = 237, 491, 373


def _conv(m: InceptionV1, name: str) -> torch.Tensor:
    return dict(m.named_modules())[f"{name}_pre_relu_conv"].weight


def _rows(values: list[float]) -> torch.Tensor:
    return torch.tensor(values)[:, None].expand(5, 5).clone()


@pytest.fixture(scope="module")
def model() -> InceptionV1:
    torch.manual_seed(0)
    m = InceptionV1().eval()
    with torch.no_grad():
        bn, k5 = _conv(m, "mixed4c_5x5_bottleneck"), _conv(m, "mixed4c_5x5")
        plants = [
            (WINDOWS, _rows([0.6, 0.6, 0.0, -0.3, -0.3])),
            (BODY, _rows([0.1, 0.1, 0.3, 0.6, 0.6])),
            (WHEELS, _rows([-0.5, -0.5, -0.1, 0.0, 0.0])),
        ]
        for b, (src, kernel) in enumerate(plants):
            bn[b] = 0.0
            bn[b, src] = 1.0
            k5[CAR_UNIT, b] = kernel
    return m


@pytest.fixture(scope="module")
def adapter(model: InceptionV1) -> Any:
    return TracedAdapter(
        "inceptionv1",
        model,
        weights_path=None,
        example_input=torch.zeros(1, 3, 224, 224),
        aliases=layer_aliases(),
    )


def test_default_sources(adapter: Any) -> None:
    assert default_source(adapter, "mixed4c") == "mixed4b"  # the block's input, not a branch
    assert default_source(adapter, "mixed3a") == "conv2d2"  # through LRN and max-pool
    assert default_source(adapter, "mixed4a") == "mixed3b"
    assert default_source(adapter, "mixed4c_5x5") == "mixed4c_5x5_bottleneck"
    assert default_source(adapter, "conv2d2_pre_relu") == "conv2d1"


def test_planted_car_inputs(adapter: Any) -> None:
    rep = analyse(adapter, "mixed4c", CAR, top=3)
    assert rep.source == "mixed4b" and rep.kernel_size == (5, 5) and rep.n_inputs == 512
    exc = {i.channel: i for i in rep.excitatory}
    inh = {i.channel: i for i in rep.inhibitory}
    assert list(exc)[:2] == [WINDOWS, BODY]
    assert exc[WINDOWS].region == "top" and exc[WINDOWS].opposite == "bottom"
    assert exc[BODY].region == "bottom"
    assert rep.inhibitory[0].channel == WHEELS and inh[WHEELS].region == "top"
    assert {exc[WINDOWS].rank, exc[BODY].rank, inh[WHEELS].rank} == {1, 2, 3}
    # a 3x3-branch unit is read at its own kernel size, as the checker reads it
    assert analyse(adapter, "mixed4c", 200, top=1).kernel_size == (3, 3)


def test_draft_passes_and_states_the_plants(
    adapter: Any, model: InceptionV1, tmp_path: Path
) -> None:
    draft = suggest(adapter, "mixed4c", CAR, top=2)
    text = draft.text
    assert "model inceptionv1" in text
    assert "mixed4b_237 -> mixed4c_447 : excites, excites at top, inhibits at bottom" in text
    assert "mixed4b_491 -> mixed4c_447 : excites, excites at bottom, strongest at bottom" in text
    assert "mixed4b_373 -> mixed4c_447 : inhibits, inhibits at top" in text
    spec = circuitdsl.loads(text)
    report = check(spec.circuit, bind(spec.circuit, adapter))
    assert all(c.status == "pass" for c in report.claims)
    # `circ check` on the same weights, loaded from a file the way a user would
    weights = tmp_path / "inception_random.pt"
    torch.save(model.state_dict(), weights)
    path = tmp_path / "car.circ"
    path.write_text(text)
    assert main(["check", str(path), "--weights", str(weights)]) == 0
    assert main(["fmt", "--check", str(path)]) == 0


def test_1x1_branch_unit_gets_no_region_claims(adapter: Any) -> None:
    rep = analyse(adapter, "mixed4c", 0, top=1)  # mixed4c:0 is in the 1x1 branch
    assert rep.kernel_size == (1, 1) and rep.excitatory[0].region is None
    draft = suggest(adapter, "mixed4c", 0, top=1)
    claims = [line for line in draft.text.splitlines() if " -> " in line and "#" not in line]
    assert claims and not any(" at " in line for line in claims)
    assert "region none (1x1)" in draft.text
