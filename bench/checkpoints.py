"""Benchmark sweeps: one spec over 100 checkpoints of curvenet (circuitdsl.sweep).

    python bench/checkpoints.py [--n 100] [--workers 1,2,4] [--no-ray] [--json OUT]

The checkpoints are *not* from a training run: they are the shipped curvenet weights plus
seeded Gaussian noise (scale 0 to 0.1, so some claims fail on some of them), written to a
temporary folder. Every check is the real thing: specs/curvenet/curve_circuit.circ (31
weight claims) on each file.

Measured:

1. throughput of the local process pool against the number of workers (1, 2 and the CPU
   count by default): wall time for the whole sweep, time to the first result (worker
   start-up: a Python process importing torch), and the steady rate after it;
2. local pool against Ray: the overhead per checkpoint (wall time x workers, minus the
   seconds the checks themselves took inside the workers, per checkpoint), as a share of
   one check; Ray both with one checkpoint per task and with 16 a task, in a
   warm Ray session (``ray.init`` and worker start-up reported apart);
3. what sharing buys, per checkpoint, in one process: a fresh `circ check --weights` per
   checkpoint (what a shell loop does), compile + load + check each time, compile once +
   load (trace) each time, and compile once + trace once + read only the state dict (what
   the workers do).

Numbers depend on the machine and on its load: print them with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import circuitdsl  # noqa: E402
from circuitdsl.check.api import check_spec  # noqa: E402
from circuitdsl.models.registry import load_model  # noqa: E402
from circuitdsl.models.reload import with_weights  # noqa: E402
from circuitdsl.sweep import check_checkpoints  # noqa: E402
from circuitdsl.zoo import get_zoo_entry  # noqa: E402

SPEC = REPO / "specs" / "curvenet" / "curve_circuit.circ"


def make_checkpoints(folder: Path, n: int) -> list[str]:
    """`n` perturbed copies of the shipped curvenet weights, `step_XXXXXX.safetensors`."""
    state = load_file(str(get_zoo_entry("curvenet").weights_path()))
    paths = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        scale = 0.1 * i / max(n - 1, 1)
        noisy = {k: v + scale * torch.randn(v.shape, generator=g) for k, v in state.items()}
        path = folder / f"step_{i * 100:06d}.safetensors"
        save_file(noisy, str(path))
        paths.append(str(path))
    return paths


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


REPEAT = 3


def timed_sweep(spec: Any, paths: list[str], **kw: Any) -> dict[str, Any]:
    """`one_sweep` `REPEAT` times; the fastest (the one least disturbed by other load)."""
    runs = [one_sweep(spec, paths, **kw) for _ in range(REPEAT)]
    best = min(runs, key=lambda r: r["wall_s"])
    best["wall_s_all"] = [r["wall_s"] for r in runs]
    return best


def one_sweep(spec: Any, paths: list[str], **kw: Any) -> dict[str, Any]:
    """One sweep: wall time, start-up, steady rate, and the overhead per checkpoint.

    Worker-side clocks (`TaskResult.finished`, `.seconds`) separate the three: start-up
    runs until the first task begins; the steady rate counts checkpoints from then to the
    last; a worker's overhead is the time between its first task's start and its last
    task's end that no check used (receiving, unpickling, sending, waiting), per task.
    """
    start_wall = time.time()
    start = time.perf_counter()
    table = check_checkpoints(spec, "curvenet", paths, **kw)
    wall = time.perf_counter() - start
    results = table.results
    n = len(results)
    began = min(r.finished - r.seconds for r in results)
    ended = max(r.finished for r in results)
    per_worker: dict[int, list[Any]] = {}
    for r in results:
        per_worker.setdefault(r.pid, []).append(r)
    gaps = []
    for rs in per_worker.values():
        window = max(r.finished for r in rs) - min(r.finished - r.seconds for r in rs)
        gaps.append((window - sum(r.seconds for r in rs)) / len(rs))
    checks = sorted(r.seconds for r in results)
    return {
        "wall_s": wall,
        "startup_s": began - start_wall,
        "checkpoints_per_s": n / wall,
        "steady_checkpoints_per_s": n / (ended - began),
        "check_s_median": statistics.median(checks),
        "check_cpu_s_median": statistics.median(r.cpu_seconds for r in results),
        "check_s_mean": statistics.mean(checks),
        "overhead_per_checkpoint_s": statistics.mean(gaps),
        "workers_used": len(per_worker),
        "errors": sum(r.error is not None for r in results),
        "rows": table.rows,
    }


def sharing(spec: Any, paths: list[str], sample: int) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds per checkpoint with less and less shared (module docstring)."""
    import resource

    torch.set_num_threads(1)
    some = paths[:sample]
    out: dict[str, dict[str, float]] = {}

    def timed(name: str, n: int, body: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        body()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = (after.ru_utime + after.ru_stime) - (kids.ru_utime + kids.ru_stime)
        out[name] = {
            "wall_s": (time.perf_counter() - wall) / n,
            "cpu_s": (time.process_time() - cpu + child_cpu) / n,
        }

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    few = some[: max(2, sample // 4)]

    def processes() -> None:
        for p in few:
            subprocess.run(
                [sys.executable, "-m", "circuitdsl", "check", str(SPEC), "--weights", p],
                cwd=REPO,
                env=env,
                capture_output=True,
                check=False,
            )

    def compile_each() -> None:
        for p in some:
            s = circuitdsl.load(SPEC)
            check_spec(s.circuit, load_model("curvenet", p), p, program=s.program)

    def trace_each() -> None:
        for p in some:
            check_spec(spec.circuit, load_model("curvenet", p), p, program=spec.program)

    template = load_model("curvenet", some[0])

    def trace_once() -> None:
        for p in some:
            check_spec(spec.circuit, with_weights(template, p), p, program=spec.program)

    timed("process_per_checkpoint", len(few), processes)
    timed("compile_and_load_each", len(some), compile_each)
    timed("compile_once_trace_each", len(some), trace_each)
    timed("compile_once_trace_once", len(some), trace_once)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="checkpoints (100)")
    parser.add_argument(
        "--workers",
        default=f"1,2,{os.cpu_count() or 1}",
        help="comma-separated worker counts for the local pool (1,2,CPUs)",
    )
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    parser.add_argument("--sample", type=int, default=20, help="checkpoints for part 3 (20)")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each sweep; best (3)")
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    counts = sorted({int(w) for w in args.workers.split(",")})
    spec = circuitdsl.load(SPEC)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "n": args.n, "load_before": load_average()}
    print(f"{os.cpu_count()} CPUs, load average {results['load_before']} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory(prefix="circ-bench-") as tmp:
        paths = make_checkpoints(Path(tmp), args.n)
        print(f"{args.n} perturbed curvenet checkpoints in {tmp}\n")

        inline = timed_sweep(spec, paths, executor="inline")
        results["inline"] = {k: v for k, v in inline.items() if k != "rows"}
        check = inline["check_s_median"]
        print(
            f"inline (this process):  {inline['wall_s']:6.2f} s, "
            f"{inline['checkpoints_per_s']:5.1f} ckpt/s; one check: median {1e3 * check:.1f} ms,"
            f" mean {1e3 * inline['check_s_mean']:.1f} ms (the first loads the model); CPU time"
            f" of a check: median {1e3 * inline['check_cpu_s_median']:.1f} ms (the rest of the"
            " wall time is waiting for a core other jobs hold)"
        )

        print("\n1. local process pool against workers")
        cold = one_sweep(spec, paths, workers=counts[0], executor="local")
        results["local_cold"] = {k: v for k, v in cold.items() if k != "rows"}
        print(
            f"  first pool of this process ({counts[0]} workers; the fork server starts and "
            f"imports torch): {cold['wall_s']:.2f} s, start-up {cold['startup_s']:.2f} s; then:"
        )
        base = None
        for w in counts:
            r = timed_sweep(spec, paths, workers=w, executor="local")
            assert r["rows"] == inline["rows"], "the pool measured something else"
            base = base or r["steady_checkpoints_per_s"]
            results[f"local_{w}"] = {k: v for k, v in r.items() if k != "rows"}
            print(
                f"  workers {w:>2}: {r['wall_s']:6.2f} s total = start-up "
                f"{r['startup_s']:5.2f} s + {args.n} checkpoints at "
                f"{r['steady_checkpoints_per_s']:6.1f} ckpt/s "
                f"(x{r['steady_checkpoints_per_s'] / base:.2f} the 1-worker rate); overhead "
                f"{1e3 * r['overhead_per_checkpoint_s']:.2f} ms/ckpt "
                f"({100 * r['overhead_per_checkpoint_s'] / r['check_s_median']:.0f} % of its"
                f" median check, {1e3 * r['check_s_median']:.1f} ms)"
            )

        if not args.no_ray:
            print("\n2. Ray (local)")
            try:
                import ray
            except ImportError:
                print("  Ray is not installed: skipped")
            else:
                from circuitdsl.sweep import _pythonpath

                w = max(counts)
                t = time.perf_counter()
                ray.init(
                    num_cpus=w,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}},
                )
                results["ray_init_s"] = time.perf_counter() - t
                cold = one_sweep(spec, paths, workers=w, executor="ray", chunk=1)
                print(
                    f"  ray.init {results['ray_init_s']:.1f} s; first sweep (Ray's workers start)"
                    f" {cold['wall_s']:.2f} s; then, warm:"
                )
                for chunk, label in ((1, "1 checkpoint a task"), (16, "16 checkpoints a task")):
                    r = timed_sweep(spec, paths, workers=w, executor="ray", chunk=chunk)
                    assert r["rows"] == inline["rows"], "Ray measured something else"
                    results[f"ray_{w}_chunk_{chunk}"] = {k: v for k, v in r.items() if k != "rows"}
                    local = results[f"local_{w}"]
                    print(
                        f"  {label:>20}: {r['wall_s']:6.2f} s, steady "
                        f"{r['steady_checkpoints_per_s']:6.1f} ckpt/s, overhead "
                        f"{1e3 * r['overhead_per_checkpoint_s']:.2f} ms/ckpt "
                        f"({100 * r['overhead_per_checkpoint_s'] / r['check_s_median']:.0f} % of "
                        f"its median check, {1e3 * r['check_s_median']:.1f} ms; local pool "
                        f"{1e3 * local['overhead_per_checkpoint_s']:.2f} ms)"
                    )
                ray.shutdown()

        print(f"\n3. sharing, seconds per checkpoint in one process ({args.sample} checkpoints)")
        share = sharing(spec, paths, args.sample)
        results["sharing"] = share
        last = share["compile_once_trace_once"]
        for k, v in share.items():
            print(
                f"  {k:>26}: wall {1e3 * v['wall_s']:8.1f} ms, CPU {1e3 * v['cpu_s']:8.1f} ms"
                f"  (x{v['cpu_s'] / last['cpu_s']:.1f} the shared path's CPU time)"
            )
    results["load_after"] = load_average()
    print(f"\nload average after: {results['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
