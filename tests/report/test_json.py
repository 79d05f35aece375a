"""The JSON report's contract: its shipped schema, one shape for one or many runs,
provenance, selections and kernels as data, and the read-back."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from report_samples import AGGREGATE, demo_report

from circuitdsl.cli import main
from circuitdsl.report.model import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    ClaimResult,
    Report,
    document,
    load_schema,
    reports_from_dict,
)

ROOT = Path(__file__).parents[2]
VALIDATOR = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def errors(doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_the_schema_is_a_valid_schema_shipped_in_the_package() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())
    assert SCHEMA_PATH.parent.name == "report" and SCHEMA_PATH.parent.parent.name == "circuitdsl"
    assert load_schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_one_run_meets_the_brief_and_the_schema() -> None:
    rep = demo_report(aggregates=(AGGREGATE,))
    doc = json.loads(rep.to_json(), parse_constant=lambda c: pytest.fail(f"constant {c}"))
    assert errors(doc) == []
    assert doc["schema_version"] == SCHEMA_VERSION
    # the brief's keys at the top level for one model ...
    assert doc["spec"] == "specs/demo.circ"
    assert doc["model"] == {"name": "demo", "weights": "w.safetensors"}
    assert doc["summary"] == {"pass": 3, "fail": 1, "error": 1}
    assert doc["aggregates"] == [AGGREGATE]
    c = doc["claims"][3]
    assert c["status"] == "error" and c["measured"]["z"] is None  # NaN is null
    assert (c["file"], c["line"], c["source"]) == ("specs/demo.circ", 6, "specs/demo.circ:6")
    # ... and the same run in `runs`, the shape of many
    assert len(doc["runs"]) == 1 and doc["runs"][0]["claims"] == doc["claims"]
    assert doc["provenance"]["weights_sha256"] == "ab" * 32
    assert doc["selected"] == ["curve = top 1 of conv2 by curve(): conv2:16 (z 3.1 at 185)"]
    member = doc["selections"][0]
    assert (member["channel"], member["score"], member["value"]) == (16, 3.1, 185.0)


def test_many_runs_are_one_object_with_totals() -> None:
    doc = document([demo_report("m1"), demo_report("m2")])
    assert errors(doc) == []
    assert isinstance(doc, dict) and [r["model"]["name"] for r in doc["runs"]] == ["m1", "m2"]
    assert doc["summary"] == {"pass": 6, "fail": 2, "error": 2}
    assert "claims" not in doc and "model" not in doc  # no run is singled out
    back = reports_from_dict(json.loads(json.dumps(doc)))
    assert [r.model for r in back] == ["m1", "m2"]
    with pytest.raises(ValueError, match="2 runs"):
        Report.from_dict(doc)


def test_schema_rejects_what_breaks_the_contract() -> None:
    doc = demo_report().to_dict()
    bad_status = json.loads(json.dumps(doc))
    bad_status["claims"][0]["status"] = "passed"
    assert errors(bad_status)
    text_score = json.loads(json.dumps(doc))
    text_score["runs"][0]["selections"][0]["score"] = "3.1"  # scores are numbers
    assert errors(text_score)
    no_version = {k: v for k, v in doc.items() if k != "schema_version"}
    assert errors(no_version)
    bad_hash = json.loads(json.dumps(doc))
    bad_hash["runs"][0]["provenance"]["weights_sha256"] = "not-a-hash"
    assert errors(bad_hash)


def test_round_trip_keeps_everything() -> None:
    evidence = {"before": [0.5, 0.25], "after": [0.125, float("nan")]}
    rep = demo_report(aggregates=(AGGREGATE,))
    first = rep.claims[0]
    rep = Report(
        **{
            **{f: getattr(rep, f) for f in rep.__dataclass_fields__},
            "claims": (
                ClaimResult(
                    **{
                        **{f: getattr(first, f) for f in first.__dataclass_fields__},
                        "evidence": evidence,
                        "kernels": {"a->b": [[1.0, -2.0], [0.5, 0.0]]},
                    }
                ),
                *rep.claims[1:],
            ),
        }
    )
    doc = json.loads(rep.to_json(with_kernels=True))
    assert errors(doc) == []
    assert doc["claims"][0]["evidence"] == {"before": [0.5, 0.25], "after": [0.125, None]}
    assert doc["claims"][0]["kernels"] == {"a->b": [[1.0, -2.0], [0.5, 0.0]]}
    assert "kernels" not in json.loads(rep.to_json())["claims"][0]  # kernels are opt-in
    back = Report.from_json(rep.to_json(with_kernels=True))
    assert back.summary == rep.summary and back.provenance == rep.provenance
    assert back.selection_data == rep.selection_data and back.selections == rep.selections
    assert back.claims[0].kernels == rep.claims[0].kernels
    assert back.claims[0].edges == rep.claims[0].edges
    assert math.isnan(back.claims[3].measured["z"])


def test_repr_is_short() -> None:
    text = repr(demo_report())
    assert text == "<Report demo on demo: 5 claims, 3 passed, 1 failed, 1 errors>"


@pytest.fixture
def _root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.usefixtures("_root")
def test_cli_json_of_a_real_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    spec = "specs/curvenet/curve_circuit.circ"
    assert main(["check", spec, "-o", str(out), "--kernels"]) == 0  # format from the suffix
    assert "8 passed" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert errors(doc) == []
    prov = doc["provenance"]
    weights = Path(doc["model"]["weights"])
    assert prov["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert prov["device"] == "cpu" and prov["package"].startswith("circuitdsl ")
    import torch

    assert prov["torch"] == torch.__version__
    kernel = doc["claims"][0]["kernels"]["line[22]->curve[7]"]
    assert len(kernel) >= 3 and all(isinstance(v, float) for row in kernel for v in row)


@pytest.mark.usefixtures("_root")
def test_cli_json_of_two_models_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "specs/curvenet/curve_circuit.circ"
    code = main(
        ["check", spec, "--model", "curvenet", "--model", "curvenet-seed1", "--format", "json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert errors(doc) == []
    assert [r["model"]["name"] for r in doc["runs"]] == ["curvenet", "curvenet-seed1"]
    assert doc["summary"]["pass"] == sum(r["summary"]["pass"] for r in doc["runs"])
    assert code == (0 if doc["summary"]["fail"] == doc["summary"]["error"] == 0 else 1)
    hashes = {r["provenance"]["weights_sha256"] for r in doc["runs"]}
    assert len(hashes) == 2  # different weights, different hashes
