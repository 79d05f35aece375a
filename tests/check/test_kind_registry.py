"""The claim-kind registry (language/claims.KINDS): one declaration per kind, used everywhere.

Each kind names its grammar words, payload class, rules and handler once; the IR, the
checker, the report and the diagram follow the registry, so a kind added there (and
given a handler module) serialises, checks and renders with nothing else changed.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import types
from dataclasses import dataclass
from typing import ClassVar

import pytest
from small_model import BODY, CAR, Small

from circuitdsl.check import check
from circuitdsl.check.common import Outcome
from circuitdsl.check.engine import handler_of
from circuitdsl.language.claims import (
    KINDS,
    RULES,
    ClaimKind,
    Rule,
    register_kind,
    unregister_kind,
)
from circuitdsl.language.ir import Circuit, Claim, Feature, Threshold
from circuitdsl.language.kinds import Payload, SignClaim, UnionClaim, payload_from_dict
from circuitdsl.language.syntax.parser import grammar_text, keywords
from circuitdsl.render import to_dot
from circuitdsl.report.model import ClaimResult, Expected, Report
from circuitdsl.report.style import INHIBIT_COLOR
from circuitdsl.tools.planting import circuit, claim, feature

FEATS = [feature("body", "conv2", BODY), feature("car", "mixed", CAR)]


def _heads(rule: str) -> set[str]:
    """The keyword terminals (by their text) that a grammar rule's alternatives use."""
    text = grammar_text()
    m = re.search(rf"^\??{rule}:(.*?)(?=^\S|\Z)", text, re.M | re.S)
    assert m is not None, rule
    words = keywords()
    body = re.sub(r"->\s*\w+", "", m.group(1))
    return {words[t] for t in re.findall(r"\b[A-Z][A-Z_]+\b", body) if t in words}


# the grammar rules that state claims; their keywords must all belong to some kind
CLAIM_RULES = (
    "claim_body",
    "sign",
    "polarity",
    "strongest_sign",
    "shape",
    "region",
    "comparison_word",
    "within_stmt",
    "proportion_stmt",
    "proportion_sign",
    "banding_stmt",
    "expect_stmt",
    "predict_stmt",
    "reading",
    "activation",
    "edit",
    "part",
    "change",
)


def test_the_registry_covers_every_grammar_claim_word() -> None:
    grammar = set().union(*(_heads(r) for r in CLAIM_RULES))
    registered = {w for k in KINDS.values() for w in k.grammar}
    assert grammar - registered == set(), "grammar claim words no kind declares"
    assert registered <= set(keywords().values()), "kind words the grammar does not have"


def test_every_kind_has_a_payload_rules_and_a_handler() -> None:
    for name, kind in KINDS.items():
        assert kind.payload.kind == name
        assert dataclasses.is_dataclass(kind.payload)
        params = kind.payload.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen and "__slots__" in vars(kind.payload), name
        assert kind.words and all(w in RULES for w in kind.words), name
        mod = importlib.import_module(kind.handler)
        assert callable(mod.measure) and callable(mod.edges), name
        assert handler_of(name) is not None
    # every rule word belongs to exactly the kinds that use it, none is orphaned
    assert set(RULES) == {w for k in KINDS.values() for w in k.words}


def test_payloads_are_frozen_hashable_and_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from circuitdsl.api import load

    spec = tmp_path / "all.circ"
    spec.write_text(
        """circuit all
feature a = l1:0
feature b = l2:1
feature c = l2:2
family fam(orientation: angle) in l2 { 3: 0deg, 4: 90deg }
a -> b : excites, inhibits at top, strongest at rows 0..1 cols 0..2, among top 3 inputs
a -> b : excites along arc 30deg (radius = 2)
{a, c} -> b : excites
a -> b stronger than a -> c
b within l2_branch
weights into l2 : not banded vertical more than horizontal
most of the top 4 inputs of b from l1 inhibit
expect b pre prefers orientation 45deg +- 10deg on curve(radius = 3)
predict scale negative (a -> b) by 0.5: b responds to curve() increases by at least 20%
expect fam covers orientation in 90deg bins on curve()
""",
        encoding="utf-8",
    )
    ir = load(spec).circuit
    kinds = {c.kind for c in ir.claims}
    assert kinds >= set(KINDS) - {"equivariance"}
    for c in ir.claims:
        p = c.payload
        assert isinstance(p, KINDS[c.kind].payload)
        hash(p)  # frozen, so usable as a cache key
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(p, dataclasses.fields(p)[0].name, None)
        assert payload_from_dict(c.kind, c.payload.to_dict()) == p
    assert Circuit.from_json(ir.to_json()) == ir


def test_a_claim_and_its_payload_agree_on_the_kind() -> None:
    with pytest.raises(TypeError, match="UnionClaim"):
        Claim("x", "sign", "a -> b : excites", (("a", "b"),), payload=UnionClaim("excites"))


def test_union_member_verdict_comes_from_the_threshold_not_its_text() -> None:
    # 1.0000001 prints as `>= 1` (`:g` keeps 6 digits): text parsing would let a member
    # at 1.00000005 pass; the threshold itself says it does not.
    a, b, t = (Feature(n, "l", (i,), (1.0,)) for i, n in enumerate("abt"))
    union = Claim(
        "u",
        "union",
        "{a, b} -> t : excites",
        (("a", "t"), ("b", "t")),
        payload=UnionClaim("excites"),
    )
    cut = Threshold("z", ">=", 1.0000001)
    neg = Threshold("z", "<=", -2.5)
    assert str(cut) == ">= 1"
    measured = {"z": 1.00000005, "z[a]": 1.00000005, "z[b]": 3.0}
    result = ClaimResult("u", "fail", union.text, "x:1", measured, {"z": Expected(cut)})
    dot = to_dot(
        Circuit("u", None, (), None, (a, b, t), (), (union,)), Report("x", "m", None, (result,))
    )
    edge_a = next(ln for ln in dot.splitlines() if ln.lstrip().startswith('"f:a" -> "f:t"'))
    edge_b = next(ln for ln in dot.splitlines() if ln.lstrip().startswith('"f:b" -> "f:t"'))
    assert "✗" in edge_a and "✓" in edge_b
    # `<=` on a negative value, and a negated expectation, judged the same way
    assert Expected(neg).holds(-3.0) and not Expected(neg).holds(-2.0)
    assert Expected(neg, negated=True).holds(-2.0) and str(Expected(neg, True)) == "not <= -2.5"
    assert Expected.parse("z", "not <= -2.5") == Expected(neg, True)


# ---- a new kind: its payload, its handler module and one registry entry ---------------


@dataclass(frozen=True, slots=True)
class ToyClaim(Payload):
    """`a -> b : toy 3`: a made-up kind, measured by a made-up handler."""

    kind: ClassVar[str] = "toy"
    level: float

    def rule_word(self) -> str:
        return "toy"

    @property
    def drawn_sign(self) -> str | None:
        return "inhibits"


def _toy_module() -> types.ModuleType:
    mod = types.ModuleType("toy_handler")

    def edges(c: Claim, circuit: object) -> list[tuple[Feature, Feature]]:
        return []

    def measure(claims: list[Claim], ctx: object) -> list[Outcome]:
        out = []
        for c in claims:
            assert isinstance(c.payload, ToyClaim)
            out.append(Outcome({"level": c.payload.level * 2}, "doubled"))
        return out

    mod.edges, mod.measure = edges, measure  # type: ignore[attr-defined]
    return mod


def test_a_new_kind_needs_only_its_module_and_a_registry_entry(small: Small) -> None:
    sys.modules["toy_handler"] = _toy_module()
    toy = ClaimKind("toy", ToyClaim, ("toy",), ("toy",), "toy_handler", "a toy")
    register_kind(toy, rules=(Rule("toy", ("level",), (Threshold("level", ">=", 5.0),), "x"),))
    try:
        made = claim("t1", "toy", [("body", "car")], level=3.0)  # defaults from the registry
        assert made.thresholds == (Threshold("level", ">=", 5.0),)
        weak = claim("t2", "toy", [("body", "car")], level=2.0)
        cir = circuit(FEATS, [made, weak])
        assert Circuit.from_json(cir.to_json()) == cir  # the IR JSON reads it back
        rep = check(cir, small.bound)
        assert [r.status for r in rep.claims] == ["pass", "fail"]
        assert rep.result("t1").measured == {"level": 6.0}
        assert rep.result("t1").expected_text() == {"level": ">= 5"}
        assert Report.from_json(rep.to_json()).claims[0].expected == rep.claims[0].expected
        # drawn with its payload's sign (inhibits), each line with its verdict
        edge = next(ln for ln in to_dot(cir, rep).splitlines() if '"f:body" -> "f:car"' in ln)
        assert f'color="{INHIBIT_COLOR}"' in edge and "✓" in edge and "✗" in edge
    finally:
        unregister_kind("toy")
        sys.modules.pop("toy_handler", None)
    assert "toy" not in KINDS and "toy" not in RULES
    assert SignClaim("excites").to_dict() == {"sign": "excites"}
