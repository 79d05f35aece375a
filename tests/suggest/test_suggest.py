"""`circ suggest` on the planted CNN: the draft states the planted structure and passes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from planted_nets import BOTTOM, CENTER, FACTORY, MID, MIXED, RIGHT, TOP, TOP_INH, UNIT

import circuitdsl
from circuitdsl.check.engine import check
from circuitdsl.cli import main
from circuitdsl.language.syntax.fmt import format_spec
from circuitdsl.language.syntax.parser import parse
from circuitdsl.models.bind import bind
from circuitdsl.tools.suggest import candidate_claims, feature_name, suggest

# A draft's model is a factory: a spec may call it only when allowed (E220).
ALLOW = ("--allow-factory", FACTORY)


def _draft(tmp_path: Path, weights: Path, *extra: str, name: str = "draft.circ") -> str:
    out = tmp_path / name
    args = ["suggest", FACTORY, f"relu3:{UNIT}", "--weights", str(weights), "-o", str(out)]
    assert main([*args, *extra]) == 0
    return out.read_text()


def _claims(text: str, src: str, dst: str) -> list[str]:
    """The claim items on the `src -> dst : ...` line of a draft."""
    m = re.search(rf"^{src} -> {dst} : (.*)$", text, re.M)
    assert m is not None, f"no line for {src} -> {dst}"
    return [c.strip() for c in m.group(1).split(",")]


def test_draft_states_the_planted_structure(tmp_path: Path, planted_weights: Path) -> None:
    text = _draft(tmp_path, planted_weights)
    unit = f"relu3_{UNIT}"
    assert _claims(text, f"relu2_{TOP}", unit) == [
        "excites",
        "excites at top",
        "strongest at top",
        "among top 1 inputs",
    ]
    assert _claims(text, f"relu2_{BOTTOM}", unit) == [
        "inhibits",
        "inhibits at bottom",
        "among top 2 inputs",
    ]
    assert "excites at center" in _claims(text, f"relu2_{CENTER}", unit)
    # net inhibitory (z -0.8: `inhibits` fails, so it is left out), right -, left +
    mixed = _claims(text, f"relu2_{MIXED}", unit)
    assert "inhibits" not in mixed and {"inhibits at right", "excites at left"} <= set(mixed)
    assert "# not claimed: inhibits (z = -0.8, needs z <= -1)" in text


def test_header_features_and_format(tmp_path: Path, planted_weights: Path) -> None:
    text = _draft(tmp_path, planted_weights)
    lines = text.splitlines()
    assert lines[0].startswith("# Drafted from the weights")
    assert f"circ suggest {FACTORY} relu3:{UNIT} --top 3 --depth 1 --weights" in lines[1]
    assert f'circuit draft_relu3_{UNIT} "inputs of relu3:{UNIT}' in text
    assert f"model {FACTORY}" in lines
    feats = re.findall(r"^feature (\w+) = (\S+)", text, re.M)
    assert feats[0] == (f"relu3_{UNIT}", f"relu3:{UNIT}")
    assert len(feats) == 1 + 3 + 3  # the unit, 3 excitatory, 3 inhibitory inputs
    assert format_spec(parse(text, "draft.circ")) == text
    assert main(["fmt", "--check", str(tmp_path / "draft.circ")]) == 0


def test_draft_passes_circ_check(
    tmp_path: Path, planted_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _draft(tmp_path, planted_weights)
    err = capsys.readouterr().err
    assert "drafted 7 features and" in err and "left out" in err
    assert main(["check", str(tmp_path / "draft.circ"), "--weights", str(planted_weights)]) == 2
    assert "E220" in capsys.readouterr().err  # not without the opt-in
    assert (
        main(["check", str(tmp_path / "draft.circ"), *ALLOW, "--weights", str(planted_weights)])
        == 0
    )
    assert "0 failed, 0 errors" in capsys.readouterr().out


def test_changing_the_planted_kernel_changes_the_draft(
    tmp_path: Path, planted_weights: Path, moved_weights: Path
) -> None:
    before = _draft(tmp_path, planted_weights, name="a.circ")
    again = _draft(tmp_path, planted_weights, name="a.circ")
    moved = _draft(tmp_path, moved_weights, name="b.circ")
    assert before == again  # deterministic
    unit = f"relu3_{UNIT}"
    assert _claims(moved, f"relu2_{TOP}", unit) == [
        "excites",
        "excites at bottom",
        "strongest at bottom",
        "among top 1 inputs",
    ]
    assert before.replace(str(planted_weights), "W") != moved.replace(str(moved_weights), "W")
    assert main(["check", str(tmp_path / "b.circ"), *ALLOW, "--weights", str(moved_weights)]) == 0
    # and the first draft no longer holds on the moved weights
    assert main(["check", str(tmp_path / "a.circ"), *ALLOW, "--weights", str(moved_weights)]) == 1


def test_depth_2_adds_the_inputs_of_the_inputs(tmp_path: Path, planted_weights: Path) -> None:
    text = _draft(tmp_path, planted_weights, "--depth", "2", "--top", "2")
    mid = f"relu2_{MID}"
    assert "# inputs of relu2:5 from relu1 (default source; 8 channels, 5x5 kernels)" in text
    assert _claims(text, f"relu1_{RIGHT}", mid)[:4] == [
        "excites",
        "excites at right",
        "strongest at right",
        "among top 1 inputs",
    ]
    assert {"inhibits", "inhibits at top"} <= set(_claims(text, f"relu1_{TOP_INH}", mid))
    feats = re.findall(r"^feature (\w+)", text, re.M)
    assert len(feats) == len(set(feats))
    assert any(f.startswith("relu1_") for f in feats)
    assert (
        main(["check", str(tmp_path / "draft.circ"), *ALLOW, "--weights", str(planted_weights)])
        == 0
    )
    assert main(["fmt", "--check", str(tmp_path / "draft.circ")]) == 0


def test_every_claim_of_the_draft_passes_and_failures_are_listed(planted_adapter: Any) -> None:
    draft = suggest(planted_adapter, "relu3", UNIT, top=4)
    spec = circuitdsl.loads(draft.text)
    report = check(spec.circuit, bind(spec.circuit, planted_adapter))
    assert report.claims and all(c.status == "pass" for c in report.claims)
    assert len(report.claims) == draft.n_claims
    for e in draft.edges:
        assert set(e.kept) | {c for c, _ in e.dropped} == set(e.candidates)
        assert f"{e.src} -> {e.dst}" in draft.text or not e.kept
        for claim, why in e.dropped:
            assert f"# not claimed: {claim} ({why})" in draft.text


def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], planted_weights: Path) -> None:
    w = str(planted_weights)
    for args, code in (
        (["relu3:50"], "E202"),
        (["conv9:0"], "E201"),
        (["relu3:0", "--depth", "3"], "E300"),
        (["relu3:0", "--from", "relu3"], "E203"),
    ):
        assert main(["suggest", FACTORY, *args, "--weights", w]) == 2
        err = capsys.readouterr().err
        assert f"error[{code}]" in err and "Traceback" not in err


def test_names_and_candidates() -> None:
    assert feature_name("layer3.1.conv2", 17) == "layer3_1_conv2_17"
    assert feature_name("0", 3) == "u_0_3"

    class Fake:
        sign, region, opposite, rank = "-", "bottom", "top", 7

    assert candidate_claims(Fake()) == [  # type: ignore[arg-type]
        "inhibits",
        "inhibits at bottom",
        "excites at top",
        "among top 7 inputs",
    ]


@pytest.mark.parametrize("command", ["inputs", "suggest"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: circ {command}" in out and "MODEL LAYER:CH" in out and "--from LAYER" in out
