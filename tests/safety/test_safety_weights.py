"""Every bad weight file named: damaged at many offsets, of odd dtypes, NaN, incomplete.

The damage sweep reads files directly (`read_state_dict`, thousands of inputs in
seconds); a sample of them goes through `circ layers` to check the exit status and
the message. A damaged file is never "would run code" (E213) and never a crash.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.models.checkpoint import WeightsNote, read_state_dict
from tests.models.factories import small_cnn
from tests.safety.harness import circ, tally

FACTORY = "tests.models.factories:small_cnn"


def _formats(folder: Path) -> dict[str, bytes]:
    state = small_cnn().state_dict()
    torch.save(state, folder / "zip.pt")
    torch.save(state, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "w.safetensors"))
    return {
        ".pt": (folder / "zip.pt").read_bytes(),
        ".pth": (folder / "legacy.pt").read_bytes(),
        ".safetensors": (folder / "w.safetensors").read_bytes(),
    }


def _outcome(path: Path) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WeightsNote)
            read_state_dict(path)
    except DiagnosticError as err:
        return err.diagnostics[0].code
    return "ok"


def _offsets(n: int, rng: random.Random, count: int) -> list[int]:
    # Every byte of the headers (where the format lives), then a sample of the rest.
    return sorted({*range(min(n, 160)), *(rng.randrange(n) for _ in range(count))})


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_truncated_files_are_corrupt_never_unsafe(tmp_path: Path, suffix: str) -> None:
    data = _formats(tmp_path)[suffix]
    rng = random.Random(16)
    seen = set()
    for off in _offsets(len(data), rng, 120):
        bad = tmp_path / f"cut{suffix}"
        bad.write_bytes(data[:off])
        outcome = _outcome(bad)
        tally(f"weights {outcome}")
        seen.add(outcome)
        assert outcome == "E211", f"{suffix} cut at {off} of {len(data)}: {outcome}"
    assert seen == {"E211"}


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_flipped_bytes_never_crash_or_claim_code(tmp_path: Path, suffix: str) -> None:
    data = _formats(tmp_path)[suffix]
    rng = random.Random(61)
    outcomes: dict[str, int] = {}
    for off in _offsets(len(data), rng, 120):
        damaged = bytearray(data)
        damaged[off] ^= 0xFF
        bad = tmp_path / f"flip{suffix}"
        bad.write_bytes(bytes(damaged))
        outcome = _outcome(bad)  # any other exception fails the test here
        tally(f"weights {outcome}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        # A flip inside tensor data leaves a readable file ("ok") or a NaN (E222).
        assert outcome in ("E211", "E222", "E212", "ok"), f"{suffix} flipped at {off}: {outcome}"
    assert outcomes.get("E211", 0) > 20  # the header flips were caught


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_damaged_files_through_the_cli(tmp_path: Path, suffix: str) -> None:
    data = _formats(tmp_path)[suffix]
    for off in (0, 1, 7, 64, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(data[:off])
        result = circ("layers", FACTORY, "--weights", str(bad))
        assert result.code == 2 and "E211" in result.err and "truncated" in result.err
        assert len(result.err) < 1500


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("image.pt", b"\x89PNG\r\n\x1a\n" + bytes(200)),
        ("notes.pth", b"these are not weights\n" * 20),
        ("empty.pt", b""),
        ("arrays.pt", b"PK\x03\x04" + bytes(100)),  # a broken zip
        ("model.h5", b"\x89HDF\r\n\x1a\n" + bytes(100)),
        ("w.safetensors", (2**60).to_bytes(8, "little") + b"{}"),  # a header length of 2^60
        ("list.pt", None),  # a valid pickle of a list, not a state dict
    ],
)
def test_files_of_another_format_are_named(tmp_path: Path, name: str, data: bytes | None) -> None:
    path = tmp_path / name
    if data is None:
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(data)
    result = circ("layers", FACTORY, "--weights", str(path))
    assert result.code == 2 and "E211" in result.err and str(path) in result.err
    assert len(result.err) < 1500


def test_a_pickle_that_runs_code_is_still_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    for legacy in (False, True):
        path = tmp_path / "evil.pt"
        torch.save(
            {"w": torch.zeros(1), "x": Evil()}, path, _use_new_zipfile_serialization=not legacy
        )
        result = circ("layers", FACTORY, "--weights", str(path))
        assert result.code == 2 and "E213" in result.err and "system" in result.err
    assert not (tmp_path / "ran").exists()


def _save(tmp_path: Path, state: dict[str, torch.Tensor], name: str = "w.pt") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_precisions_load_with_a_note(tmp_path: Path, dtype: torch.dtype) -> None:
    state = {
        k: v.to(dtype) if v.is_floating_point() else v for k, v in small_cnn().state_dict().items()
    }
    result = circ("layers", FACTORY, "--weights", str(_save(tmp_path, state)))
    assert result.code == 0 and "features.3" in result.out
    name = str(dtype).removeprefix("torch.")
    assert f"note: weight file `{tmp_path / 'w.pt'}`: converted 10 {name} tensor(s)" in result.err


@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.bool])
def test_integer_and_bool_weights_are_refused_by_name(tmp_path: Path, dtype: torch.dtype) -> None:
    state = small_cnn().state_dict()
    state["features.0.weight"] = state["features.0.weight"].to(dtype)
    result = circ("layers", FACTORY, "--weights", str(_save(tmp_path, state)))
    assert result.code == 2 and "E221" in result.err
    assert "`features.0.weight`" in result.err and len(result.err) < 1500  # was 17 KB


def test_nan_and_inf_weights_are_an_error_naming_them(tmp_path: Path) -> None:
    state = small_cnn().state_dict()
    state["features.0.weight"][0, 0, 0, 0] = float("nan")
    state["head.bias"][3] = float("inf")
    result = circ("layers", FACTORY, "--weights", str(_save(tmp_path, state)))
    assert result.code == 2 and "E222" in result.err
    assert "`features.0.weight`" in result.err and "`head.bias`" in result.err


def test_missing_batchnorm_counters_are_accepted(tmp_path: Path) -> None:
    state = {k: v for k, v in small_cnn().state_dict().items() if "num_batches" not in k}
    assert len(state) < len(small_cnn().state_dict())
    result = circ("layers", FACTORY, "--weights", str(_save(tmp_path, state)))
    assert result.code == 0, result.err


@pytest.mark.slow  # builds and traces a resnet18 (about 5 s)
def test_torchvision_weights_without_counters_load(tmp_path: Path) -> None:
    # torchvision's published resnet18 file has no `num_batches_tracked`; its models are
    # built on the meta device and take the file's tensors by assignment.
    import torchvision  # type: ignore[import-untyped]

    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    pth = _save(tmp_path, state, "resnet18.pth")
    result = circ("layers", "torchvision:resnet18", "--weights", str(pth))
    assert result.code == 0, result.err
    assert "layer4.1.conv2" in result.out


def test_a_shipped_model_accepts_a_pth_file(tmp_path: Path) -> None:
    from circuitdsl.zoo import get_zoo_entry

    shipped = load_file(str(get_zoo_entry("curvenet").weights_path()))
    pth = _save(tmp_path, shipped, "curvenet.pth")
    spec = tmp_path / "s.circ"
    spec.write_text(
        'circuit c "x"\nmodel curvenet\nfeature a = conv1:0\nfeature b = conv2:3\n'
        "feature e = conv2:5\na -> b : excites\na -> e : inhibits\n"
    )
    own = circ("check", str(spec), "--format", "json")
    given = circ("check", str(spec), "--format", "json", "--weights", str(pth))
    assert own.code == given.code and own.code in (0, 1)
    # the verdicts agree; the provenance (weights file and its hash, date, seconds) differs
    import json

    a, b = json.loads(own.out), json.loads(given.out)
    assert a["claims"] == b["claims"] and a["summary"] == b["summary"]
