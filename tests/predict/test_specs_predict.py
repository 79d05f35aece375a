"""Every `predict` in specs/ is measured (pass or fail), never an `error`.

The InceptionV1 specs are bound to lucent's architecture with random weights (its
weights are not available offline), the vgg16-hed spec to its architecture with random
weights (the real run takes minutes; docs/vgg16.md reports it); the curvenet specs to
the shipped model. Stimuli
for InceptionV1 are rendered at 96x96 (the graph is traced at 224: its classifier head
needs that, the layers read here do not) to keep the test fast.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from predict_models import random_inceptionv1

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.measure.select import has_selectors
from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.registry import load_model

ROOT = Path(__file__).parents[2]
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.circ") if "\npredict " in p.read_text())


def random_vgg16(size: int = 32) -> TracedAdapter:
    """vgg16-hed's module (torchvision's VGG16 features) with random weights, at `size`."""
    from circuitdsl.models.vgg16_hed import VGG16HED

    torch.manual_seed(0)
    return TracedAdapter(
        "vgg16-hed",
        VGG16HED().eval(),
        weights_path=None,
        example_input=torch.zeros(1, 3, size, size),
    )


@pytest.fixture(scope="module")
def adapters():  # type: ignore[no-untyped-def]
    cache: dict[str, object] = {}

    def get(name: str):  # type: ignore[no-untyped-def]
        if name not in cache:
            if name == "inceptionv1":
                cache[name] = random_inceptionv1()
            elif name == "vgg16-hed":
                cache[name] = random_vgg16()
            else:
                cache[name] = load_model(name)
        return cache[name]

    return get


def test_the_specs_have_predictions() -> None:
    names = {p.relative_to(ROOT / "specs").as_posix() for p in SPECS}
    assert {"inceptionv1/edits.circ", "inceptionv1/curve_circuit.circ"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.relative_to(ROOT / "specs").as_posix())
def test_every_prediction_is_measured(path: Path, adapters, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(path.parent)
    spec = circuitdsl.load(path.name)
    adapter = adapters(spec.circuit.model)
    if has_selectors(spec.program):
        report = spec.check(adapter)  # selections recompile the spec: check all of it
    else:
        preds = tuple(c for c in spec.circuit.claims if c.kind == "prediction")
        report = check_spec(dataclasses.replace(spec.circuit, claims=preds), adapter)
    results = [r for r in report.claims if r.text.startswith("predict ")]
    assert results
    errors = [(r.id, r.detail) for r in results if r.status not in ("pass", "fail")]
    assert not errors, errors
    for r in results:
        assert {"before", "after", "change", "relative_change", "ratio"} <= r.measured.keys()
        assert (
            "[direct conv]" in r.detail
            or "[linear-path correction]" in r.detail
            or ("[ablation]" in r.detail)
        ), r.detail
