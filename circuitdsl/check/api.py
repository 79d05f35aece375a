"""Glue for the CLI and the Python API: load a model, bind a circuit, check it."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import datetime
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdsl.language.diagnostics import (
    E_NO_MODEL,
    E_PREPROCESS,
    E_UNKNOWN_MODEL,
    Diagnostic,
    DiagnosticError,
)
from circuitdsl.language.ir import Circuit
from circuitdsl.models.base import ModelAdapter
from circuitdsl.report.model import Report

if TYPE_CHECKING:
    from circuitdsl.models.bind import BoundCircuit


def check_spec(
    circuit: Circuit,
    model_name: Any = None,
    weights: str | Path | None = None,
    *,
    progress: Any = None,
    device: str = "cpu",
    program: Any = None,
    only: Callable[[str], bool] | None = None,
    control: str | None = None,
    preprocess: Any = None,
    note: Callable[[str], None] | None = None,
    max_memory: int | None = None,
    cache: bool | None = None,
    precision: str | None = None,
    allow_factories: bool | Collection[str] = (),
) -> Report:
    """Load the model, bind `circuit` to it and measure every claim.

    `model_name` is a model name for `load_model` (default: the spec's `model` line),
    an already loaded `ModelAdapter`, a `BoundCircuit`, or an `nn.Module` object (its
    weights as they are, or from `weights`). Raises `DiagnosticError` for a missing /
    unknown model, unreadable weights or a spec that does not fit the model (the CLI
    exits 2 on those); problems with single claims become `error` results instead.
    A factory named in the spec (`model "nets:make"`) is looked for next to the spec.

    `preprocess` (a preset name such as ``"caffe"``, a `Preprocess` or a callable)
    replaces the spec's `model M preprocess P` (which applies when M is the model
    checked), which replaces the model's own; the report states the one used. `note`
    receives one line when the weight file lacked parameters (a backbone without its
    head); by default it is a warning.

    `device` ("cpu" or "cuda") is where activation claims run the model. With the parsed
    `program` (`circuitdsl.language.loader.Program`) the features declared by behaviour (`top K of
    LAYER by S`) are chosen on the model first (`circuitdsl.measure.select`) and the spec is
    compiled again with them; the report lists the choices.

    `only(claim_id)` keeps the claims to measure (`circ check -k`); the others are not
    bound or measured. The report's `provenance` records what produced it (versions,
    the weights file's sha256, device, date, seconds).

    A spec cannot run code: a `model "pkg.mod:fn"` line is refused (E220) unless
    `allow_factories` is True or lists that reference. A factory passed as `model_name`
    is the caller's own choice and is always used.

    Execution (`circuitdsl.models.probe.Settings`): `max_memory` bytes per batch (default
    a quarter of the free memory), `cache` the on-disk activation cache (default on),
    `precision` "fp32" (default) or "bf16". `progress`: True / False / None (on when
    stderr is a terminal) / a `circuitdsl.models.progress.Progress` / a callable
    ``(done, total)`` for the claims counter.

    `control` ("null", "negated", "shuffled") checks the spec on a control version of the
    weights (`circuitdsl.check.controls`); the report says so and gives the false-pass rate.
    """
    from circuitdsl.models.probe import using
    from circuitdsl.models.progress import make, use

    p = make(progress)
    with use(p), using(device=device, max_memory=max_memory, cache=cache, precision=precision):
        return _check_spec(
            circuit,
            model_name,
            weights,
            p,
            device,
            program,
            only,
            control,
            preprocess,
            note,
            allow_factories,
        )


def _check_spec(
    circuit: Circuit,
    model_name: Any,
    weights: str | Path | None,
    p: Any,
    device: str,
    program: Any,
    only: Callable[[str], bool] | None,
    control: str | None,
    preprocess: Any,
    note: Callable[[str], None] | None,
    allow_factories: bool | Collection[str],
) -> Report:
    started = time.perf_counter()
    from circuitdsl.check.engine import check
    from circuitdsl.models.bind import bind

    model = model_name if model_name is not None else circuit.model
    if model is None or model == "":
        raise DiagnosticError(
            [
                Diagnostic(
                    E_NO_MODEL,
                    "the spec names no model and none was given",
                    help="add `model inceptionv1` to the spec or pass --model NAME",
                )
            ]
        )
    if model_name is None and isinstance(model, str):
        from circuitdsl.models.module import guard_spec_factory

        guard_spec_factory(model, allow_factories, circuit.path)
    with p.phase(f"loading {model}" if isinstance(model, str) else "binding"):
        adapter, bound = _adapter_of(model, weights, circuit)
    # The spec's word belongs to the spec's model: another model keeps its own.
    spec_word = circuit.preprocess if model_name is None or model_name == circuit.model else None
    override = preprocess if preprocess is not None else spec_word
    if override is not None:
        adapter = _with_preprocess(adapter, override)
        bound = None
    if adapter.missing_parameters:
        from circuitdsl.models.checkpoint import summarise_keys

        line = (
            f"`{adapter.weights_path}` has no {summarise_keys(sorted(adapter.missing_parameters))}"
            f" of `{adapter.name}`: skipped (claims that need them are errors)"
        )
        if note is not None:
            note(line)
        else:
            warnings.warn(line, stacklevel=2)
    selections: tuple[str, ...] = ()
    chosen: list[Any] = []
    if program is not None:
        from circuitdsl.measure.select import has_selectors, materialise

        if has_selectors(program):
            from circuitdsl.language.compile import compile_circuit
            from circuitdsl.language.resolve import resolve

            concrete, chosen = materialise(program, adapter, device=device, progress=p)
            circuit = compile_circuit(resolve(concrete))
            selections = tuple(c.text() for c in chosen)
            bound = None  # the circuit changed: bind it afresh
    if only is not None:
        kept = tuple(c for c in circuit.claims if only(c.id))
        if len(kept) != len(circuit.claims):
            # a circuit bound already covers a superset of the kept claims' weights
            circuit = dataclasses.replace(circuit, claims=kept)
    if bound is None:
        bound = bind(circuit, adapter)
    if chosen:
        # activation claims need to know which members a selector assigned (circularity,
        # `covers` without a stimulus)
        bound.selections = {c.name: c for c in chosen}
    report = check(circuit, bound, progress=p.claims(), device=device, control=control)
    name = model if isinstance(model, str) else adapter.name
    wpath = adapter.weights_path
    if weights is not None:
        wpath = str(weights)
    return dataclasses.replace(
        report,
        model=str(name),
        weights=wpath,
        selections=selections,
        selection_data=tuple(e for c in chosen for e in c.to_dicts()),
        provenance=provenance(wpath, device, time.perf_counter() - started),
        preprocess=adapter.preprocess.describe(),
    )


def provenance(weights: str | None, device: str, seconds: float) -> dict[str, Any]:
    """What produced a report: package, python and torch versions, the weights file's
    sha256 (None when there is no file), device, UTC date, seconds taken."""
    import platform

    import torch

    from circuitdsl.version import __version__

    digest = None
    if weights is not None and Path(weights).is_file():
        from circuitdsl.models.checkpoint import file_sha256

        digest = file_sha256(Path(weights))
    return {
        "package": f"circuitdsl {__version__}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(terse=True),
        "weights_sha256": digest,
        "device": device,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
    }


_SHARED: contextvars.ContextVar[dict[Any, ModelAdapter] | None] = contextvars.ContextVar(
    "shared_models", default=None
)


@contextlib.contextmanager
def sharing_models() -> Iterator[None]:
    """Inside the block, each (model name, weights) is loaded and traced once and shared
    by every `check_spec` call (the CLI's several specs and `--model`s)."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def _adapter_of(
    model: Any, weights: str | Path | None, circuit: Circuit
) -> tuple[ModelAdapter, BoundCircuit | None]:
    """The adapter (and the bound circuit, when one was given) for whatever `model` is."""
    from torch import nn

    from circuitdsl.models.bind import BoundCircuit

    if isinstance(model, str):
        from circuitdsl.models.registry import load_model

        base_dir = None
        if circuit.path and not circuit.path.startswith("<"):
            base_dir = Path(circuit.path).parent  # factories next to the spec
        shared = _SHARED.get()
        key = (model, str(weights), str(base_dir))
        if shared is not None and key in shared:
            return shared[key], None
        adapter = load_model(model, weights, base_dir=base_dir)
        if shared is not None:
            shared[key] = adapter
        return adapter, None
    if isinstance(model, BoundCircuit):
        return model.adapter, model
    if isinstance(model, ModelAdapter):
        return model, None
    if isinstance(model, nn.Module):
        from circuitdsl.models.module import from_module

        return from_module(type(model).__name__, model, weights=weights), None
    raise DiagnosticError(
        [
            Diagnostic(
                E_UNKNOWN_MODEL,
                f"cannot check against a {type(model).__name__}",
                help="pass a model name (`torchvision:resnet18`), an `nn.Module` or a"
                " loaded adapter (`circuitdsl.models.load_model`)",
            )
        ]
    )


def _with_preprocess(adapter: ModelAdapter, value: Any) -> ModelAdapter:
    """A shallow copy of `adapter` whose images go through `value` (the caller's is kept)."""
    from circuitdsl.models.preprocess import as_preprocess

    pre = as_preprocess(value)
    channels = adapter.input_shape[0]
    if pre.fn is None and not all(len(v) in (1, channels) for v in (pre.mean, pre.std)):
        raise DiagnosticError(
            [
                Diagnostic(
                    E_PREPROCESS,
                    f"preprocessing `{pre.name}` is made for {max(len(pre.mean), len(pre.std))}"
                    f"-channel images, but `{adapter.name}` takes {channels} channel(s)",
                    help="use `none` (images in [0, 1]) or a callable for this model",
                )
            ]
        )
    out = copy.copy(adapter)  # shares the traced graph and the weight cache
    out.preprocess = pre
    return out
