"""Where the docs and the code disagreed (issue 13, item 8): each case, now in agreement."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

import circuitdsl
from circuitdsl.check import TensorBound, check
from circuitdsl.language.syntax import fmt, parser

ROOT = Path(__file__).parents[2]


def _bound() -> TensorBound:
    g = torch.Generator().manual_seed(1)
    block = 0.1 * torch.randn(2, 16, 5, 5, generator=g)
    block[0, 0] = 1.0  # a constant kernel
    block[1, 1] = torch.linspace(-1, 1, 5)[:, None].expand(5, 5)  # inhibition at the top
    return TensorBound({("l1", "l2"): block})


SPEC = """
circuit agree
feature a = l1:0
feature b = l1:1
feature t = l2:0
feature u = l2:1
a -> t : excites along line 0deg
b -> u : strongest inhibition at top, strongest at bottom
b -> u : excites at rows 3..4, inhibits at rows 0..1
b -> u : excites along arc 90deg (radius = 4)
"""


def test_constant_kernel_correlation_is_null() -> None:
    rep = check(circuitdsl.loads(SPEC, "agree.circ").circuit, _bound())
    r = rep.claims[0]
    assert math.isnan(r.measured["correlation"]) and r.status == "fail"
    assert json.loads(rep.to_json())["claims"][0]["measured"]["correlation"] is None


def test_strongest_inhibition_and_rows_without_cols() -> None:
    rep = check(circuitdsl.loads(SPEC, "agree.circ").circuit, _bound())
    r = {c.id: c for c in rep.claims}
    assert r["b->u.strongest_inhibition_at_top"].status == "pass"
    assert r["b->u.strongest_at_bottom"].status == "pass"
    rows = r["b->u.excites_at_rows3-4"]
    assert rows.status == "pass" and "rows 3..4" in rows.detail  # every column
    assert r["b->u.inhibits_at_rows0-1"].status == "pass"


def test_arc_radius_option_is_accepted_and_used() -> None:
    claims = circuitdsl.loads(SPEC, "agree.circ").circuit.claims
    arc = next(c for c in claims if c.id == "b->u.excites_along_arc")
    assert arc.payload.radius == 4.0 and all(t.stat != "radius" for t in arc.thresholds)
    text = SPEC.split("\n", 1)[1]
    assert "(radius = 4)" in fmt.format_spec(parser.parse(text, "a.circ"))
    with pytest.raises(circuitdsl.DiagnosticError) as err:
        circuitdsl.loads(SPEC.replace("(radius = 4)", "(z = 4)"), "agree.circ")
    assert err.value.diagnostics[0].code == "E106"


def test_short_layer_aliases_parse() -> None:
    spec = circuitdsl.loads(
        "circuit car\nfeature wheels = 4b:373\nfeature car = 4c:447\nwheels -> car : excites\n"
        "feature x = 0.5*3a:1 - 0.5*3a:2\n",
        "c.circ",
    )
    assert spec.circuit.feature("car").layer == "4c"
    assert spec.circuit.feature("x").coefficients == (0.5, -0.5)


def test_docs_do_not_promise_kernels_in_json() -> None:
    text = (ROOT / "docs" / "claims.md").read_text()
    assert "not in the JSON report" in text


def test_weights_error_is_cut_at_a_word_boundary() -> None:
    from circuitdsl.models.checkpoint import _short

    long = "the archive is damaged. " + "word " * 100
    assert _short(ValueError(long)) == "the archive is damaged."
    cut = _short(ValueError("x" * 30 + " " + "abcdefgh " * 40))
    assert cut.endswith(" ...") and len(cut) <= 204
    assert re.fullmatch(r"x{30}( abcdefgh)+ \.\.\.", cut)
