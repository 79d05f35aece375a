"""`circ`: the command line. Exit status 0: all claims hold / success; 1: a claim fails
(or `fmt --check` would reformat); 2: the spec, model or arguments are wrong.

Every user error is a rendered diagnostic on stderr, never a traceback. Heavy
modules (torch, graphviz) are imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, render

if TYPE_CHECKING:
    from circuitdsl.api import Spec
    from circuitdsl.language.ir import Circuit
    from circuitdsl.report.model import Report

EXIT_OK, EXIT_FAIL, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are diagnostics with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise DiagnosticError([Diagnostic(d.E_USAGE, message, help=f"see `{self.prog} --help`")])


def _sources_of(paths: Sequence[str]) -> dict[str, str]:
    out = {}
    for p in paths:
        try:
            if not Path(p).is_file():  # a FIFO read twice would block; a device never ends
                continue
            out[p] = Path(p).read_text(encoding="utf-8-sig")  # as the loader reads it
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return out


def _write(text: str | bytes, out: str | None) -> None:
    if out is None or out == "-":
        try:
            sys.stdout.write(text if isinstance(text, str) else text.decode())
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()
        return
    from circuitdsl.language.atomic import write_atomic

    write_atomic(out, text)  # all or nothing: a failed write leaves the old file (E301)


def _stdout_closed() -> None:
    """The reader went away (`circ check x.circ | head -1`): carry on quietly.

    The rest of stdout goes to /dev/null, so the exit status is still the verdict's
    and Python's final flush does not print a second BrokenPipeError.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (in-process tests)
        pass
    finally:
        os.close(devnull)


def _not_an_input(out: str | None, *inputs: str | None) -> None:
    from circuitdsl.language.atomic import refuse_overwrite

    refuse_overwrite(out, inputs)


# ---- subcommands ---------------------------------------------------------------------


def cmd_compile(args: argparse.Namespace) -> int:
    from circuitdsl.api import load

    _not_an_input(args.output, args.spec)
    spec = load(args.spec, max_instances=args.max_instances)
    out = args.output
    suffix = Path(out).suffix.lower() if out else ".json"
    if suffix == ".json":
        text = spec.to_json()
    elif suffix == ".graphml":
        from circuitdsl.language.graph import to_graphml

        text = to_graphml(spec.circuit)
    elif suffix in (".dot", ".gv"):
        from circuitdsl.render.dot import to_dot

        text = to_dot(spec.circuit)
    else:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"cannot compile to `{suffix}` files",
                    help="use an output ending in .json, .graphml or .dot "
                    "(`circ render` makes .svg, .png, .pdf and .html)",
                )
            ]
        )
    _write(text, out)
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from circuitdsl.language.loader import read_text
    from circuitdsl.language.syntax.fmt import format_spec
    from circuitdsl.language.syntax.parser import parse

    changed = []
    errors: list[Diagnostic] = []
    for name in args.files:
        try:
            text = read_text(Path(name), name)
            formatted = format_spec(parse(text, name))
        except DiagnosticError as err:
            errors.extend(err.diagnostics)
            continue
        if formatted != text:
            changed.append(name)
            if not args.check:
                from circuitdsl.language.atomic import write_atomic

                try:  # atomic: a failed write leaves the spec as it was
                    write_atomic(name, formatted, make_parents=False)
                except DiagnosticError as err:
                    errors.extend(err.diagnostics)
                    changed.pop()
    if errors:
        raise DiagnosticError(errors)
    verb = "would reformat" if args.check else "reformatted"
    for name in changed:
        print(f"{verb} {name}", file=sys.stderr)
    if args.check and changed:
        return EXIT_FAIL
    return EXIT_OK


def _allowed_factories(args: argparse.Namespace) -> bool | tuple[str, ...]:
    """What a spec's `model "pkg.mod:fn"` line may run: `--trust-spec` (any) or the list."""
    return True if args.trust_spec else tuple(args.allow_factory or ())


def _model_arg(args: argparse.Namespace) -> list[str | None]:
    return list(args.model) if args.model else [None]


def _model_and_weights(value: str | None, weights: str | None) -> tuple[str | None, str | None]:
    """`--model M=FILE` gives model M its own weight file; a plain `M` uses `--weights`."""
    if value is None or "=" not in value:
        return value, weights
    name, _, own = value.partition("=")
    if not name or not own:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"`--model {value}` names no model or no weight file",
                    help="write `--model torchvision:vgg16=ckpt.pth` (model, `=`, file)",
                )
            ]
        )
    return name, own


def _named_model(value: str, weights: str | None) -> tuple[str, str | None]:
    """`_model_and_weights` for a subcommand whose MODEL argument is required."""
    name, own = _model_and_weights(value, weights)
    assert name is not None  # a required positional argument
    return name, own


def _note(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


# `[tool.circ]` in the nearest pyproject.toml: project defaults for `circ check` and
# `circ render`. The command line wins; `model` is used for specs without a `model` line.
TOOL_KEYS: dict[str, tuple[type, tuple[str, ...]]] = {
    "model": (str, ()),
    "weights": (str, ()),
    "device": (str, ("cpu", "cuda")),
    "format": (str, ("text", "json", "junit", "frame")),
    "junit_family": (str, ("xunit2", "xunit1")),
    "kernels": (bool, ()),
}


def tool_config(start: Path | None = None) -> tuple[dict[str, object], Path | None]:
    """The `[tool.circ]` table of the nearest pyproject.toml at or above `start` (default:
    the working directory), checked, and that file; `({}, None)` when there is none."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: tomli, where installed; no defaults otherwise
        try:
            import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
        except ModuleNotFoundError:
            return {}, None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "pyproject.toml"
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise DiagnosticError(
                [Diagnostic(d.E_USAGE, f"cannot read `{path}` for [tool.circ]: {err}")]
            ) from None
        table = data.get("tool", {}).get("circ", {})
        problems = []
        for key, value in table.items():
            if key not in TOOL_KEYS:
                problems.append(
                    Diagnostic(
                        d.E_USAGE,
                        f"`{path}`: [tool.circ] has no setting `{key}`",
                        help="settings: " + ", ".join(TOOL_KEYS),
                    )
                )
                continue
            kind, choices = TOOL_KEYS[key]
            if not isinstance(value, kind) or (choices and value not in choices):
                want = " | ".join(f'"{c}"' for c in choices) if choices else kind.__name__
                problems.append(
                    Diagnostic(
                        d.E_USAGE,
                        f"`{path}`: [tool.circ] {key} = {value!r} is not {want}",
                    )
                )
        if problems:
            raise DiagnosticError(problems)
        return dict(table), path
    return {}, None


def _apply_tool_defaults(args: argparse.Namespace) -> None:
    """Fill what the command line left out from [tool.circ], then the built-in defaults."""
    config, path = tool_config()
    args.default_model = config.get("model")
    if getattr(args, "weights", None) is None and "weights" in config and path is not None:
        args.weights = str(path.parent / str(config["weights"]))  # relative to the file
    builtin = {"device": "cpu", "junit_family": "xunit2", "kernels": False, "format": None}
    for key, fallback in builtin.items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, config.get(key, fallback))


def _models_for(args: argparse.Namespace, spec: Spec) -> list[str | None]:
    """--model, else the spec's `model` line, else [tool.circ] model."""
    models = _model_arg(args)
    fallback = getattr(args, "default_model", None)
    if models == [None] and not spec.circuit.model and fallback:
        return [str(fallback)]
    return models


def _claim_filter(patterns: Sequence[str] | None) -> Callable[[str], bool] | None:
    """`-k PATTERN`: a claim is kept when its id contains PATTERN, or, when PATTERN has
    `*` or `?`, matches it as a glob (`[` and `]` stay literal: ids contain them)."""
    if not patterns:
        return None

    regexes = []
    for pat in patterns:
        if "*" in pat or "?" in pat:
            body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pat)
            regexes.append(re.compile(body + r"\Z", re.S))
        else:
            regexes.append(re.compile(re.escape(pat)))
    return lambda claim_id: any(
        (r.match(claim_id) if r.pattern.endswith(r"\Z") else r.search(claim_id)) for r in regexes
    )


_PLACEHOLDER = re.compile(r"\{(spec|circuit|model)\}")
_FORMAT_OF_SUFFIX = {".json": "json", ".xml": "junit", ".csv": "frame", ".parquet": "frame"}


def _output_format(args: argparse.Namespace) -> str:
    """--format, or what the -o file's suffix says (.json, .xml, .csv, .parquet), or text."""
    suffix = Path(args.output).suffix.lower() if args.output not in (None, "-") else ""
    if args.format is None:
        return _FORMAT_OF_SUFFIX.get(suffix, "text")
    if args.format == "frame" and suffix not in (".csv", ".parquet"):
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    "--format frame writes a .csv or .parquet file",
                    help="add -o results.csv or -o results.parquet",
                )
            ]
        )
    return str(args.format)


def _render_targets(args: argparse.Namespace, specs: Sequence[Spec]) -> list[str] | None:
    """Where `--render` draws each run: OUT itself for one run; for several, OUT must
    name each one (`{circuit}`, `{model}`, `{spec}` placeholders) -- checked before any
    model is loaded."""
    if not args.render:
        return None
    runs = [(spec, model) for spec in specs for model in _model_arg(args)]
    if len(runs) == 1:
        return [args.render]
    if not _PLACEHOLDER.search(args.render):
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"--render `{args.render}` would draw {len(runs)} runs into one file",
                    help="name each with placeholders, e.g. --render '{spec}-{model}.html'",
                )
            ]
        )
    return []  # filled per run, once the model names are known


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """check_spec's execution options from `--no-cache`, `--max-memory`, `--precision`."""
    from circuitdsl.models.probe import parse_memory

    budget = None
    if getattr(args, "max_memory", None):
        try:
            budget = parse_memory(args.max_memory)
        except ValueError:
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_USAGE,
                        f"--max-memory takes a size such as 2G or 512M, not `{args.max_memory}`",
                    )
                ]
            ) from None
    return {
        "max_memory": budget,
        "cache": False if getattr(args, "no_cache", False) else None,
        "precision": getattr(args, "precision", None),
    }


def cmd_check(args: argparse.Namespace) -> int:
    from circuitdsl.api import load

    for out in (args.output, args.render):
        _not_an_input(out, *args.specs, args.weights)
    if args.render is not None:
        _not_an_input(args.render, args.output)  # the report and the picture are both kept
    # Every spec compiles before torch is even imported: a typo costs well under a second.
    specs = [load(p, max_instances=args.max_instances) for p in args.specs]
    if args.checkpoints is not None:
        return _check_checkpoints(args, specs)
    if len(_model_arg(args)) > 1 and (args.workers or args.executor or args.ray_address):
        return _check_models(args, specs)
    fmt = _output_format(args)
    targets = _render_targets(args, specs)
    from circuitdsl.check.api import check_spec, sharing_models
    from circuitdsl.models.progress import Progress
    from circuitdsl.models.threads import default_threads

    device = _device(args.device)
    default_threads()
    options = _run_options(args)
    # progress bars on a terminal, none with -q or when the report is not text
    only = _claim_filter(args.keyword)
    if only is not None and not any(only(c.id) for s in specs for c in s.claims):
        from circuitdsl.measure.select import has_selectors

        # claims over families chosen by behaviour exist only once a model chose them
        if not any(has_selectors(s.program) for s in specs):
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_USAGE,
                        f"-k {' -k '.join(args.keyword)} selects none of the specs' claims",
                        help="a pattern matches a claim id by substring, or as a glob with * ?",
                    )
                ]
            )
    reports = []
    runs = []
    progress = Progress(enabled=False if (args.quiet or fmt != "text") else None)
    with sharing_models():  # each model is loaded and traced once per run
        for spec in specs:
            for value in _models_for(args, spec):
                model, weights = _model_and_weights(value, args.weights)
                report = check_spec(
                    spec.circuit,
                    model,
                    weights,
                    progress=progress,
                    device=device,
                    program=spec.program,
                    only=only,
                    preprocess=args.preprocess,
                    note=_note,
                    allow_factories=_allowed_factories(args),
                    **options,
                )
                reports.append(report)
                runs.append(spec)
                if args.exitfirst and not report.ok:
                    break  # -x: no further runs after the first with a failing claim
            if args.exitfirst and reports and not reports[-1].ok:
                break
    if only is not None and not any(r.claims for r in reports):
        # (specs with behaviour selectors: their claims exist only once chosen)
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"-k {' -k '.join(args.keyword)} selects none of the specs' claims",
                    help="a pattern matches a claim id by substring, or as a glob with * ?",
                )
            ]
        )
    if args.full_grid:
        reports = [_with_full_grid(spec, r) for spec, r in zip(runs, reports, strict=True)]
    verbosity = (args.verbose or 0) - (args.quiet or 0)
    text: str | bytes
    if fmt == "json":
        from circuitdsl.report.model import to_json

        text = to_json(reports, with_kernels=args.kernels)
    elif fmt == "junit":
        from circuitdsl.report.junit import to_junit

        text = to_junit(reports, family=args.junit_family)
    elif fmt == "frame":
        from circuitdsl.report.frames import write_frame

        text = write_frame(reports, args.output)
    else:
        from circuitdsl.report.text import format_reports, wants_colour

        extra = ""
        if len(_model_arg(args)) > 1 and len(reports) > 1:
            from circuitdsl.report.universality import universality_table

            extra = universality_table(reports)
        to_terminal = args.output in (None, "-")
        colour = to_terminal and wants_colour(sys.stdout)
        width = None
        if colour:
            import shutil

            width = shutil.get_terminal_size().columns
        text = format_reports(
            reports,
            verbosity=verbosity,
            colour=colour,
            width=width,
            stop_at_first_failure=args.exitfirst,
            extra=extra,
        )
    _write(text, args.output)
    if fmt != "text" and args.output not in (None, "-") and verbosity >= 0:
        s = {k: sum(r.summary[k] for r in reports) for k in ("pass", "fail", "error")}
        print(
            f"{s['pass']} passed, {s['fail']} failed, {s['error']} errors; "
            f"{fmt} report written to {args.output}",
            file=sys.stderr,
        )
    failed_render = False
    if targets is not None:
        from circuitdsl.render.output import render as render_circuit

        for i, (spec, report) in enumerate(zip(runs, reports, strict=True)):
            out = (
                _render_name(args.render, report, i)
                if _PLACEHOLDER.search(args.render)
                else (args.render)
            )
            try:
                render_circuit(report_circuit(spec, report), out, report=report)
            except DiagnosticError as err:
                # The claims were checked; a failed drawing must not hide their verdict,
                # and must not pass unnoticed either (exit 2).
                print(render(err.diagnostics, {}), file=sys.stderr)
                failed_render = True
    if failed_render:
        return EXIT_ERROR
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAIL


def _render_name(template: str, report: Report, index: int) -> str:
    """`{spec}-{model}.html` -> `curve_circuit-curvenet.html` (path-safe names)."""

    def safe(text: str) -> str:
        return re.sub(r"[^\w.+-]+", "_", text).strip("_") or str(index)

    values = {
        "spec": safe(Path(report.spec).stem),
        "circuit": safe(report.circuit),
        "model": safe(report.model),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _with_full_grid(spec: Spec, report: Report) -> Report:
    """`--full-grid`: the kernels of every member pair of the report's family grids, read
    from the model the report was measured on."""
    from circuitdsl.models.registry import load_model
    from circuitdsl.render.grids import with_full_grids

    adapter = load_model(report.model, report.weights)
    return with_full_grids(report, report_circuit(spec, report), adapter)


def report_circuit(spec: Spec, report: Report | None) -> Circuit:
    """The circuit a report was measured on: with behaviour selectors, the spec compiled
    with the report's chosen members (the spec alone has empty families)."""
    from circuitdsl.render.rerender import circuit_for_report

    return circuit_for_report(spec, report)


def _executor(args: argparse.Namespace) -> str:
    """`--executor`, with `--ray-address` implying Ray."""
    if args.ray_address and args.executor not in (None, "ray"):
        raise DiagnosticError([Diagnostic(d.E_USAGE, "--ray-address goes with --executor ray")])
    return "ray" if args.ray_address else (args.executor or "local")


def _sweep_progress(args: argparse.Namespace) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\rchecked {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _check_checkpoints(args: argparse.Namespace, specs: Sequence[object]) -> int:
    """`--checkpoints`: every claim on every checkpoint, one table (circuitdsl.sweep)."""
    from circuitdsl.sweep import check_checkpoints

    problems = []
    if args.weights:
        problems.append("--checkpoints and --weights: the checkpoints are the weights")
    if args.model and len(args.model) > 1:
        problems.append("--checkpoints takes one --model (the checkpoints' architecture)")
    if args.model and "=" in args.model[0]:
        problems.append("--checkpoints with --model M=FILE: the checkpoints are the weights")
    if args.render and not args.render.lower().endswith(".html"):
        problems.append("with --checkpoints, --render writes an .html report")
    if problems:
        raise DiagnosticError([Diagnostic(d.E_USAGE, p) for p in problems])
    table = check_checkpoints(
        list(specs),
        args.model[0] if args.model else None,
        args.checkpoints,
        workers=args.workers,
        executor=_executor(args),
        ray_address=args.ray_address,
        progress=_sweep_progress(args),
        preprocess=args.preprocess,
        allow_factories=_allowed_factories(args),
    )
    out = args.output
    if out and out != "-":
        table.write(out)
        counts = {s: sum(r["status"] == s for r in table.rows) for s in ("pass", "fail", "error")}
        print(
            f"{len(table.checkpoints)} checkpoints, {len(table.rows)} rows "
            f"({counts['pass']} pass, {counts['fail']} fail, {counts['error']} error) -> {out}",
            file=sys.stderr,
        )
    else:
        _write(table.to_json() if args.format == "json" else table.to_text(), None)
    if args.plot:
        from circuitdsl.render.training import plot_training

        plot_training(table.rows, args.plot)
    if args.render:
        from circuitdsl.render.training import training_html

        last = [r for r in table.reports() if r is not None]
        circuit = specs[0].circuit  # type: ignore[attr-defined]
        _write(training_html(circuit, table.rows, last[-1] if last else None), args.render)
    return EXIT_OK if table.ok else EXIT_FAIL


def _check_models(args: argparse.Namespace, specs: Sequence[object]) -> int:
    """Several `--model`s with `--workers`/`--executor`: the universality table, each model
    checked as a task of a sweep."""
    from circuitdsl.report.universality import universality_table
    from circuitdsl.sweep import check_models

    if args.weights:
        raise DiagnosticError(
            [Diagnostic(d.E_USAGE, "--weights with several --model: one file fits one model")]
        )
    texts, ok = [], True
    for spec in specs:
        reports, _ = check_models(
            spec,
            [_model_and_weights(m, None) for m in args.model],  # type: ignore[misc]
            workers=args.workers,
            executor=_executor(args),
            ray_address=args.ray_address,
            progress=_sweep_progress(args),
            preprocess=args.preprocess,
        )
        ok = ok and all(r.ok for r in reports)
        if args.format == "json":
            from circuitdsl.report.model import to_json

            texts.append(to_json(reports))  # one document, every run in `runs`
        else:
            from circuitdsl.report.text import format_reports

            texts.append(format_reports(reports, extra=universality_table(reports)))
    _write("".join(texts), args.output)
    return EXIT_OK if ok else EXIT_FAIL


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--workers needs a whole number >= 1, not `{text}`")
    return int(text)


def _device(name: str) -> str:
    """`--device`: cuda only where torch sees a GPU (a usage diagnostic, E300, otherwise)."""
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_USAGE,
                        "--device cuda was asked for but torch sees no GPU",
                        help="run with --device cpu (the default)",
                    )
                ]
            )
    return name


def cmd_render(args: argparse.Namespace) -> int:
    from circuitdsl.api import load
    from circuitdsl.render.output import render as render_circuit

    _not_an_input(args.output, args.spec, args.weights)
    spec = load(args.spec, max_instances=args.max_instances)
    report: Report | None = None
    if args.report:
        if args.weights:
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_USAGE,
                        "--report draws a check made before; --weights would measure again",
                        help="give one of them",
                    )
                ]
            )
        report = _report_from_file(args.report, spec, args.model)
    elif args.model or args.weights:
        from circuitdsl.check.api import check_spec

        model, weights = _model_and_weights(_models_for(args, spec)[0], args.weights)
        report = check_spec(
            spec.circuit,
            model,
            weights,
            program=spec.program,
            preprocess=args.preprocess,
            note=_note,
            allow_factories=_allowed_factories(args),
        )
    if args.full_grid:
        if report is None:
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_USAGE,
                        "--full-grid draws weights: it needs --model, --weights or --report",
                    )
                ]
            )
        report = _with_full_grid(spec, report)
    render_circuit(report_circuit(spec, report), args.output, report=report)
    return EXIT_OK


def _report_from_file(path: str, spec: Spec, models: Sequence[str] | None) -> Report:
    """The run of a saved JSON report to draw: the one for `spec` (and `--model`)."""
    import json

    from circuitdsl.report.model import reports_from_dict

    try:
        runs = reports_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except OSError as err:
        raise DiagnosticError(
            [Diagnostic(d.E_USAGE, f"cannot read the report `{path}`: {err.strerror}")]
        ) from None
    except (ValueError, KeyError, TypeError) as err:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"`{path}` is not a circuitdsl JSON report ({type(err).__name__}: {err})",
                    help="write one with `circ check SPEC -o report.json`",
                )
            ]
        ) from None
    name = spec.circuit.name
    fits = [r for r in runs if r.circuit == name] or runs
    if models:
        fits = [r for r in fits if r.model in models]
    if len(fits) != 1:
        have = ", ".join(f"{r.circuit} on {r.model}" for r in runs) or "none"
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"`{path}` has {len(fits)} runs that fit `{name}`"
                    + (f" on {', '.join(models)}" if models else "")
                    + f" (it has: {have})",
                    help="choose one with --model NAME",
                )
            ]
        )
    return fits[0]


def cmd_tune(args: argparse.Namespace) -> int:
    from circuitdsl.measure.tuning import main as tune_main

    return tune_main(args.rest, prog="circ tune")


def cmd_layers(args: argparse.Namespace) -> int:
    from circuitdsl.models.layers_cmd import format_layers
    from circuitdsl.models.registry import load_model

    adapter = load_model(*_named_model(args.model, args.weights))
    _write(format_layers(adapter), None)
    return EXIT_OK


def cmd_inputs(args: argparse.Namespace) -> int:
    from circuitdsl.models.registry import load_model
    from circuitdsl.tools.inputs import analyse, parse_unit

    _not_an_input(args.output, args.weights)
    layer, channel = parse_unit(args.unit)
    adapter = load_model(*_named_model(args.model, args.weights))
    report = analyse(adapter, layer, channel, source=args.source, top=args.top)
    _write(report.to_json() if args.format == "json" else report.to_text(), args.output)
    return EXIT_OK


def cmd_suggest(args: argparse.Namespace) -> int:
    from circuitdsl.models.registry import load_model
    from circuitdsl.tools.inputs import parse_unit
    from circuitdsl.tools.suggest import command_line, suggest

    _not_an_input(args.output, args.weights)
    layer, channel = parse_unit(args.unit)
    name, weights = _named_model(args.model, args.weights)
    adapter = load_model(name, weights)
    command = command_line(
        args.model,
        args.unit,
        source=args.source,
        top=args.top,
        depth=args.depth,
        weights=args.weights,
        output=args.output,
    )
    draft = suggest(
        adapter,
        layer,
        channel,
        source=args.source,
        top=args.top,
        depth=args.depth,
        model=name,  # the draft's `model` line names the model, not its file
        command=command,
    )
    _write(draft.text, args.output)
    where = args.output if args.output not in (None, "-") else "stdout"
    dropped = (
        "no candidate claim failed"
        if draft.n_dropped == 0
        else f"{draft.n_dropped} candidate claim(s) that fail with the default thresholds"
        " were left out (listed as comments)"
    )
    print(
        f"drafted {draft.n_features} features and {draft.n_claims} claims to {where}; {dropped}",
        file=sys.stderr,
    )
    return EXIT_OK


def _top(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--top needs a whole number >= 1, not `{text}`")
    return int(text)


# ---- the parser -----------------------------------------------------------------------


def _count(text: str) -> int:
    if not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number >= 1, not `{text}`")
    return int(text)


def _spec_safety_options(p: argparse.ArgumentParser, *, factories: bool = True) -> None:
    """The options that bound what a spec may make circ do (see docs/errors.md, E113/E217)."""
    from circuitdsl.language.compile import MAX_INSTANCES

    p.add_argument(
        "--max-instances",
        type=_count,
        default=MAX_INSTANCES,
        metavar="N",
        help=f"refuse a spec whose `for` loops expand to more than N claims ({MAX_INSTANCES:,})",
    )
    if not factories:
        return
    p.add_argument(
        "--allow-factory",
        action="append",
        metavar="PKG.MOD:FN",
        help="let the spec's `model` line call this Python factory (repeatable); specs"
        " cannot run code otherwise",
    )
    p.add_argument(
        "--trust-spec",
        action="store_true",
        help="let the spec's `model` line call any Python factory it names",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="circ",
        description="State a circuit in a neural network, and check it against the weights.",
    )
    from circuitdsl.version import __version__

    parser.add_argument("--version", action="version", version=f"circuitdsl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("check", help="measure every claim of specs against a model")
    p.add_argument("specs", nargs="+", metavar="SPEC", help=".circ files")
    p.add_argument(
        "--model",
        action="append",
        metavar="M",
        help="inceptionv1, vgg16-hed, torchvision:NAME, timm:NAME, a shipped model, or"
        " package.module:factory (default: the spec's `model` line, else [tool.circ] model in"
        " pyproject.toml); M=FILE gives it its own weights; repeat for a universality table",
    )
    p.add_argument(
        "--weights", metavar="FILE", help="state dict (.pth, .pt, .safetensors) for --model"
    )
    p.add_argument(
        "--preprocess",
        choices=("imagenet", "caffe", "lucent", "none"),
        help="the input transform, replacing the model's own and the spec's (the report"
        " states the one used)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json", "junit", "frame"),
        default=None,
        help="default: from -o's suffix (.json, .xml, .csv/.parquet = frame), else text",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write the report here (.json .xml .csv .parquet)"
    )
    p.add_argument(
        "--render",
        metavar="OUT",
        help="also render the diagram (.svg, .html, ...); several runs: '{spec}-{model}.html'",
    )
    p.add_argument("-v", "--verbose", action="count", help="text: the evidence of every claim")
    p.add_argument(
        "-q", "--quiet", action="count", help="text: only what fails (-qq: the summary line)"
    )
    p.add_argument(
        "-x",
        "--exitfirst",
        action="store_true",
        help="stop after the first run with a failing claim; text lists up to that claim",
    )
    p.add_argument(
        "-k",
        dest="keyword",
        action="append",
        metavar="PATTERN",
        help="measure only claims whose id contains PATTERN (or matches it, with * ?)",
    )
    p.add_argument(
        "--kernels", action="store_true", default=None, help="json: include the weight kernels"
    )
    p.add_argument(
        "--full-grid",
        action="store_true",
        help="draw every member pair of a family grid, not only the claimed ones",
    )
    p.add_argument(
        "--junit-family",
        choices=("xunit2", "xunit1"),
        default=None,
        help="junit: xunit2 (schema-valid, default) or xunit1 (file and line on each case)",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="where activation claims run the model (default cpu)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default=None,
        help="forward passes in fp32 (default) or bf16 autocast (docs/claims.md: when safe)",
    )
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory for one batch of activations, e.g. 2G (default: 1/4 of free memory)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the activation cache ($CIRCUITDSL_CACHE)",
    )
    sweep = p.add_argument_group(
        "sweeps", "one spec over many checkpoints or models, in parallel (circuitdsl.sweep)"
    )
    sweep.add_argument(
        "--checkpoints",
        metavar="GLOB|LISTFILE",
        help="check every weight file matched (quote the glob) or listed (one a line); "
        "-o FILE.csv|.parquet|.json writes the claims x checkpoints table",
    )
    sweep.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="worker processes (default: the CPU count, capped by free memory)",
    )
    sweep.add_argument(
        "--executor",
        choices=("local", "ray", "inline"),
        help="local process pool (default), Ray tasks, or inline (this process, serially)",
    )
    sweep.add_argument("--ray-address", metavar="ADDR", help="a Ray cluster (implies ray)")
    sweep.add_argument(
        "--plot",
        metavar="OUT.png",
        help="with --checkpoints: each claim's statistic against the step (matplotlib)",
    )
    _spec_safety_options(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compile", help="compile a spec to its model-independent graph")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", metavar="OUT", help=".json (default, stdout), .graphml, .dot")
    _spec_safety_options(p, factories=False)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("render", help="draw the circuit (with a model: kernels and verdicts)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--model", action="append", metavar="M")
    p.add_argument("--weights", metavar="FILE")
    p.add_argument("--preprocess", choices=("imagenet", "caffe", "lucent", "none"))
    p.add_argument(
        "--full-grid",
        action="store_true",
        help="draw every member pair of a family grid, not only the claimed ones",
    )
    p.add_argument(
        "--report",
        metavar="JSON",
        help="draw a saved check (`circ check -o report.json`) without measuring again",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help=".dot, .svg, .png, .pdf or .html"
    )
    _spec_safety_options(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("fmt", help="rewrite specs in the canonical layout")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="only report files that would change")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser(
        "tune",
        help="measure every channel's orientation tuning to generated stimuli",
        add_help=False,
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help="see `circ tune --help`")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("layers", help="list a model's layers with channel counts")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--weights", metavar="FILE")
    p.set_defaults(func=cmd_layers)

    unit_help = "the unit, LAYER:CHANNEL (e.g. mixed4c:447)"
    from_help = (
        "source layer (default: the nearest conv/concat/add output that every path to the"
        " unit passes through, e.g. mixed4b for mixed4c; see docs/suggest.md)"
    )
    p = sub.add_parser("inputs", help="a unit's strongest excitatory and inhibitory inputs")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("unit", metavar="LAYER:CH", help=unit_help)
    p.add_argument("--from", dest="source", metavar="LAYER", help=from_help)
    p.add_argument("--top", type=_top, default=5, metavar="K", help="inputs of each sign (5)")
    p.add_argument("--weights", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=cmd_inputs)

    p = sub.add_parser("suggest", help="draft a spec from a unit's weights (claims that pass)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("unit", metavar="LAYER:CH", help=unit_help)
    p.add_argument("--from", dest="source", metavar="LAYER", help=from_help)
    p.add_argument("--top", type=_top, default=3, metavar="K", help="inputs of each sign (3)")
    p.add_argument(
        "--depth", type=int, choices=(1, 2), default=1, help="2: also the inputs' inputs"
    )
    p.add_argument("--weights", metavar="FILE")
    p.add_argument("-o", "--output", metavar="FILE", help="the draft .circ (default: stdout)")
    p.set_defaults(func=cmd_suggest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `circ` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        _notes_as_lines()
        return _main(argv)


def _notes_as_lines() -> None:
    """Print circuitdsl's notes (`WeightsNote`: weights converted to float32) as `note:`."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if category.__name__ == "WeightsNote":
            print(f"note: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["tune"]:  # its own argument parser, `--help` included
            return cmd_tune(argparse.Namespace(rest=argv[1:]))
        args = build_parser().parse_args(argv)
        if args.command in ("check", "render"):
            _apply_tool_defaults(args)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except DiagnosticError as err:
        paths = sorted({diag.span.file for diag in err.diagnostics if diag.span})
        print(render(err.diagnostics, _sources_of(paths)), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("circ: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed outside `_write` (a `print`): end quietly
        _stdout_closed()
        return EXIT_OK
    except Exception as err:  # a bug in circ, not the user's mistake
        if os.environ.get("CIRC_DEBUG"):
            traceback.print_exc()
        print(
            f"circ: internal error: {type(err).__name__}: {err}\n"
            "This is a bug in circuitdsl; rerun with CIRC_DEBUG=1 for the traceback "
            "and report it.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
