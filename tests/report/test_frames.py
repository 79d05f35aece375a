"""`report.to_pandas()` and `circ check -o results.parquet|csv`: one row per claim per run."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from report_samples import demo_report

from circuitdsl.cli import main
from circuitdsl.report.frames import to_pandas

ROOT = Path(__file__).parents[2]


def test_one_row_per_claim_numbers_as_columns() -> None:
    df = demo_report().to_pandas()
    assert len(df) == 5 and list(df["id"])[:2] == ["a->b.excites", "a->c.excites"]
    assert df["z"].dtype == "float64" and df["total"].dtype == "float64"
    assert df.loc[df.id == "d->c.excites", "z"].item() == 0.25
    assert math.isnan(df.loc[df.id == "e->c.excites", "z"].item())
    assert set(df["z_expected"]) == {">= 1"}
    assert list(df["line"]) == [3, 4, 5, 6, 7] and set(df["file"]) == {"specs/demo.circ"}
    assert (df.status == "fail").sum() == 1


def test_many_runs_stack() -> None:
    df = to_pandas([demo_report("m1"), demo_report("m2")])
    assert len(df) == 10
    wide = df.pivot(index="id", columns="model", values="z")
    assert list(wide.columns) == ["m1", "m2"] and wide.loc["a->c.excites", "m2"] == 2.5


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_writes_a_frame(suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / f"results{suffix}"
    assert main(["check", "specs/curvenet/curve_circuit.circ", "-o", str(out)]) == 0
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(df) == 8 and set(df["status"]) == {"pass"} and set(df["model"]) == {"curvenet"}
    assert (df["z"].abs() >= 1).all()  # every claim here is a sign claim with |z| >= 1


def test_frame_format_needs_a_frame_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["check", str(ROOT / "specs/curvenet/curve_circuit.circ"), "--format", "frame"]) == 2
    )
    assert ".csv or .parquet" in capsys.readouterr().err
