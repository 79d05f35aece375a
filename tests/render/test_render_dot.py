"""DOT output: golden text, determinism, kernel heatmap cells, verdict marks, layout."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from render_samples import car_report, oriented_kernel, small_family_report, top_bottom_kernel

from circuitdsl.language.diagnostics import Span
from circuitdsl.language.ir import Circuit, Claim, Family, Feature, Param
from circuitdsl.language.kinds import (
    ActivationClaim,
    RankClaim,
    SignClaim,
    StimulusRef,
    UnionClaim,
)
from circuitdsl.render import kernel_table, layer_order, to_dot
from circuitdsl.report.model import ClaimResult, Expected, Report
from circuitdsl.report.style import NEG_HEX, POS_HEX, weight_hex

Golden = Callable[[str, str], None]


_CURVE_180 = StimulusRef("curve", (("orientation", 180.0),))


def _edge_line(dot: str, src: str, dst: str) -> str:
    lines = [ln for ln in dot.splitlines() if f'"f:{src}" -> "f:{dst}"' in ln]
    assert len(lines) == 1, f"expected one {src}->{dst} edge, got {lines}"
    return lines[0]


def _kernel_cells(label_line: str) -> list[list[str]]:
    """The BGCOLORs of the first kernel table in a line, row by row."""
    table = re.search(r'<TABLE BORDER="1" COLOR="#9a9a9a".*?</TABLE>', label_line)
    assert table, "no kernel table in the line"
    return [
        re.findall(r'BGCOLOR="(#[0-9a-f]{6})"', row) for row in table.group(0).split("<TR>")[1:]
    ]


# ---- golden files -----------------------------------------------------------------


def test_golden_car_without_report(car: Circuit, golden: Golden) -> None:
    golden("car.dot", to_dot(car))


def test_golden_car_with_report(car: Circuit, car_checked: Report, golden: Golden) -> None:
    golden("car_report.dot", to_dot(car, car_checked))


def test_golden_curves_without_report(curves: Circuit, golden: Golden) -> None:
    golden("curves.dot", to_dot(curves))


def test_golden_car_left_to_right(car: Circuit, golden: Golden) -> None:
    golden("car_lr.dot", to_dot(car, rankdir="LR", title=False))


def test_output_is_deterministic(curves: Circuit, curves_checked: Report) -> None:
    assert to_dot(curves, curves_checked) == to_dot(curves, curves_checked)
    # The picture follows the spec's order, not the order results come in.
    shuffled = replace(curves_checked, claims=tuple(reversed(curves_checked.claims)))
    assert to_dot(curves, shuffled) == to_dot(curves, curves_checked)


# ---- structure ------------------------------------------------------------------------


def test_layers_are_ranks_in_network_order(car: Circuit) -> None:
    dot = to_dot(car)
    ranks = re.findall(r'subgraph "rank:([^"]+)"', dot)
    assert ranks == ["mixed4b", "mixed4c"]
    block = dot.split('subgraph "rank:mixed4b"')[1].split("}")[0]
    assert "rank=same" in block
    for name in ("windows", "car_body", "wheels"):
        assert f'"f:{name}"' in block
    assert '"L:mixed4b" -> "L:mixed4c" [style=invis];' in dot


def test_layer_order_follows_claims_not_declaration() -> None:
    feats = (
        Feature("late", "mixed4c", (1,), (1.0,)),
        Feature("early", "mixed3a", (2,), (1.0,)),
        Feature("mid", "mixed3b", (3,), (1.0,)),
    )
    claims = (
        Claim(
            "a", "sign", "early -> mid : excites", (("early", "mid"),), payload=SignClaim("excites")
        ),
        Claim(
            "b", "sign", "mid -> late : excites", (("mid", "late"),), payload=SignClaim("excites")
        ),
    )
    c = Circuit("order", None, (), None, feats, (), claims)
    assert layer_order(c) == ["mixed3a", "mixed3b", "mixed4c"]
    assert layer_order(c, ["mixed4c", "mixed3b"]) == ["mixed4c", "mixed3b", "mixed3a"]
    ranks = re.findall(r'subgraph "rank:([^"]+)"', to_dot(c))
    assert ranks == ["mixed3a", "mixed3b", "mixed4c"]


def test_nodes_show_name_ref_label_and_params(car: Circuit, curves: Circuit) -> None:
    dot = to_dot(car)
    line = next(ln for ln in dot.splitlines() if ln.strip().startswith('"f:windows"'))
    assert "<B>windows</B>" in line and "mixed4b:237" in line and "window detector" in line
    fam = next(ln for ln in to_dot(curves).splitlines() if ln.strip().startswith('"F:curve"'))
    assert "243°" in fam and "<B>379</B>" in fam and 'PORT="m6"' in fam


def test_sign_colours_without_report(car: Circuit) -> None:
    dot = to_dot(car)
    for src in ("windows", "car_body", "wheels"):
        line = _edge_line(dot, src, "car")
        assert 'color="#e6550d"' in line  # excitatory: the first claim on each pair
        assert "✓" not in line and "✗" not in line and 'style="dashed"' not in line
    assert "excites at top" in _edge_line(dot, "windows", "car")
    assert "inhibits at bottom" in _edge_line(dot, "windows", "car")


def test_inhibitory_edge_is_blue_with_tee() -> None:
    feats = (Feature("a", "l1", (0,), (1.0,)), Feature("b", "l2", (0,), (1.0,)))
    claim = Claim("x", "sign", "a -> b : inhibits", (("a", "b"),), payload=SignClaim("inhibits"))
    dot = to_dot(Circuit("c", None, (), None, feats, (), (claim,)))
    line = _edge_line(dot, "a", "b")
    assert 'color="#3182bd"' in line and 'arrowhead="tee"' in line


def test_non_sign_claim_is_grey() -> None:
    feats = (Feature("a", "l1", (0,), (1.0,)), Feature("b", "l2", (0,), (1.0,)))
    claim = Claim("x", "rank", "a -> b : among top 5 inputs", (("a", "b"),), payload=RankClaim(5))
    line = _edge_line(to_dot(Circuit("c", None, (), None, feats, (), (claim,))), "a", "b")
    assert 'color="#8c8c8c"' in line


def test_claims_without_edges_become_notes(car: Circuit) -> None:
    dot = to_dot(car)
    assert '"N:car"' in dot and "car within mixed4c_5x5" in dot
    assert '"N:car" -> "f:car"' in dot


def test_names_with_quotes_and_markup_are_escaped() -> None:
    feats = (
        Feature('we"ird', "l1", (0,), (1.0,), label="a <b> & c"),
        Feature("x\\y", "l2", (0,), (1.0,)),
    )
    claim = Claim(
        "q", "sign", 'we"ird -> x\\y : excites', (('we"ird', "x\\y"),), payload=SignClaim("excites")
    )
    dot = to_dot(Circuit('na"me', "d <i>", (), None, feats, (), (claim,)))
    assert '"f:we\\"ird" -> "f:x\\\\y"' in dot
    assert "a &lt;b&gt; &amp; c" in dot and "d &lt;i&gt;" in dot


def test_node_images_are_embedded(car: Circuit, tmp_path) -> None:
    png = tmp_path / "car.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    dot = to_dot(car, node_images={"car": png})
    assert f'<IMG SRC="{png}" SCALE="TRUE"/>' in dot


def test_bad_rankdir_is_rejected(car: Circuit) -> None:
    with pytest.raises(ValueError, match="rankdir"):
        to_dot(car, rankdir="sideways")


# ---- with a report ------------------------------------------------------------------


def test_kernel_cells_use_symmetric_red_blue_scale(car: Circuit, car_checked: Report) -> None:
    line = _edge_line(to_dot(car, car_checked), "windows", "car")
    cells = _kernel_cells(line)
    planted = top_bottom_kernel(0.8, -0.3)
    assert [len(r) for r in cells] == [5] * 5
    # The strongest positive weight (0.8, top row centre) is the saturated red ...
    assert cells[0][2] == POS_HEX
    # ... the negative bottom rows are blue, scaled by the same |max| of 0.8 ...
    assert cells[4][2] == weight_hex(-0.3, 0.8)
    r, _g, b = (int(cells[4][2][i : i + 2], 16) for i in (1, 3, 5))
    assert b > r
    # ... and the zero middle row is white.
    assert set(cells[2]) == {"#ffffff"}
    assert planted[0][2] == 0.8


def test_saturated_blue_for_the_strongest_negative_weight() -> None:
    table = kernel_table([[0.1, -0.5], [0.0, 0.25]])
    colours = re.findall(r'BGCOLOR="(#[0-9a-f]{6})"', table)
    assert colours[1] == NEG_HEX
    assert colours[2] == "#ffffff"


def test_failing_claims_are_marked(car: Circuit, car_checked: Report) -> None:
    dot = to_dot(car, car_checked)
    wheels = _edge_line(dot, "wheels", "car")
    assert 'style="dashed"' in wheels
    assert "✗</FONT>&#160;inhibits at top (z=0.4)" in wheels
    assert "✓</FONT>&#160;excites at bottom (z=2.9)" in wheels
    windows = _edge_line(dot, "windows", "car")
    assert 'style="dashed"' not in windows
    assert "✓</FONT>&#160;excites at top (z=2.41)" in windows
    assert "7 ✓" in dot and "1 ✗" in dot  # the summary in the title


def test_width_follows_measured_strength(car: Circuit, car_checked: Report) -> None:
    dot = to_dot(car, car_checked)

    def width(src: str) -> float:
        return float(re.search(r'penwidth="([0-9.]+)"', _edge_line(dot, src, "car")).group(1))

    assert width("car_body") > width("windows")  # |z| 3.1 vs 2.41
    assert width("car_body") == pytest.approx(4.1)


def test_all_passing_report_has_no_dashed_edges(car: Circuit) -> None:
    dot = to_dot(car, car_report(fail_wheels_top=False))
    assert 'style="dashed"' not in dot and "✗</FONT>&#160;" not in dot


# ---- families -----------------------------------------------------------------------


def test_family_pairs_collapse_into_one_grid(curves: Circuit) -> None:
    dot = to_dot(curves)
    assert dot.count(" -> ") == 2 + 1  # family -> grid -> family, plus the layer chain
    assert '"F:early_curve" -> "G:early_curve->curve"' in dot
    assert '"G:early_curve->curve" -> "F:curve"' in dot
    grid = next(ln for ln in dot.splitlines() if ln.strip().startswith('"G:'))
    assert "9×10" in grid and "30 pairs, 30 claims (15 excite, 15 inhibit)" in grid
    assert grid.count("<TR>") >= 9 + 2
    assert "equivariant under rotation(orientation)" in grid


def test_grid_cells_carry_kernels_and_marks(curves: Circuit, curves_checked: Report) -> None:
    dot = to_dot(curves, curves_checked)
    grid = next(ln for ln in dot.splitlines() if ln.strip().startswith('"G:'))
    # 90 kernels (the equivariance claim measured every pair), 25 cells each.
    assert grid.count('COLOR="#9a9a9a"') == 90
    assert "29 ✓" in grid and "2 ✗" in grid  # 28 pairs + the equivariance claim
    assert grid.count('BORDER="2" COLOR="#c00020"') == 2
    # One colour scale across the grid: only the strongest kernels saturate.
    assert POS_HEX in grid
    assert "correlation=0.82" in grid
    assert 'style="dashed"' in next(ln for ln in dot.splitlines() if '-> "F:curve"' in ln)


def test_few_member_pairs_attach_to_member_ports(curves: Circuit) -> None:
    few = replace(curves, claims=curves.claims[:2])
    dot = to_dot(few)
    assert '"G:' not in dot
    edges = [ln for ln in dot.splitlines() if '"F:early_curve":"m' in ln]
    assert len(edges) == 2 and all('-> "F:curve":"m' in ln for ln in edges)


def test_bundle_threshold_is_configurable(curves: Circuit) -> None:
    few = replace(curves, claims=curves.claims[:2])
    assert '"G:early_curve->curve"' in to_dot(few, bundle_threshold=2)


def test_family_level_claim_with_kernels_but_no_pairs_gets_a_grid(curves: Circuit) -> None:
    eq = replace(curves, claims=curves.claims[-1:])
    plain = to_dot(eq)
    assert '"G:' not in plain and '"F:early_curve" -> "F:curve"' in plain
    kernels = {
        f"{a}->{b}": oriented_kernel(10.0 * i)
        for i, (a, b) in enumerate(
            [(a, b) for a in eq.family("early_curve").members for b in eq.family("curve").members]
        )
    }
    res = ClaimResult(
        "curves.equivariance",
        "fail",
        eq.claims[0].text,
        "x:1",
        {"correlation": 0.1},
        {"correlation": Expected.parse("correlation", ">= 0.5")},
        kernels=kernels,
    )
    dot = to_dot(eq, Report("x", "m", None, (res,)))
    assert '"G:early_curve->curve"' in dot and "✗" in dot


def test_wide_families_wrap_rows() -> None:
    members = tuple(Feature(f"m{i}", "l", (i,), (1.0,), family="big") for i in range(30))
    fam = Family("big", "l", (), tuple(m.name for m in members))
    dot = to_dot(Circuit("w", None, (), None, members, (fam,), ()))
    line = next(ln for ln in dot.splitlines() if ln.strip().startswith('"F:big"'))
    assert line.count("<TR>") == 1 + 3  # header + 12 + 12 + 6


def test_member_notes_merge_into_one_family_note(curves: Circuit) -> None:
    members = curves.family("curve").members
    expects = tuple(
        Claim(
            f"{m}.no_echo",
            "activation",
            f"expect {m} no echo on curve(orientation = 180deg)",
            (),
            (m,),
            payload=ActivationClaim(m, "no_echo", _CURVE_180),
        )
        for m in members
    )
    dot = to_dot(replace(curves, claims=curves.claims + expects))
    assert dot.count('"N:') == 2  # the note node and its dotted link
    assert "expect curve no echo on curve(orientation = 180deg) ×10" in dot
    results = tuple(
        ClaimResult(c.id, "fail" if i == 3 else "pass", c.text, "x:1")
        for i, c in enumerate(expects)
    )
    checked = to_dot(replace(curves, claims=expects), Report("x", "m", None, results))
    assert "×10 (9/10 hold)" in checked and 'shape="note", color="#c00020"' in checked


def test_unused_imported_features_are_left_out(car: Circuit) -> None:
    lib = Span("specs/lib.circ", 3, 1, 3, 20)
    extra = (
        Feature("unused_lib", "mixed4b", (7,), (1.0,), span=lib),
        Feature("unused_here", "mixed4b", (8,), (1.0,)),
    )
    dot = to_dot(replace(car, features=car.features + extra))
    assert '"f:unused_lib"' not in dot
    assert '"f:unused_here"' in dot  # declared in the spec itself: the author wants it


def test_same_layer_member_edges_avoid_ports(curves: Circuit) -> None:
    # Graphviz 2.43 mangles attributes of flat edges with ports; such edges join boxes.
    extra = Feature("hub", "mixed3b", (1,), (1.0,))
    claim = Claim(
        "flat",
        "sign",
        "curve[379] -> hub : excites",
        (("curve[379]", "hub"),),
        payload=SignClaim("excites"),
    )
    dot = to_dot(replace(curves, features=(*curves.features, extra), claims=(claim,)))
    line = next(ln for ln in dot.splitlines() if '-> "f:hub"' in ln)
    assert line.lstrip().startswith('"F:curve" -> "f:hub"')
    assert "curve[379] → hub" in line


def test_long_note_lines_wrap() -> None:
    feat = Feature("a", "l", (0,), (1.0,))
    text = "expect a responds to " + " ".join(f"word{i}" for i in range(30))
    claim = Claim(
        "long",
        "activation",
        text,
        (),
        ("a",),
        payload=ActivationClaim("a", "responds", StimulusRef("word0")),
    )
    dot = to_dot(Circuit("w", None, (), None, (feat,), (), (claim,)))
    note = next(ln for ln in dot.splitlines() if ln.strip().startswith('"N:a"'))
    assert note.count('<BR ALIGN="LEFT"/>') >= 3


def test_member_to_family_claim_is_listed_under_the_grid(curves: Circuit) -> None:
    mixed = Claim(
        "mixed",
        "rank",
        "early_curve[147] -> curve : among top 3 inputs",
        (("early_curve[147]", "curve"),),
        payload=RankClaim(3),
    )
    dot = to_dot(replace(curves, claims=(*curves.claims, mixed)))
    grid = next(ln for ln in dot.splitlines() if ln.strip().startswith('"G:'))
    assert "among top 3 inputs" in grid
    assert '"F:early_curve":"m6" -> "F:curve"' not in dot


def test_intra_family_claims_are_self_loops_without_ports() -> None:
    members = tuple(
        Feature(f"s[{c}]", "mixed3b", (c,), (1.0,), family="s", params=(Param("side", "label", v),))
        for c, v in ((347, "left"), (327, "right"))
    )
    fam = Family("s", "mixed3b", (("side", "label"),), tuple(m.name for m in members))
    claim = Claim(
        "refl",
        "sign",
        "s[347] -> s[327] : inhibits",
        (("s[347]", "s[327]"),),
        payload=SignClaim("inhibits"),
    )
    dot = to_dot(Circuit("r", None, (), None, members, (fam,), (claim,)))
    assert '"F:s" -> "F:s"' in dot and "s[347] → s[327]" in dot


def test_union_edges_show_each_members_own_verdict() -> None:
    feats = (
        Feature("a", "l1", (0,), (1.0,)),
        Feature("b", "l1", (1,), (1.0,)),
        Feature("t", "l2", (0,), (1.0,)),
    )
    union = Claim(
        "u",
        "union",
        "{a, b} -> t : excites",
        (("a", "t"), ("b", "t")),
        payload=UnionClaim("excites"),
    )
    result = ClaimResult(
        "u",
        "fail",
        union.text,
        "x:1",
        {"z": 0.2, "z[a]": 3.0, "z[b]": 0.2},
        {"z": Expected.parse("z", ">= 1")},
    )
    dot = to_dot(
        Circuit("u", None, (), None, feats, (), (union,)), Report("x", "m", None, (result,))
    )
    a, b = _edge_line(dot, "a", "t"), _edge_line(dot, "b", "t")
    assert "✓</FONT>&#160;excites, one of 2 inputs (z=3)" in a and 'style="dashed"' not in a
    assert 'penwidth="4.00"' in a
    assert "✗</FONT>&#160;excites, one of 2 inputs (z=0.2)" in b and 'style="dashed"' in b


def test_golden_family_grid_with_report(golden: Golden) -> None:
    circuit, report = small_family_report()
    golden("family_grid_report.dot", to_dot(circuit, report))


def test_left_to_right_families_stack_members_vertically(curves: Circuit) -> None:
    dot = to_dot(curves, rankdir="LR")
    assert 'rankdir="LR"' in dot
    line = next(ln for ln in dot.splitlines() if ln.strip().startswith('"F:curve"'))
    assert line.count("<TR>") == 1 + 10  # heading + one row per member
