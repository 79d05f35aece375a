"""The curve circuit across curvenet's training: the figure and numbers of docs/training.md.

    python -m circuitdsl.zoo.train curvenet --seed 0 --checkpoint-every 50 --out runs
    python bench/training_curve.py runs/curvenet_seed0 [--workers N] [--out docs/images/...]

Checks specs/curvenet/curve_circuit.circ on every checkpoint in the folder (a local process
pool), measures each checkpoint's accuracy on the first 512 held-out images, writes the
figure and the table (CSV beside the figure), and prints the numbers the doc quotes: claims
holding per step, the step from which each claim holds to the end, and the accuracy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import circuitdsl  # noqa: E402
from circuitdsl.render.training import formation, plot_training  # noqa: E402
from circuitdsl.sweep import step_of  # noqa: E402
from circuitdsl.zoo import load_zoo_model  # noqa: E402
from circuitdsl.zoo.data import curve_eval_set  # noqa: E402
from circuitdsl.zoo.train import CHECK_SIZE, accuracy  # noqa: E402

SPEC = REPO / "specs" / "curvenet" / "curve_circuit.circ"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run's checkpoints (step_*.safetensors)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "images" / "training_curve_circuit.png"
    )
    args = parser.parse_args()
    spec = circuitdsl.load(SPEC)
    table = spec.check_checkpoints(
        "curvenet", str(args.folder / "step_*.safetensors"), workers=args.workers
    )
    images, labels = curve_eval_set(2000)
    images, labels = images[:CHECK_SIZE], labels[:CHECK_SIZE]
    acc = {}
    for path in table.checkpoints:
        step = step_of(path)
        assert step is not None
        acc[step] = accuracy(load_zoo_model("curvenet", path), images, labels)
    plot_training(
        table.rows, args.out, title="curve_circuit.circ across curvenet's training", accuracy=acc
    )
    table.write(args.out.with_suffix(".csv"))
    info = formation(table.rows)
    n = len(spec.claims)
    print("step  claims holding  accuracy")
    for s in info["steps"]:
        print(f"{s:>5}  {round(info['share'][s] * n):>3}/{n}  {acc[s]:.3f}")
    stable = {k: v for k, v in info["claims"].items() if v is not None}
    print(f"\n{len(stable)}/{n} claims hold at the last checkpoint and every one since the step:")
    print(" ", sorted(stable.values()))
    if stable:
        print(f"  median {statistics.median(stable.values()):.0f}")
    print("never holding to the end:", sorted(k for k, v in info["claims"].items() if v is None))
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
