"""`circ inputs` on the planted CNN: ranking, sign, region, kernels, JSON, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from planted_nets import BOTTOM, CENTER, FACTORY, MIXED, TOP, UNIT

from circuitdsl.check.common import region_mask
from circuitdsl.cli import main
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.language.kinds import Region
from circuitdsl.tools.inputs import (
    NEG_RAMP,
    POS_RAMP,
    analyse,
    default_source,
    dominant_region,
    heatmap,
    parse_unit,
)

ROOT = Path(__file__).parents[2]


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_planted_inputs_come_out_on_top_with_sign_and_region(planted_adapter: Any) -> None:
    rep = analyse(planted_adapter, "relu3", UNIT, top=2)
    assert rep.source == "relu2" and rep.source_default
    assert rep.kernel_size == (5, 5) and rep.n_inputs == 16
    exc = {i.channel: i for i in rep.excitatory}
    inh = {i.channel: i for i in rep.inhibitory}
    assert list(exc) == [TOP, CENTER]  # ordered by kernel norm
    assert list(inh) == [BOTTOM, MIXED]
    assert exc[TOP].region == "top" and exc[TOP].rank == 1 and exc[TOP].sign == "+"
    assert exc[CENTER].region == "center"
    assert inh[BOTTOM].region == "bottom" and inh[BOTTOM].sign == "-" and inh[BOTTOM].rank == 2
    # net inhibitory on the right, with a real excitatory part on the left
    assert inh[MIXED].region == "right" and inh[MIXED].opposite == "left"
    assert exc[TOP].opposite is None
    # the numbers are the checker's: norm, sum, z relative to all 16 inputs
    k = planted_adapter.weights("relu2", "relu3")[UNIT]
    assert exc[TOP].norm == pytest.approx(float(k[TOP].norm()), rel=1e-5)
    assert exc[TOP].total == pytest.approx(float(k[TOP].sum()), rel=1e-5)
    rms = float(k.sum(dim=(1, 2)).pow(2).mean().sqrt())
    assert exc[TOP].z == pytest.approx(float(k[TOP].sum()) / rms, rel=1e-4)
    assert torch.allclose(exc[TOP].kernel, k[TOP])


def test_default_source_rule(planted_adapter: Any) -> None:
    # a conv's output is read after its named ReLU; the unit's own chain is skipped
    assert default_source(planted_adapter, "relu3") == "relu2"
    assert default_source(planted_adapter, "conv3") == "relu2"
    assert default_source(planted_adapter, "conv2") == "relu1"
    with pytest.raises(DiagnosticError) as err:
        default_source(planted_adapter, "relu1")
    assert err.value.diagnostics[0].code == "E216"
    # --from may name the pre-activation conv instead: same weights
    a = analyse(planted_adapter, "relu3", UNIT, source="conv2", top=1)
    assert a.source == "conv2" and not a.source_default and a.excitatory[0].channel == TOP


def test_region_follows_cross_correlation_convention() -> None:
    k = torch.zeros(5, 5)
    k[0] = 1.0  # kernel row 0 = the input row above the unit
    assert region_mask(Region(name="top"), 5, 5)[0].all()
    assert dominant_region(k)[0] == "top"
    assert dominant_region(k.flip(0))[0] == "bottom"
    assert dominant_region(k.T)[0] == "left"
    assert dominant_region(k.T.flip(1))[0] == "right"
    c = torch.zeros(3, 3)
    c[1, 1] = 1.0
    assert dominant_region(c)[0] == "center"
    assert dominant_region(torch.ones(5, 5))[0] == "diffuse"
    assert dominant_region(torch.ones(1, 1)) == (None, None)


def test_heatmap_levels_and_signs() -> None:
    k = torch.tensor([[1.0, -1.0, 0.0], [0.5, -0.5, 0.01]])
    rows = heatmap(k)
    assert rows == [
        POS_RAMP[-1] * 2 + NEG_RAMP[-1] * 2 + "  ",
        POS_RAMP[4] * 2 + NEG_RAMP[4] * 2 + "  ",  # 0.5 of the peak -> level 5 of 9
    ]
    assert not set(POS_RAMP) & set(NEG_RAMP) and " " not in POS_RAMP + NEG_RAMP
    assert heatmap(torch.zeros(2, 2)) == ["    ", "    "]


def test_text_shows_tables_and_kernels(capsys: pytest.CaptureFixture[str], planted_weights: Path):
    code, out, err = _run_cli(
        capsys, "inputs", FACTORY, f"relu3:{UNIT}", "--weights", str(planted_weights)
    )
    assert code == 0, err
    assert f"inputs of relu3:{UNIT} from relu2 (default)" in out
    assert "top 5 excitatory inputs (of" in out and "top 5 inhibitory inputs (of" in out
    # relu2:5's kernel: rows 0-1 at full strength, the bottom rows blank
    frame = out[out.index(f"relu2:{TOP} +") :].splitlines()
    assert frame[2].strip().startswith("|" + "@" * 10 + "|")
    assert "|          |" in frame[5]


def test_json_parses_and_matches_text(
    capsys: pytest.CaptureFixture[str], planted_weights: Path
) -> None:
    args = ("inputs", FACTORY, f"relu3:{UNIT}", "--weights", str(planted_weights), "--top", "3")
    code, text, _ = _run_cli(capsys, *args)
    assert code == 0
    code, out, _ = _run_cli(capsys, *args, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["unit"] == f"relu3:{UNIT}" and data["source"] == "relu2"
    assert data["source_chosen"] == "default" and data["kernel_size"] == [5, 5]
    assert [i["channel"] for i in data["excitatory"]][:2] == [TOP, CENTER]
    table = [line.split() for line in text.splitlines() if line.startswith("  relu2:")]
    rows = {r[0]: r for r in table if r[1].isdigit()}  # not the kernels' labels
    for item in data["excitatory"] + data["inhibitory"]:
        row = rows[item["ref"]]
        assert int(row[1]) == item["rank"]
        assert float(row[2]) == pytest.approx(item["norm"], rel=1e-3)
        assert float(row[4]) == pytest.approx(item["sum"], rel=1e-3, abs=1e-6)
        assert row[6] == (item["region"] or "-")
        kernel = torch.tensor(item["kernel"])
        assert kernel.shape == (5, 5)
        assert heatmap(kernel)[0] in text
    top_kernel = data["excitatory"][0]["kernel"]
    assert top_kernel[0] == [1.0] * 5 and top_kernel[4][0] == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize(
    ("unit", "extra", "code"),
    [
        ("relu9:0", (), "E201"),  # unknown layer
        ("relu3:12", (), "E202"),  # channel out of range (12 channels)
        ("relu3", (), "E300"),  # not LAYER:CH
        ("relu3:-1", (), "E300"),
        ("relu2:0", ("--from", "relu3"), "E203"),  # --from downstream
        ("relu3:0", ("--from", "nowhere"), "E201"),
        ("relu3:0", ("--top", "0"), "E300"),
        ("relu1:0", (), "E216"),  # no earlier conv layer
    ],
)
def test_bad_input_exits_2_with_a_diagnostic(
    capsys: pytest.CaptureFixture[str], planted_weights: Path, unit: str, extra: tuple, code: str
) -> None:
    rc, out, err = _run_cli(
        capsys, "inputs", FACTORY, unit, "--weights", str(planted_weights), *extra
    )
    assert rc == 2, err
    assert f"error[{code}]" in err
    assert "Traceback" not in err and "internal error" not in err
    assert out == ""


def test_real_entry_point_no_traceback(planted_weights: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    w = str(planted_weights)
    r = subprocess.run(
        [sys.executable, "-m", "circuitdsl", "inputs", FACTORY, "relu3:99", "--weights", w],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "error[E202]" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_parse_unit() -> None:
    assert parse_unit("layer3.1.conv2:17") == ("layer3.1.conv2", 17)
    with pytest.raises(DiagnosticError):
        parse_unit(":3")


def test_compact_json_is_the_same_data(planted_adapter: Any) -> None:
    rep = analyse(planted_adapter, "relu3", UNIT, top=3)
    text = rep.to_json()
    assert json.loads(text) == json.loads(json.dumps(rep.to_dict()))
    assert '"kernel_size": [5, 5]' in text  # number lists stay on one line
