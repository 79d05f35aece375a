"""Sweeps (circuitdsl.sweep): one spec over many checkpoints, on a process pool or Ray.

The brief's promise: four checkpoints of curvenet, two of them identical and one corrupt,
give the same table on the local pool and on a local Ray, the same rows for the identical
two, and an `error` row (not a lost run) for the corrupt one.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.cli import main
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.models.registry import load_model
from circuitdsl.models.reload import with_weights
from circuitdsl.sweep import (
    BASE_COLUMNS,
    SweepTable,
    Task,
    check_checkpoints,
    check_models,
    expand_checkpoints,
    run_tasks,
    spec_ref,
    step_of,
)
from circuitdsl.zoo import get_zoo_entry

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "specs" / "curvenet" / "curve_circuit.circ"
# Columns that name the file rather than describe what was measured in it.
WHERE = ("checkpoint", "step", "weights")


def _verdicts(report: Any) -> dict[str, Any]:
    """A report's JSON without its provenance: the date and seconds differ run to run
    (the rest, weights hash and versions, is compared by the verdict fields anyway)."""
    doc = report.to_dict()
    doc.pop("provenance", None)
    for run in doc["runs"]:
        run.pop("provenance", None)
    return doc


def _perturbed(path: Path, seed: int, scale: float = 0.05) -> None:
    state = load_file(str(get_zoo_entry("curvenet").weights_path()))
    g = torch.Generator().manual_seed(seed)
    save_file({k: v + scale * torch.randn(v.shape, generator=g) for k, v in state.items()}, path)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """step 100 and step 200: the shipped weights twice; step 300 perturbed; 400 corrupt."""
    root = tmp_path_factory.mktemp("run")
    shipped = get_zoo_entry("curvenet").weights_path()
    shutil.copy(shipped, root / "step_000100.safetensors")
    shutil.copy(shipped, root / "step_000200.safetensors")
    _perturbed(root / "step_000300.safetensors", seed=0)
    (root / "step_000400.safetensors").write_bytes(shipped.read_bytes()[:4096])  # truncated
    return root


@pytest.fixture(scope="module")
def spec() -> Any:
    return circuitdsl.load(SPEC)


@pytest.fixture(scope="module")
def local_table(spec: Any, ckpts: Path) -> SweepTable:
    return spec.check_checkpoints("curvenet", str(ckpts / "step_*.safetensors"), workers=2)


def _by_checkpoint(table: SweepTable) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in table.rows:
        out.setdefault(Path(row["checkpoint"]).name, []).append(
            {k: v for k, v in row.items() if k not in WHERE}
        )
    return out


def _assert_the_promise(table: SweepTable, n_claims: int) -> None:
    rows = _by_checkpoint(table)
    assert list(rows) == [f"step_000{s}00.safetensors" for s in (1, 2, 3, 4)]
    assert all(len(r) == n_claims for r in rows.values())  # claims x checkpoints
    # Identical files, identical rows (every number, every verdict, every text).
    assert rows["step_000100.safetensors"] == rows["step_000200.safetensors"]
    assert all(r["status"] == "pass" for r in rows["step_000100.safetensors"])
    # Perturbed weights measure differently: the rows depend on the file, not its name.
    assert rows["step_000300.safetensors"] != rows["step_000100.safetensors"]
    assert [r["z"] for r in rows["step_000300.safetensors"]] != [
        r["z"] for r in rows["step_000100.safetensors"]
    ]
    # The corrupt file: an error row per claim, saying why, and the sweep went on.
    bad = rows["step_000400.safetensors"]
    assert {r["status"] for r in bad} == {"error"}
    assert all("E211" in r["detail"] and "step_000400" in r["detail"] for r in bad)
    assert [r["step"] for r in table.rows[::n_claims]] == [100, 200, 300, 400]


def test_local_pool_keeps_the_promise(spec: Any, local_table: SweepTable) -> None:
    _assert_the_promise(local_table, len(spec.claims))
    # Two worker processes shared the work.
    assert len({r.pid for r in local_table.results}) == 2


def test_ray_gives_the_same_table(spec: Any, ckpts: Path, local_table: SweepTable) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install circuitdsl[ray])")
    from circuitdsl.sweep import _pythonpath

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}},
    )
    try:
        table = spec.check_checkpoints(
            "curvenet", str(ckpts / "step_*.safetensors"), executor="ray"
        )
    finally:
        ray.shutdown()
    _assert_the_promise(table, len(spec.claims))
    assert table.rows == local_table.rows
    assert table.to_csv() == local_table.to_csv()


def test_inline_equals_the_pool(spec: Any, ckpts: Path, local_table: SweepTable) -> None:
    table = spec.check_checkpoints("curvenet", str(ckpts / "step_*.safetensors"), executor="inline")
    assert table.rows == local_table.rows


def test_rows_are_the_reports_of_check_spec(
    spec: Any, ckpts: Path, local_table: SweepTable
) -> None:
    """A sweep row holds exactly what a single `circ check --weights FILE` measures."""
    path = str(ckpts / "step_000300.safetensors")
    alone = check_spec(spec.circuit, "curvenet", path, program=spec.program)
    rows = [r for r in local_table.rows if r["checkpoint"] == path]
    assert [r["id"] for r in rows] == [c.id for c in alone.claims]
    assert [r["status"] for r in rows] == [c.status for c in alone.claims]
    assert [r["z"] for r in rows] == [c.measured["z"] for c in alone.claims]
    assert _verdicts(local_table.reports()[2]) == _verdicts(alone)
    assert local_table.reports()[3] is None


def test_a_shared_trace_measures_what_a_fresh_load_does(tmp_path: Path, spec: Any) -> None:
    """`with_weights` (trace once, load state dicts) against `load_model` per file."""
    template = load_model("curvenet")
    before = _verdicts(check_spec(spec.circuit, template, program=spec.program))
    for seed in (1, 2):
        path = tmp_path / f"p{seed}.safetensors"
        _perturbed(path, seed, scale=0.2)
        shared = with_weights(template, path)
        assert shared is not None and shared.module is not template.module
        assert shared.graph.gm is not template.graph.gm
        fresh = load_model("curvenet", path)
        a = _verdicts(check_spec(spec.circuit, shared, path, program=spec.program))
        b = _verdicts(check_spec(spec.circuit, fresh, path, program=spec.program))
        assert a == b
        assert a != before
        x = torch.rand(2, 3, 32, 32)
        assert torch.equal(
            shared.activations(x, ["conv3"])["conv3"], fresh.activations(x, ["conv3"])["conv3"]
        )
    # The template itself still has its own weights.
    assert _verdicts(check_spec(spec.circuit, template, program=spec.program)) == before


def test_with_weights_declines_what_it_cannot_share(tmp_path: Path) -> None:
    template = load_model("curvenet")
    state = load_file(str(get_zoo_entry("curvenet").weights_path()))
    state.pop("fc.bias")
    save_file(state, tmp_path / "short.safetensors")
    assert with_weights(template, tmp_path / "short.safetensors") is None  # the loader explains
    with pytest.raises(DiagnosticError) as err:
        with_weights(template, tmp_path / "absent.safetensors")
    assert err.value.diagnostics[0].code == "E210"


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("runs/a/step_000500.safetensors", 500),
        ("ckpt-1200.pt", 1200),
        ("model_step12.pth", 12),
        ("global_step300.bin", 300),
        ("epoch=3.ckpt", 3),
        ("checkpoint-300/model.safetensors", 300),
        ("750.pt", 750),
        ("curvenet_seed0.safetensors", None),
        ("weights.pth", None),
        ("resnet50.pth", None),
    ],
)
def test_step_of(name: str, step: int | None) -> None:
    assert step_of(name) == step


def test_expand_checkpoints(tmp_path: Path) -> None:
    for s in (1200, 500, 30):
        (tmp_path / f"ckpt-{s}.pt").write_bytes(b"")
    assert [Path(p).name for p in expand_checkpoints(str(tmp_path / "*.pt"))] == [
        "ckpt-30.pt",
        "ckpt-500.pt",
        "ckpt-1200.pt",
    ]
    listing = tmp_path / "list.txt"
    listing.write_text("# a list\nckpt-500.pt\n\n/abs/missing.pt\nckpt-30.pt\n")
    assert expand_checkpoints(str(listing)) == [
        str(tmp_path / "ckpt-500.pt"),
        "/abs/missing.pt",
        str(tmp_path / "ckpt-30.pt"),
    ]
    for empty in (str(tmp_path / "*.safetensors"), []):
        with pytest.raises(DiagnosticError) as err:
            expand_checkpoints(empty)
        assert err.value.diagnostics[0].code == "E310"


def test_missing_checkpoint_and_writers(tmp_path: Path, spec: Any) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    shipped = str(get_zoo_entry("curvenet").weights_path())
    table = check_checkpoints(
        spec, None, [shipped, str(tmp_path / "gone.safetensors")], executor="inline"
    )
    n = len(spec.claims)
    assert [r["status"] for r in table.rows[n:]] == ["error"] * n
    assert "E210" in table.rows[n]["detail"]
    assert not table.ok
    assert table.columns[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    expected = table.to_pandas()
    for suffix in (".csv", ".parquet", ".json"):
        out = tmp_path / f"table{suffix}"
        table.write(out)
        if suffix == ".csv":
            got = pd.read_csv(out, keep_default_na=False, na_values=[""])
        elif suffix == ".parquet":
            got = pd.read_parquet(out)
        else:
            got = pd.DataFrame(json.loads(out.read_text()))
        assert list(got["checkpoint"]) == list(expected["checkpoint"])
        assert list(got["status"]) == list(expected["status"])
        assert got["z"].astype(float).round(12).tolist()[:n] == expected["z"].round(12).tolist()[:n]
        assert got["z"].astype(float).isna().sum() == n  # the missing file's rows
    with pytest.raises(DiagnosticError):
        table.encode("table.xlsx")


def test_worker_death_costs_only_its_task(spec: Any) -> None:
    """A task whose model kills its worker process: error rows; the others complete."""
    ref = spec_ref(spec)
    shipped = str(get_zoo_entry("curvenet").weights_path())
    tasks = [
        Task(0, ref, "curvenet", shipped, "good"),
        Task(1, ref, "tests.sweep.killer:build", shipped, "killer"),
        Task(2, ref, "curvenet", shipped, "good again"),
    ]
    results = run_tasks(tasks, workers=1, executor="local")
    assert [r.error is None for r in results] == [True, False, True]
    assert "died" in (results[1].error or "")
    assert results[0].rows[0]["status"] == "pass"


def test_models_feed_the_universality_table(spec: Any) -> None:
    from circuitdsl.report.universality import universality_table

    models = ["curvenet", "curvenet-seed1", "no-such-model"]
    reports, table = check_models(spec, models, executor="inline")
    alone = [check_spec(spec.circuit, m, program=spec.program) for m in models[:2]]
    assert [_verdicts(r) for r in reports[:2]] == [_verdicts(r) for r in alone]
    assert {c.status for c in reports[2].claims} == {"error"}
    assert "E200" in reports[2].claims[0].detail
    text = universality_table(reports)
    assert "curvenet-seed1" in text and "no-such-model" in text
    assert table.checkpoints == models


def test_cli_checkpoints(tmp_path: Path, ckpts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    glob = str(ckpts / "step_00010*.safetensors")
    out = tmp_path / "t.csv"
    rc = main(["check", str(SPEC), "--checkpoints", glob, "--executor", "inline", "-o", str(out)])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("checkpoint,step,")
    assert len(lines) == 1 + len(circuitdsl.load(SPEC).claims)
    rc = main(
        ["check", str(SPEC), "--checkpoints", str(ckpts / "*.safetensors"), "--executor", "inline"]
    )
    text = capsys.readouterr().out
    assert rc == 1  # the corrupt checkpoint
    assert "claims x checkpoints" in text and "E211" in text
    rc = main(["check", str(SPEC), "--checkpoints", str(tmp_path / "none*.pt")])
    assert rc == 2 and "E310" in capsys.readouterr().err
    rc = main(["check", str(SPEC), "--checkpoints", glob, "--weights", "x.pt"])
    assert rc == 2 and "E300" in capsys.readouterr().err


def test_cli_ray_missing(
    monkeypatch: pytest.MonkeyPatch, ckpts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    glob = str(ckpts / "step_00010*.safetensors")
    rc = main(["check", str(SPEC), "--checkpoints", glob, "--executor", "ray"])
    assert rc == 2 and "E311" in capsys.readouterr().err


def test_cli_models_through_the_pool(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "check",
            str(SPEC),
            "--model",
            "curvenet",
            "--model",
            "curvenet-seed1",
            "--executor",
            "inline",
        ]
    )
    text = capsys.readouterr().out
    assert "universality: claims x models" in text
    assert rc == 1  # seed 1 does not have seed 0's channels in these roles


def test_aggregate_verdicts_become_rows() -> None:
    """Reports with aggregate verdicts (one per quantified line) give a row each."""
    from types import SimpleNamespace

    from circuitdsl.report.model import ClaimResult
    from circuitdsl.sweep import report_rows

    claim = ClaimResult("a->b.excites", "pass", "a -> b : excites", "s.circ:3", {"z": 1.5})
    agg = {
        "source": "s.circ:4",
        "text": "for l in line: l -> b : excites",
        "status": "fail",
        "passed": 3,
        "of": 10,
        "base_rate": 0.2,
        "p_value": None,
        "alpha": 0.01,
    }
    report = SimpleNamespace(
        spec="s.circ",
        circuit="c",
        model="m",
        weights="w.pt",
        claims=(claim,),
        aggregates=(SimpleNamespace(to_dict=lambda: agg),),
    )
    rows = report_rows(report, "w.pt", 7)  # type: ignore[arg-type]
    assert [r["kind"] for r in rows] == ["", "aggregate"]
    assert rows[1]["id"] == "aggregate:s.circ:4" and rows[1]["status"] == "fail"
    assert rows[1]["passed"] == 3.0 and rows[1]["of"] == 10.0 and rows[1]["step"] == 7
    assert rows[1]["p_value"] != rows[1]["p_value"]  # null -> NaN
    table = SweepTable(rows)
    assert "passed" in table.columns and json.loads(table.to_json())[1]["p_value"] is None


def test_behaviour_selectors_are_chosen_on_each_checkpoint(ckpts: Path) -> None:
    """A spec with `top K of ...` travels as its file; workers compile it and choose the
    units again on every checkpoint, exactly as this process does."""
    spec = circuitdsl.load(REPO / "specs" / "curvenet" / "universal.circ")
    assert spec_ref(spec).kind == "path"
    paths = [str(ckpts / "step_000100.safetensors"), str(ckpts / "step_000300.safetensors")]
    pooled = check_checkpoints(spec, None, paths, workers=2)
    inline = check_checkpoints(spec, None, paths, executor="inline")
    assert pooled.rows == inline.rows
    assert all(r["status"] != "error" for r in pooled.rows)
    assert pooled.reports()[0] is not None and pooled.reports()[0].selections
