"""Throughput of activation measurement: stimuli per second, CPU and (where present) GPU.

    python bench/activations.py [--model curvenet] [--n 2048] [--threads N]

Reports, for the shipped model: rendering stimuli (a batched curve sweep), forward
passes that keep only centre activations (`circuitdsl.models.probe.Runner`) at several
batch sizes, and the whole `specs/curvenet/predictions.circ` check. With a CUDA GPU it
times the same forward passes there and prints the speed-up; otherwise it says
"no GPU". Numbers depend on the machine and on other load; the median of 3 runs is
printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from circuitdsl.measure.stimuli import make_stimulus
from circuitdsl.models import probe
from circuitdsl.models.probe import Runner
from circuitdsl.models.registry import load_model


def _median_time(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Print the benchmark table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="curvenet")
    ap.add_argument("--n", type=int, default=2048, help="stimuli per timing")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    adapter = load_model(args.model)
    h, w = probe.input_size(adapter)
    n = args.n
    orient = torch.linspace(0, 360, n + 1)[:-1]
    print(f"model {args.model}, input {h}x{w}, {n} stimuli, torch {torch.__version__},"
          f" {torch.get_num_threads()} CPU threads")  # fmt: skip

    t = _median_time(lambda: make_stimulus("curve", size=(h, w), orientation=orient))
    print(f"render curve sweep            {n / t:10.0f} stimuli/s")
    images = make_stimulus("curve", size=(h, w), orientation=orient)
    layers = [adapter.node("conv2")] if "conv2" in {x.name for x in adapter.layers()} else []
    layers = layers or [adapter.node(adapter.layers()[-1].name)]

    cpu: dict[int, float] = {}
    for batch in (32, 256, 1024):
        probe.BATCH = batch
        runner = Runner(adapter.graph.gm, device="cpu")
        t = _median_time(lambda r=runner: r.centres(images, layers))
        cpu[batch] = n / t
        print(f"cpu forward, batch {batch:5d}     {cpu[batch]:10.0f} stimuli/s")
    probe.BATCH = 256

    if torch.cuda.is_available():
        runner = Runner(adapter.graph.gm, device="cuda")
        runner.centres(images[:64], layers)  # warm-up: kernels, allocator
        t = _median_time(lambda: runner.centres(images, layers))
        print(f"cuda forward, batch 256      {n / t:10.0f} stimuli/s"
              f"  (speed-up x{n / t / cpu[256]:.1f} over cpu)")  # fmt: skip
    else:
        print("no GPU: torch.cuda.is_available() is False, GPU speed-up not measured")

    import circuitdsl
    from circuitdsl.check.api import check_spec

    spec = circuitdsl.load("specs/curvenet/predictions.circ")
    counted = {"images": 0}
    orig = Runner.centres

    def counting(self: Runner, imgs: torch.Tensor, nodes: object) -> dict[str, torch.Tensor]:
        counted["images"] += len(imgs)
        return orig(self, imgs, nodes)  # type: ignore[arg-type]

    Runner.centres = counting  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        rep = check_spec(spec.circuit, adapter, program=spec.program)
        t = time.perf_counter() - t0
    finally:
        Runner.centres = orig  # type: ignore[method-assign]
    images_run = counted["images"]
    print(f"check predictions.circ        {t:10.2f} s for {len(rep.claims)} claims,"
          f" {images_run} forward images ({images_run / t:.0f}/s incl. edits)")  # fmt: skip


if __name__ == "__main__":
    main()
