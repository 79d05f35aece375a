"""One spec over many checkpoints or models: a local process pool, or Ray tasks.

    >>> table = spec.check_checkpoints("curvenet", "runs/curvenet_seed0/step_*.safetensors")
    >>> table.write("curve_circuit.parquet")   # or .csv, .json

A sweep is a list of independent *tasks*, each `(spec, model name, weight file)` as plain
data: the spec travels as its compiled circuit JSON (compiled once, here), or as the path
of its file when it declares features by behaviour (`top K of LAYER by S`, chosen again on
each checkpoint, which needs the parsed program). `run_task` checks one task and returns
plain rows; the executors only decide where it runs:

* ``local`` (default): a `ProcessPoolExecutor` of `workers` processes started with
  ``forkserver`` (``spawn`` where there is none), never ``fork``: torch's threads do not
  survive a fork. At most two chunks per worker are in flight, and the worker count is
  capped by the memory available (`memory_cap`).
* ``ray``: the same `run_task` as Ray tasks, on a local Ray (``ray.init()``) or a cluster
  (``address``); Ray is an optional extra (``pip install "circuitdsl[ray]"``).
* ``inline``: in this process, one task after the other (debugging, and the baseline of
  bench/checkpoints.py).

Each worker keeps what does not depend on the weights: the compiled spec, and the traced
model of the last architecture it loaded (`circuitdsl.models.reload`); each further
checkpoint of that architecture costs only reading its state dict. Every task runs with one
torch thread, so every executor computes the same numbers in the same order: results are
identical whichever runs them (tests/sweep). A checkpoint that cannot be checked (missing,
corrupt, a worker that died) becomes rows with status ``error`` and the reason; the rest of
the sweep goes on.

The table (`SweepTable`) has one row per claim (and per aggregate verdict, where reports
have them) per checkpoint. Columns: ``checkpoint`` (the path as given), ``step`` (from the
file or folder name: ``step_000500``, ``ckpt-1200``, ``checkpoint-300/``, ``epoch=3``;
empty otherwise), ``spec``, ``circuit``, ``model``, ``weights``, ``id``, ``kind``,
``status``, ``text``, ``source``, ``detail``, then one float column per statistic and
``<stat>_expected`` with its threshold text. A checkpoint that failed has one ``error``
row per claim of the spec, so the table stays claims x checkpoints.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import multiprocessing
import os
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdsl.language import diagnostics as d
from circuitdsl.language.atomic import write_atomic
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError
from circuitdsl.language.ir import Circuit
from circuitdsl.report.frames import stat_columns

if TYPE_CHECKING:
    from circuitdsl.report.model import Report

EXECUTORS = ("local", "ray", "inline")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
BASE_COLUMNS = (
    "checkpoint",
    "step",
    "spec",
    "circuit",
    "model",
    "weights",
    "id",
    "kind",
    "status",
    "text",
    "source",
    "detail",
)
_STRING_COLUMNS = tuple(c for c in BASE_COLUMNS if c != "step")


# ---- tasks: plain data in, plain rows out -------------------------------------------------


@dataclass(frozen=True)
class SpecRef:
    """How a task names its spec: ``("json", circuit JSON)`` or ``("path", spec file)``."""

    kind: str
    text: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.text}"


@dataclass(frozen=True)
class Task:
    """One check: a spec on one model with one weight file (None: the model's own weights).

    `label` is what the table's ``checkpoint`` column shows (the path as the user gave
    it); `index` orders the results.
    """

    index: int
    spec: SpecRef
    model: str
    weights: str | None
    label: str
    step: int | None = None
    preprocess: str | None = None  # `--preprocess` (a named input normalisation), if any


@dataclass
class TaskResult:
    """What a task sends back: its rows, the report as a dict (None when it failed),
    the error text, and the seconds the check took inside the worker (not in the rows:
    rows are the same whichever executor ran them)."""

    index: int
    rows: list[dict[str, Any]]
    report: dict[str, Any] | None
    error: str | None
    seconds: float
    pid: int = 0
    finished: float = 0.0  # `time.time()` in the worker when the task ended (benchmarks)
    cpu_seconds: float = 0.0  # CPU time of the check (wall time on a busy machine is more)


# What a worker process keeps between tasks. Bounded: every spec it was sent (small text),
# and the traced model of the last architecture only -- a sweep over many architectures
# must not hold them all.
_SPECS: dict[str, tuple[Circuit, Any]] = {}
_TEMPLATES: OrderedDict[str, Any] = OrderedDict()
_MAX_TEMPLATES = 1
_SETUP_DONE = False


def _worker_setup(threads: int = 1) -> None:
    """Give this process `threads` torch threads (1: the pool's workers share the cores).

    Runs as the pool's initializer, and at the first Ray task in a Ray worker. The
    environment variable is set before torch is imported, so OpenMP starts with it.
    """
    global _SETUP_DONE
    if _SETUP_DONE:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _SETUP_DONE = True


def _spec_of(ref: SpecRef) -> tuple[Circuit, Any]:
    """The compiled circuit (and, for a spec file, its parsed program), compiled once."""
    if ref.key not in _SPECS:
        if ref.kind == "json":
            _SPECS[ref.key] = (Circuit.from_json(ref.text), None)
        else:
            from circuitdsl.language.compile import compile_circuit
            from circuitdsl.language.loader import load_program
            from circuitdsl.language.resolve import resolve

            program = load_program(ref.text)
            _SPECS[ref.key] = (compile_circuit(resolve(program)), program)
    return _SPECS[ref.key]


def _adapter_for(model: str, weights: str | None) -> Any:
    """The model with `weights`: from the cached trace of `model` when it can be shared,
    loaded afresh otherwise (the first checkpoint of a model becomes its template)."""
    from circuitdsl.models.registry import load_model
    from circuitdsl.models.reload import can_share, with_weights

    template = _TEMPLATES.get(model)
    if template is not None and weights is not None:
        adapter = with_weights(template, weights)
        if adapter is not None:
            _TEMPLATES.move_to_end(model)
            return adapter
    adapter = load_model(model, weights)
    if can_share(adapter):
        _TEMPLATES[model] = adapter
        _TEMPLATES.move_to_end(model)
        while len(_TEMPLATES) > _MAX_TEMPLATES:
            _TEMPLATES.popitem(last=False)
    return adapter


def run_task(task: Task) -> TaskResult:
    """Check one task; never raises for a problem of the task itself (see the module doc)."""
    _worker_setup()
    start = time.perf_counter()
    cpu = time.process_time()
    circuit, program = _spec_of(task.spec)
    try:
        from circuitdsl.check.api import check_spec

        adapter = _adapter_for(task.model, task.weights)
        report = check_spec(
            circuit, adapter, task.weights, program=program, preprocess=task.preprocess
        )
    except DiagnosticError as err:
        reason = "; ".join(f"{x.code}: {x.message}" for x in err.diagnostics)
        return _failed(task, circuit, reason, time.perf_counter() - start, cpu)
    except Exception as err:  # a bug or an odd file must not lose the rest of the sweep
        reason = f"internal error: {type(err).__name__}: {err}"
        return _failed(task, circuit, reason, time.perf_counter() - start, cpu)
    report = _with_model(report, task.model)
    return TaskResult(
        task.index,
        report_rows(report, task.label, task.step),
        report.to_dict(),
        None,
        time.perf_counter() - start,
        os.getpid(),
        time.time(),
        time.process_time() - cpu,
    )


def run_chunk(tasks: Sequence[Task]) -> list[TaskResult]:
    """`run_task` on each task of a chunk (one submission, several checkpoints)."""
    return [run_task(t) for t in tasks]


def _with_model(report: Report, model: str) -> Report:
    import dataclasses

    return dataclasses.replace(report, model=model)


def _failed(
    task: Task, circuit: Circuit, reason: str, seconds: float, cpu: float | None = None
) -> TaskResult:
    return TaskResult(
        task.index,
        error_rows(circuit, task, reason),
        None,
        reason,
        seconds,
        os.getpid(),
        time.time(),
        0.0 if cpu is None else time.process_time() - cpu,
    )


# ---- rows ---------------------------------------------------------------------------------


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def report_rows(report: Report, checkpoint: str, step: int | None) -> list[dict[str, Any]]:
    """The table rows of one report: its claims, then its aggregate verdicts if it has any."""
    head = {
        "checkpoint": checkpoint,
        "step": step,
        "spec": report.spec,
        "circuit": report.circuit,
        "model": report.model,
        "weights": report.weights,
    }
    rows = []
    for c in report.claims:
        row: dict[str, Any] = {
            **head,
            "id": c.id,
            "kind": c.kind,
            "status": c.status,
            "text": c.text,
            "source": c.source,
            "detail": c.detail,
            **stat_columns(c),
        }
        rows.append(row)
    # Aggregate verdicts (one per quantified line): their numbers (passed, of, base
    # rate, p value, ...) become statistic columns.
    for agg in report.aggregates:
        data = agg.to_dict()
        row = {
            **head,
            "id": f"aggregate:{data.get('source', '')}",
            "kind": "aggregate",
            "status": data.get("status", ""),
            "text": data.get("text", ""),
            "source": data.get("source", ""),
            "detail": data.get("detail", ""),
        }
        for key, value in data.items():
            if key not in row and _number(value) is not None:
                row[key] = _number(value)
            elif key not in row and value is None:
                row[key] = math.nan
        rows.append(row)
    return rows


def error_rows(circuit: Circuit, task: Task, reason: str) -> list[dict[str, Any]]:
    """One ``error`` row per claim of `circuit` for a checkpoint that could not be checked."""
    return [
        {
            "checkpoint": task.label,
            "step": task.step,
            "spec": circuit.path,
            "circuit": circuit.name,
            "model": task.model,
            "weights": task.weights,
            "id": claim.id,
            "kind": claim.kind,
            "status": "error",
            "text": claim.text,
            "source": claim.span.location if claim.span else "",
            "detail": reason,
        }
        for claim in circuit.claims
    ]


_STEP_PATTERNS = (
    # step_000500, step-12, global_step1200, iter_300, ckpt-1200, checkpoint_7, epoch=3
    re.compile(
        r"(?:^|[^a-z])(?:global_?)?(?:step|steps|iter|iteration|ckpt|checkpoint|epoch)"
        r"[-_=]?(\d+)$",
        re.IGNORECASE,
    ),
    re.compile(r"^(\d+)$"),  # a file called 500.pt
)


def step_of(path: str | Path) -> int | None:
    """The training step a checkpoint's name carries (file name, else its folder), or None.

    ``step_000500.safetensors`` -> 500, ``ckpt-1200.pt`` -> 1200,
    ``checkpoint-300/model.safetensors`` -> 300; ``curvenet_seed0.safetensors`` -> None (a
    seed is not a step).
    """
    p = Path(path)
    stem = p.name
    for suffix in WEIGHT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for name in (stem, p.parent.name):
        for pattern in _STEP_PATTERNS:
            m = pattern.search(name)
            if m:
                return int(m.group(1))
    return None


# ---- which checkpoints --------------------------------------------------------------------


def expand_checkpoints(arg: str | Sequence[str | Path]) -> list[str]:
    """`--checkpoints`: a glob, a list file (one path a line, `#` comments, paths relative to
    the list file), or (from Python) a list of paths.

    A glob's matches are ordered by step, then path (``ckpt-500`` before ``ckpt-1200``); a
    list keeps its order, and paths in it that do not exist stay (they become ``error``
    rows). Nothing matched is E310.
    """
    if not isinstance(arg, str):
        paths = [str(p) for p in arg]
        where = "the list of checkpoints"
    else:
        p = Path(arg)
        if p.is_file() and not p.name.lower().endswith(WEIGHT_SUFFIXES):
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise DiagnosticError(
                    [Diagnostic(d.E_NO_CHECKPOINTS, f"cannot read the list file `{arg}`: {err}")]
                ) from None
            paths = []
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line).expanduser()
                    paths.append(str(q if q.is_absolute() else p.parent / q))
            where = f"the list file `{arg}`"
        else:
            matches = glob.glob(os.path.expanduser(arg), recursive=True)
            paths = sorted(
                (m for m in matches if not Path(m).is_dir()),
                key=lambda m: (step_of(m) is None, step_of(m) or 0, m),
            )
            where = f"the pattern `{arg}`"
    if not paths:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_NO_CHECKPOINTS,
                    f"{where} names no checkpoint",
                    help="give a glob in quotes (`--checkpoints 'runs/*/step_*.safetensors'`)"
                    " or a text file with one weight file a line",
                )
            ]
        )
    return paths


def spec_ref(spec: Any) -> SpecRef:
    """How tasks name `spec` (an `api.Spec`): its circuit JSON, or its file when it selects
    features by behaviour (the selection runs again on each checkpoint's weights)."""
    program = getattr(spec, "program", None)
    if program is not None:
        from circuitdsl.measure.select import has_selectors

        if has_selectors(program):
            path = Path(program.main.path)
            if not path.is_file():
                raise DiagnosticError(
                    [
                        Diagnostic(
                            d.E_USAGE,
                            "a spec that declares features by behaviour (`top K of ...`) can be"
                            " swept only from a file: the workers read and compile it there",
                            help="save the spec to a .circ file and load it with `circuitdsl.load`",
                        )
                    ]
                )
            return SpecRef("path", str(path.resolve()))
    circuit = spec.circuit if hasattr(spec, "circuit") else spec
    return SpecRef("json", circuit.to_json())


# ---- executors ----------------------------------------------------------------------------


def memory_cap(workers: int, weights: Sequence[str | None]) -> int:
    """`workers`, lowered so that every worker fits in the memory available now.

    A worker holds torch and Python (about 400 MB resident), its template model, the model
    being checked and the state dict read from the file: about three times the largest
    checkpoint file. Unknown free memory (not Linux) leaves `workers` as it is.
    """
    largest = 0
    for w in weights:
        if w is not None:
            try:
                largest = max(largest, os.path.getsize(w))
            except OSError:
                continue
    per_worker = 400 * 2**20 + 3 * largest
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = dict(line.split(":", 1) for line in fh)
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return workers
    return max(1, min(workers, available // per_worker))


# Imported once by the fork server, so that each worker forks from a process that has
# torch and the checker loaded instead of importing them itself (seconds each, and on a
# busy machine all workers at once). Nothing there has started a thread yet: forking it
# is safe, unlike forking this process, whose torch may have.
_PRELOAD = [
    "torch",
    "circuitdsl.check.api",
    "circuitdsl.check.engine",
    "circuitdsl.models.reload",
    "circuitdsl.models.zoo_adapter",
    "circuitdsl.sweep",
]


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)  # takes effect when the server first starts
        return ctx
    return multiprocessing.get_context("spawn")


def _chunks(tasks: Sequence[Task], size: int) -> list[list[Task]]:
    return [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]


def _chunk_size(n: int, workers: int, chunk: int | None) -> int:
    if chunk is not None:
        return max(1, chunk)
    # Four chunks per worker balance the load; a chunk of several checkpoints amortises
    # the cost of one submission (pickling, a round trip) over them.
    return max(1, min(16, n // (4 * workers)))


def _run_inline(tasks: Sequence[Task]) -> Iterator[TaskResult]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: identical numbers, whoever runs them
    try:
        for t in tasks:
            yield run_task(t)
    finally:
        torch.set_num_threads(before)


def _run_local(tasks: Sequence[Task], workers: int, chunk: int | None) -> Iterator[TaskResult]:
    """The process pool; a worker that dies (killed, out of memory) costs only its task.

    When a worker dies, every task then in flight is a suspect: the pool is replaced and
    the other chunks go on; then the suspects run again one at a time, so that the one that
    kills its worker again is known, and becomes ``error`` rows.
    """
    size = _chunk_size(len(tasks), workers, chunk)
    suspects: list[Task] = []
    queue = _chunks(tasks, size)
    while queue:
        queue = yield from _pool_pass(queue, workers, 2 * workers, suspects)
    while suspects:
        again: list[Task] = []
        rest = yield from _pool_pass([[t] for t in suspects], 1, 1, again)
        for t in again[:1]:  # alone in flight: this one killed its worker twice
            yield _lost(t, "the worker process died checking it (twice, the second time alone)")
        suspects = [t for part in rest for t in part] + again[1:]


def _pool_pass(
    queue: list[list[Task]], workers: int, limit: int, suspects: list[Task]
) -> Generator[TaskResult, None, list[list[Task]]]:
    """Run chunks in one pool until it breaks; returns the chunks not yet submitted and
    appends the tasks in flight at the break to `suspects`."""
    queue = list(queue)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_worker_setup
    ) as pool:
        in_flight: dict[Future[list[TaskResult]], list[Task]] = {}
        broken = False
        while (queue and not broken) or in_flight:
            while queue and not broken and len(in_flight) < limit:
                part = queue.pop(0)
                in_flight[pool.submit(run_chunk, part)] = part
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                part = in_flight.pop(fut)
                try:
                    results = fut.result()
                except BrokenProcessPool:
                    broken = True
                    suspects.extend(part)
                    continue
                except Exception as err:  # e.g. a task that cannot be pickled
                    for t in part:
                        yield _lost(t, f"the task failed: {type(err).__name__}: {err}")
                    continue
                yield from results
    return queue


def _lost(task: Task, reason: str) -> TaskResult:
    circuit, _ = _spec_of(task.spec)
    return _failed(task, circuit, reason, 0.0)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_EXECUTOR,
                    "--executor ray needs Ray, which is not installed",
                    help='pip install "circuitdsl[ray]", or use the local pool (the default)',
                )
            ]
        ) from None
    return ray


_REMOTE: Any = None


def _pythonpath() -> str:
    """PYTHONPATH for Ray's workers: this circuitdsl first, so that a worker imports the
    same package as the driver (not another installed copy), then the driver's own."""
    here = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([here, rest]) if rest else here


def _run_ray(
    tasks: Sequence[Task], workers: int, chunk: int | None, address: str | None
) -> Iterator[TaskResult]:
    ray = _ray()
    if not ray.is_initialized():
        try:
            env = {"env_vars": {"PYTHONPATH": _pythonpath()}}
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=workers,
                    include_dashboard=False,
                    runtime_env=env,
                    log_to_driver=False,
                )
        except Exception as err:  # Ray raises ConnectionError, RuntimeError, ...
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_EXECUTOR,
                        f"Ray did not start{f' at `{address}`' if address else ''}: {err}",
                        help="check --ray-address (`ray status` on the cluster), or drop"
                        " --executor ray to use the local pool",
                    )
                ]
            ) from None
    global _REMOTE
    if _REMOTE is None:
        # One CPU a task: Ray runs as many at once as the cluster has CPUs. Made once per
        # process, so that Ray exports the function once, not at every sweep.
        _REMOTE = ray.remote(num_cpus=1, max_retries=1)(run_chunk)
    remote = _REMOTE
    size = _chunk_size(len(tasks), workers, chunk)
    parts = _chunks(tasks, size)
    refs = {remote.remote(part): part for part in parts}
    waiting = list(refs)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        for ref in done:
            try:
                yield from ray.get(ref)
            except Exception as err:  # a worker that died, twice (max_retries=1)
                for t in refs[ref]:
                    yield _lost(t, f"the Ray task failed: {type(err).__name__}: {err}")


def run_tasks(
    tasks: Sequence[Task],
    *,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[TaskResult]:
    """Run every task on `executor` and return the results in task order.

    `workers` defaults to the number of CPUs (capped by the tasks and by `memory_cap`;
    for Ray, the CPUs a local Ray gets). `chunk` is the number of tasks per submission
    (default: a few per worker, at most 16).
    """
    if executor not in EXECUTORS:
        raise DiagnosticError(
            [Diagnostic(d.E_USAGE, f"unknown executor `{executor}`; use {', '.join(EXECUTORS)}")]
        )
    if not tasks:
        return []
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise DiagnosticError([Diagnostic(d.E_USAGE, f"--workers must be >= 1, not {n}")])
    n = min(n, len(tasks))
    if executor == "local":
        capped = memory_cap(n, [t.weights for t in tasks])
        if capped < n:
            print(
                f"circ: {capped} workers instead of {n}: the memory available holds no more",
                file=sys.stderr,
            )
        n = capped
    if executor == "inline":
        stream: Iterator[TaskResult] = _run_inline(tasks)
    elif executor == "local":
        stream = _run_local(tasks, n, chunk)
    else:
        stream = _run_ray(tasks, n, chunk, ray_address)
    results: dict[int, TaskResult] = {}
    for r in stream:
        results[r.index] = r
        if progress is not None:
            progress(len(results), len(tasks))
    return [results[t.index] for t in tasks]


# ---- the table ----------------------------------------------------------------------------


@dataclass
class SweepTable:
    """Claims x checkpoints (or models) as rows; see the module docstring for the columns."""

    rows: list[dict[str, Any]]
    results: list[TaskResult] = field(default_factory=list, repr=False)

    @property
    def columns(self) -> list[str]:
        extra = {k for row in self.rows for k in row if k not in BASE_COLUMNS}
        numbers = sorted(k for k in extra if not k.endswith("_expected"))
        wants = sorted(k for k in extra if k.endswith("_expected"))
        return [*BASE_COLUMNS, *numbers, *wants]

    @property
    def ok(self) -> bool:
        return all(r["status"] == "pass" for r in self.rows)

    @property
    def checkpoints(self) -> list[str]:
        return list(dict.fromkeys(r["checkpoint"] for r in self.rows))

    def reports(self) -> list[Report | None]:
        """Each task's `Report`, in task order (None for a checkpoint that failed)."""
        from circuitdsl.report.model import Report

        return [Report.from_dict(r.report) if r.report else None for r in self.results]

    def to_pandas(self) -> Any:
        """A `pandas.DataFrame` of the rows (needs pandas)."""
        import pandas

        cols = self.columns
        frame = pandas.DataFrame([[row.get(c) for c in cols] for row in self.rows], columns=cols)
        frame["step"] = frame["step"].astype("Int64")
        numbers = [c for c in cols if c not in BASE_COLUMNS and not c.endswith("_expected")]
        frame[numbers] = frame[numbers].astype("float64")
        return frame

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        cols = self.columns
        writer.writerow(cols)
        for row in self.rows:
            writer.writerow([_csv_cell(row.get(c)) for c in cols])
        return buf.getvalue()

    def to_json(self) -> str:
        """A JSON array of row objects; an undefined statistic is null."""
        cols = self.columns
        data = [{c: _json_cell(row.get(c)) for c in cols if c in row} for row in self.rows]
        return json.dumps(data, indent=1, allow_nan=False) + "\n"

    def to_parquet(self) -> bytes:
        """The rows as a Parquet file (needs pyarrow): typed columns, step a nullable int."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_USAGE,
                        "writing .parquet needs pyarrow, which is not installed",
                        help='pip install "circuitdsl[frames]", or write a .csv or .json',
                    )
                ]
            ) from None
        cols = self.columns
        arrays = {}
        for c in cols:
            values = [row.get(c) for row in self.rows]
            if c == "step":
                arrays[c] = pa.array(values, type=pa.int64())
            elif c in _STRING_COLUMNS or c.endswith("_expected"):
                arrays[c] = pa.array(values, type=pa.string())
            else:
                arrays[c] = pa.array(
                    [math.nan if v is None else float(v) for v in values], type=pa.float64()
                )
        buf = io.BytesIO()
        pq.write_table(pa.table(arrays), buf)
        return buf.getvalue()

    def encode(self, path: str) -> str | bytes:
        """The table in the format `path`'s suffix names (.csv, .parquet, .json)."""
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            return self.to_csv()
        if suffix == ".json":
            return self.to_json()
        if suffix in (".parquet", ".pq"):
            return self.to_parquet()
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_USAGE,
                    f"cannot write a sweep table as `{suffix or path}`",
                    help="use -o with .csv, .parquet or .json",
                )
            ]
        )

    def write(self, path: str | Path) -> None:
        """Write the table to `path` (format from the suffix), atomically."""
        data = self.encode(str(path))
        write_atomic(path, data)

    def to_text(self) -> str:
        """Claims down, checkpoints across, one character a cell: ``+`` pass, ``-`` fail,
        ``E`` error; checkpoints listed below with their step and counts."""
        cps = self.checkpoints
        ids = list(dict.fromkeys(r["id"] for r in self.rows))
        cell = {(r["id"], r["checkpoint"]): r["status"] for r in self.rows}
        mark = {"pass": "+", "fail": "-", "error": "E"}
        width = max([len(i) for i in ids] + [5])
        out = ["claims x checkpoints (+ pass, - fail, E error; columns numbered below)"]
        numbers = "".join(str((k + 1) % 10) for k in range(len(cps)))
        out.append(f"{'':{width}}  {numbers}")
        for cid in ids:
            marks = "".join(mark.get(cell.get((cid, cp), ""), " ") for cp in cps)
            out.append(f"{cid:{width}}  {marks}")
        out.append("")
        steps = {r["checkpoint"]: r["step"] for r in self.rows}
        for k, cp in enumerate(cps, start=1):
            statuses = [cell.get((cid, cp)) for cid in ids]
            counts = {s: statuses.count(s) for s in ("pass", "fail", "error")}
            step = f"step {steps[cp]:>7}" if steps[cp] is not None else " " * 12
            reason = ""
            if counts["error"] and counts["error"] == len(ids):
                first = next(r for r in self.rows if r["checkpoint"] == cp)
                reason = f"  ({first['detail']})"
            out.append(
                f"{k:>4}  {step}  {counts['pass']:>3} pass {counts['fail']:>3} fail "
                f"{counts['error']:>3} error  {cp}{reason}"
            )
        total = sum(r["status"] == "pass" for r in self.rows)
        out.append(f"\n{total}/{len(self.rows)} claim checks passed on {len(cps)} checkpoints")
        return "\n".join(out) + "\n"


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)  # repr: every digit, so the file round-trips
    return v


def _json_cell(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _model_name(spec: Any, model: str | None, allow_factories: bool | Collection[str] = ()) -> str:
    circuit = getattr(spec, "circuit", spec)
    name = model or getattr(circuit, "model", None)
    if not model and name:
        # The spec's own `model "pkg.mod:fn"` is code: refused without an opt-in (E220).
        from circuitdsl.models.module import guard_spec_factory

        guard_spec_factory(str(name), allow_factories, getattr(circuit, "path", None))
    if not name:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_NO_MODEL,
                    "the spec names no model and none was given",
                    help="add `model NAME` to the spec or pass --model NAME",
                )
            ]
        )
    return str(name)


def check_checkpoints(
    spec: Any,
    model: str | None,
    checkpoints: str | Sequence[str | Path],
    *,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    preprocess: str | None = None,
    allow_factories: bool | Collection[str] = (),
) -> SweepTable:
    """Check `spec` (an `api.Spec`, or several) on every checkpoint of `model`.

    `checkpoints` is a glob, a list file or a list of paths (`expand_checkpoints`); `model`
    defaults to the spec's `model` line (a factory there needs `allow_factories`, E220).
    Returns the claims x checkpoints `SweepTable`.
    """
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    paths = expand_checkpoints(checkpoints)
    tasks: list[Task] = []
    for s in specs:
        ref, name = spec_ref(s), _model_name(s, model, allow_factories)
        for p in paths:
            tasks.append(Task(len(tasks), ref, name, p, p, step_of(p), preprocess))
    results = run_tasks(
        tasks,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        chunk=chunk,
        progress=progress,
    )
    return SweepTable([row for r in results for row in r.rows], results)


def check_models(
    spec: Any,
    models: Sequence[str | tuple[str, str | Path | None]],
    *,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    chunk: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
    preprocess: str | None = None,
) -> tuple[list[Report], SweepTable]:
    """Check `spec` on every model (a name, or ``(name, weights)``): seeds, architectures.

    Returns one `Report` per model (a model that could not be loaded gets every claim as
    ``error`` with the reason), ready for `circuitdsl.report.universality`, and the table,
    whose ``checkpoint`` column names the model.
    """
    from circuitdsl.report.model import ClaimResult, Report

    ref = spec_ref(spec)
    tasks: list[Task] = []
    for m in models:
        name, weights = (m, None) if isinstance(m, str) else (m[0], m[1])
        w = str(weights) if weights is not None else None
        label = name if w is None else f"{name}={w}"
        tasks.append(Task(len(tasks), ref, name, w, label, step_of(w) if w else None, preprocess))
    results = run_tasks(
        tasks,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        chunk=chunk,
        progress=progress,
    )
    reports = []
    for task, r in zip(tasks, results, strict=True):
        if r.report is not None:
            reports.append(Report.from_dict(r.report))
            continue
        circuit, _ = _spec_of(task.spec)
        claims = tuple(
            ClaimResult(
                id=row["id"],
                status="error",
                text=row["text"],
                source=row["source"],
                detail=row["detail"],
                kind=row["kind"],
            )
            for row in r.rows
        )
        reports.append(Report(circuit.path, task.model, task.weights, claims, circuit.name))
    return reports, SweepTable([row for r in results for row in r.rows], results)
