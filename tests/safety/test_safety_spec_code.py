"""Nothing run: a spec that names a Python factory is refused unless the user allows it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import circuitdsl
from circuitdsl.language.diagnostics import DiagnosticError
from tests.models.factories import small_cnn
from tests.safety import sentinel
from tests.safety.harness import circ

FACTORY = "tests.safety.sentinel:make"
BODY = "feature a = features.0:1\nfeature b = features.3:2\na -> b : excites\n"


@pytest.fixture(autouse=True)
def _fresh_sentinel() -> None:
    sentinel.CALLS.clear()


def _spec(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "s.circ"
    path.write_text(f'circuit c "x"\nmodel "{model}"\n{BODY}')
    return path


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "w.pt"
    torch.save(small_cnn().state_dict(), path)
    return path


@pytest.mark.parametrize("model", ["sys:exit", "os:abort", "os:system", FACTORY])
def test_a_spec_factory_is_refused_by_default(tmp_path: Path, model: str) -> None:
    result = circ("check", str(_spec(tmp_path, model)))
    assert result.code == 2
    assert "E220" in result.err and f"--allow-factory {model}" in result.err
    assert "cannot run code" in result.err
    assert sentinel.CALLS == []


def test_allow_factory_runs_exactly_that_factory(tmp_path: Path, weights: Path) -> None:
    spec = _spec(tmp_path, FACTORY)
    result = circ("check", str(spec), "--weights", str(weights), "--allow-factory", FACTORY)
    assert result.code in (0, 1) and "a->b.excites" in result.out
    assert sentinel.CALLS == ["make"]
    other = circ("check", str(spec), "--weights", str(weights), "--allow-factory", "x.y:z")
    assert other.code == 2 and "E220" in other.err and sentinel.CALLS == ["make"]


def test_trust_spec_allows_any_factory(tmp_path: Path, weights: Path) -> None:
    result = circ("check", str(_spec(tmp_path, FACTORY)), "--weights", str(weights), "--trust-spec")
    assert result.code in (0, 1) and sentinel.CALLS == ["make"]


def test_a_factory_on_the_command_line_keeps_working(tmp_path: Path, weights: Path) -> None:
    spec = tmp_path / "s.circ"
    spec.write_text(f'circuit c "x"\n{BODY}')
    result = circ("check", str(spec), "--model", FACTORY, "--weights", str(weights))
    assert result.code in (0, 1) and sentinel.CALLS == ["make"]


def test_a_spec_factory_exiting_is_an_error_not_success(tmp_path: Path) -> None:
    # Allowed, `sys:exit` used to end circ with status 0 having checked nothing.
    result = circ("check", str(_spec(tmp_path, "sys:exit")), "--allow-factory", "sys:exit")
    assert result.code == 2 and "E214" in result.err


def test_python_api_refuses_and_allows(tmp_path: Path, weights: Path) -> None:
    spec = circuitdsl.load(_spec(tmp_path, FACTORY))
    with pytest.raises(DiagnosticError) as err:
        spec.check(weights=weights)
    assert err.value.diagnostics[0].code == "E220" and sentinel.CALLS == []
    report = spec.check(weights=weights, allow_factories=[FACTORY])
    assert sentinel.CALLS == ["make"] and sum(report.summary.values()) == 1
    spec.check(FACTORY, weights=weights)  # the caller's own choice needs no opt-in
    assert sentinel.CALLS == ["make", "make"]


def test_registered_and_torchvision_names_need_no_opt_in(tmp_path: Path) -> None:
    from circuitdsl.models.module import guard_spec_factory, is_factory_reference

    for name in ("curvenet", "inceptionv1", "torchvision:resnet18"):
        assert not is_factory_reference(name)
        guard_spec_factory(name, (), "s.circ")  # no error
    with pytest.raises(DiagnosticError):
        guard_spec_factory("a.b:c", ("a.b:d",), "s.circ")


def test_a_checkpoint_sweep_refuses_a_spec_factory_too(tmp_path: Path, weights: Path) -> None:
    # The sweep takes the spec's model line when no --model is given: same rule.
    spec = _spec(tmp_path, FACTORY)
    result = circ("check", str(spec), "--checkpoints", str(weights), "--executor", "inline")
    assert result.code == 2 and "E220" in result.err and sentinel.CALLS == []
    allowed = circ(
        "check",
        str(spec),
        "--checkpoints",
        str(weights),
        "--executor",
        "inline",
        "--allow-factory",
        FACTORY,
    )
    assert allowed.code in (0, 1) and sentinel.CALLS == ["make"]


def test_zoo_names_in_a_spec_are_not_factories() -> None:
    """`torchvision:` and `timm:` name models in a library's registry, not code to run."""
    from circuitdsl.models.module import guard_spec_factory, is_factory_reference

    assert not is_factory_reference("timm:resnet18")
    assert not is_factory_reference("torchvision:vgg16")
    assert is_factory_reference("os:abort")
    guard_spec_factory("timm:resnet18", False, "x.circ")  # no E220
