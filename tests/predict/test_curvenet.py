"""The Curve Circuits echo experiment on the shipped curvenet (channels as measured)."""

from __future__ import annotations

import pytest
import torch

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.models.registry import load_model

SPEC = """
circuit echo
family early_curve(orientation: angle) in conv2 {
  1: 45deg, 31: 160deg, 16: 190deg, 27: 230deg, 5: 280deg
}
family curve(orientation: angle) in conv3 { 11: 120deg, 19: 280deg }
expect curve prefers orientation self.orientation ± 22.5deg on curve(radius = 8)
predict remove negative (early_curve -> curve):
  curve no echo on curve(orientation = self.orientation + 180deg) increases
predict remove positive (early_curve -> curve):
  curve responds to curve(orientation = self.orientation) decreases
"""


@pytest.fixture(scope="module")
def adapter():  # type: ignore[no-untyped-def]
    return load_model("curvenet")


def test_removing_negative_weights_makes_echoes_appear(adapter) -> None:  # type: ignore[no-untyped-def]
    state = {k: v.clone() for k, v in adapter.module.state_dict().items()}
    block = adapter.weights("conv2", "conv3")
    block_values = block.clone()
    rep = check_spec(circuitdsl.loads(SPEC).circuit, adapter)
    assert all(c.status == "pass" for c in rep.claims), [(c.id, c.detail) for c in rep.claims]
    echoes = [c for c in rep.claims if "no_echo" in c.id]
    assert len(echoes) == 2
    for c in echoes:
        # measured on the shipped weights: echo_ratio 0.324 -> 0.408 (conv3:11),
        # 0.256 -> 0.292 (conv3:19); the edit is applied, with the predicted sign
        assert c.measured["after"] > c.measured["before"] + 0.02
    # the shipped model and the expanded-weight cache are untouched
    for k, v in adapter.module.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert adapter.weights("conv2", "conv3") is block
    assert torch.equal(block, block_values)
