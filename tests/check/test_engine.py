"""The engine: batching per layer pair, errors instead of exceptions, handler hook."""

from __future__ import annotations

import json

import pytest
import torch
from small_model import BODY, CAR, WINDOWS, Small

from circuitdsl.check import Outcome, check, register_handler, unregister_handler
from circuitdsl.report.model import Report
from circuitdsl.tools.planting import circuit, claim, feature

FEATS = [
    feature("windows", "conv2", WINDOWS),
    feature("body", "conv2", BODY),
    feature("car", "mixed", CAR),
    feature("rgb", "conv1", 1),
    feature("c2", "conv2", 2),
    feature("nowhere", "ghost", 0),
    feature("big", "mixed", 99),
]


_RESPONDS = {"subject": "car", "test": "responds", "stimulus": {"name": "curve"}}
_PREDICT = {
    "subject": "car",
    "edits": [{"kind": "ablate", "target": "body"}],
    "activation": _RESPONDS,
    "change": "decreases",
}


def test_one_fetch_per_layer_pair(small: Small) -> None:
    claims = [
        claim(f"c{i}", "sign", [("windows" if i % 2 else "body", "car")], sign="excites")
        for i in range(50)
    ] + [claim("s", "shape", [("rgb", "c2")], sign="excites", shape="arc", orientation=30.0)]
    rep = check(circuit(FEATS, claims), small.bound)
    assert small.bound.fetches == 2
    assert len(rep.claims) == 51 and [c.id for c in rep.claims][:3] == ["c0", "c1", "c2"]


def test_activation_and_unknown_pairs_are_errors(small: Small) -> None:
    claims = [
        claim("act", "activation", subjects=["car"], **_RESPONDS),
        claim("pred", "prediction", subjects=["car"], **_PREDICT),
        claim("ghost", "sign", [("nowhere", "car")], sign="excites"),
        claim("range", "sign", [("body", "big")], sign="excites"),
        claim("ok", "sign", [("body", "car")], sign="excites"),
        claim("undef", "sign", [("windows", "unknown_feature")], sign="excites"),
    ]
    rep = check(circuit(FEATS, claims), small.bound)
    r = {c.id: c for c in rep.claims}
    assert r["act"].status == "error"
    assert "need a model that can be run" in r["act"].detail  # a weight-only bound
    assert r["pred"].status == "error"
    assert r["ghost"].status == "error" and "ghost" in r["ghost"].detail
    assert r["range"].status == "error" and "out of range" in r["range"].detail
    assert r["undef"].status == "error"
    assert r["ok"].status == "pass"  # one bad claim does not spoil the batch
    assert rep.summary == {"pass": 1, "fail": 0, "error": 5}


def test_register_handler(small: Small) -> None:
    def responds(c, ctx):  # type: ignore[no-untyped-def]
        return Outcome({"z": 2.5}, "fake activation")

    register_handler("activation", responds)
    try:
        c = claim("act", "activation", subjects=["car"], **_RESPONDS)
        r = check(circuit(FEATS, [c]), small.bound).result("act")
        assert (
            r.status == "pass" and r.measured == {"z": 2.5} and r.expected_text() == {"z": ">= 2"}
        )
    finally:
        unregister_handler("activation")
    r = check(circuit(FEATS, [c]), small.bound).result("act")
    assert r.status == "error"


def test_handler_crash_is_an_error(small: Small) -> None:
    def boom(c, ctx):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("bad")

    register_handler("activation", boom)
    try:
        c = claim("act", "activation", subjects=["car"], **_RESPONDS)
        r = check(circuit(FEATS, [c]), small.bound).result("act")
        assert r.status == "error" and "ZeroDivisionError" in r.detail
    finally:
        unregister_handler("activation")


def test_report_forms(small: Small) -> None:
    claims = [
        claim("ok", "sign", [("body", "car")], sign="excites"),
        claim("bad", "sign", [("body", "car")], sign="inhibits"),
        claim("nan", "shape", [("body", "car")], sign="inhibits", shape="line", orientation=0.0),
    ]
    calls = []
    rep = check(circuit(FEATS, claims), small.bound, progress=lambda *a: calls.append(a))
    assert calls
    text = rep.to_json(with_kernels=True)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["claims"][2]["measured"]["correlation"] is None  # no negative weights
    assert data["summary"] == {"pass": 1, "fail": 2, "error": 0}
    kernel = data["claims"][0]["kernels"]["body->car"]
    assert kernel == rep.claims[0].kernels["body->car"]
    assert "<failure" in rep.to_junit() and "FAIL" in rep.to_text()
    back = Report.from_json(text)
    assert back.summary == rep.summary and back.claims[0].measured == rep.claims[0].measured


def test_thresholds_from_claim(small: Small) -> None:
    c = claim("strict", "sign", [("body", "car")], sign="excites", thresholds=[("z", ">=", 1e6)])
    r = check(circuit(FEATS, [c]), small.bound).result("strict")
    assert r.status == "fail" and r.expected_text() == {"z": ">= 1e+06"}


def test_group_error_names_the_pair(small: Small) -> None:
    bound = small.bound
    bound.blocks[("conv1", "conv2")] = torch.zeros(3)  # a broken block
    c = claim("s", "shape", [("rgb", "c2")], sign="excites", shape="arc", orientation=0.0)
    r = check(circuit(FEATS, [c]), bound).result("s")
    assert r.status == "error" and "conv1 -> conv2" in r.detail


def test_sign_on_a_target_without_inputs_is_an_error() -> None:
    from circuitdsl.check import TensorBound

    w = torch.zeros(2, 3, 3, 3)
    w[0] = 1.0
    feats = [feature("a", "L0", 0), feature("b", "L1", 1), feature("c", "L1", 0)]
    claims = [
        claim("dead", "sign", [("a", "b")], sign="excites"),
        # every input of c is the same: z = 1 exactly (the default z >= 2 would fail)
        claim("live", "sign", [("a", "c")], sign="excites", thresholds=[("z", ">=", 1.0)]),
    ]
    rep = check(circuit(feats, claims), TensorBound({("L0", "L1"): w}))
    assert rep.result("dead").status == "error" and "undefined" in rep.result("dead").detail
    assert rep.result("live").status == "pass"


def test_registered_handler_numbers_become_floats(small: Small) -> None:
    import numpy as np

    register_handler("activation", lambda c, ctx: ({"z": np.float32(3.0)}, "numpy"))
    try:
        c = claim("act", "activation", subjects=["car"], **_RESPONDS)
        r = check(circuit(FEATS, [c]), small.bound).result("act")
        assert type(r.measured["z"]) is float and r.status == "pass"
    finally:
        unregister_handler("activation")
