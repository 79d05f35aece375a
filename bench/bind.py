"""Binding claims to a model: time per claim at 1k, 10k, 30k claims (it should not grow).

    python bench/bind.py [--sizes 1000,10000,30000] [--tree PATH]

Each spec has N claims `f_i -> g_i : excites` between 2N features of curvenet's conv1 and
conv2; only `bind` is timed (best of 3). `--tree` times another checkout (e.g. main).
The machine is shared: take the figures as upper bounds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    """Print the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,30000")
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    args = ap.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    import circuitdsl
    from circuitdsl.models.bind import bind
    from circuitdsl.models.registry import load_model

    adapter = load_model("curvenet")
    print(f"bind on curvenet, {args.tree}")
    for n in (int(s) for s in args.sizes.split(",")):
        lines = ["circuit b"]
        for i in range(n):
            lines += [f"feature f{i} = conv1:{i % 16}", f"feature g{i} = conv2:{i % 32}"]
            lines.append(f"f{i} -> g{i} : excites")
        circuit = circuitdsl.loads("\n".join(lines)).circuit
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            bind(circuit, adapter)
            best = min(best, time.perf_counter() - t0)
        print(f"{n:>7} claims  {best:8.3f} s  {best / n * 1e6:7.1f} us/claim")


if __name__ == "__main__":
    main()
