"""`model NAME preprocess P` and module paths that are Sequential indices."""

from __future__ import annotations

import pytest

import circuitdsl
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.language.ir import Circuit
from circuitdsl.language.syntax.fmt import format_spec
from circuitdsl.language.syntax.parser import parse

TEXT = """circuit seq
model vgg16-hed preprocess caffe
feature a = features.3:12
feature b = 0.3:2
feature c = 0:4
feature d = 1.0.conv:4
feature e = 2 * 3.1.2:3 - 0.5 * 3.1.2:1
family f in 0.3 {
  1,
  2,
}
a -> b : excites
"""


def test_model_line_and_sequential_paths_compile() -> None:
    circuit = circuitdsl.loads(TEXT).circuit
    assert circuit.model == "vgg16-hed" and circuit.preprocess == "caffe"
    layers = {f.name: f.layer for f in circuit.features}
    assert layers == {
        "a": "features.3",
        "b": "0.3",
        "c": "0",
        "d": "1.0.conv",
        "e": "3.1.2",
        "f[1]": "0.3",
        "f[2]": "0.3",
    }
    # numbers next to paths keep their meaning: coefficients stay coefficients
    assert circuit.feature("e").coefficients == (2.0, -0.5)
    # the IR's JSON carries the word, and reads back
    assert Circuit.from_json(circuit.to_json()).preprocess == "caffe"


def test_fmt_keeps_the_model_line() -> None:
    formatted = format_spec(parse(TEXT, "x.circ"))
    assert "model vgg16-hed preprocess caffe\n" in formatted
    assert format_spec(parse(formatted, "x.circ")) == formatted
    for model in ("torchvision:resnet18", "timm:resnet18.a1_in1k", "curvenet-seed1"):
        text = f"model {model}\nfeature a = conv1:0\n"
        assert format_spec(parse(text, "x.circ")) == text
        assert circuitdsl.loads(text).circuit.model == model


def test_json_without_preprocess_is_unchanged() -> None:
    circuit = circuitdsl.loads("model curvenet\nfeature a = conv1:0\n").circuit
    assert "preprocess" not in circuit.to_dict()


def test_unknown_preprocessing_is_e218_at_the_word() -> None:
    with pytest.raises(DiagnosticError) as err:
        circuitdsl.loads("model vgg16 preprocess imagenett\nfeature a = x:1\n", "m.circ")
    (d,) = err.value.diagnostics
    assert d.code == "E218" and d.span is not None and d.span.col == 24
    assert "`imagenet`" in (d.help or "")
