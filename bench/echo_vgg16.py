"""The Curve Circuits echo experiment on the real VGG16 of `vgg16-hed` (docs/vgg16.md).

    python bench/echo_vgg16.py [--size 96] [--device cpu|cuda] [-o report.json]

Checks `specs/vgg16-hed/echo.circ` (curve units chosen by behaviour in conv3_3, conv4_2
and conv4_3; the echo and its predictions under weight edits) and prints, per curve
unit, every prediction's value before and after the edit, the relative change and the
kind of edit. Stimuli are rendered at `--size` pixels square: VGG16's `features` are
fully convolutional, and the activation read is the centre of each map, so a smaller
canvas changes only how much blank surround each stimulus has (the default 96 keeps the
run to minutes on a CPU; `--size 224` is the network's nominal input).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

import circuitdsl  # noqa: E402
from circuitdsl.check.api import check_spec  # noqa: E402
from circuitdsl.models.registry import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args()
    spec = circuitdsl.load(ROOT / "specs" / "vgg16-hed" / "echo.circ")
    adapter = load_model("vgg16-hed")
    adapter._input_shape = (3, args.size, args.size)  # the canvas stimuli are rendered on
    t0 = time.perf_counter()
    report = check_spec(spec.circuit, adapter, device=args.device, program=spec.program)
    seconds = time.perf_counter() - t0
    rows = []
    for r in report.claims:
        m = r.measured
        kind = next(
            (
                k
                for k in ("direct conv", "linear-path correction", "ablation")
                if f"[{k}]" in r.detail
            ),
            "",
        )
        rows.append({"id": r.id, "status": r.status, "text": r.text, "kind": kind, **m})
        before, after = m.get("before"), m.get("after")
        if before is not None:
            print(
                f"{r.status:5} {r.id:70.70} {before:9.4g} -> {after:9.4g}"
                f" ({m.get('relative_change', float('nan')):+.1%}) {kind}"
            )
        else:
            shown = {k: round(v, 4) for k, v in m.items() if k in ("echo_ratio", "peak", "echo")}
            print(f"{r.status:5} {r.id:70.70} {shown}")
    for s in getattr(report, "selections", None) or []:
        print("selected:", s)
    print(f"summary {report.summary} in {seconds:.0f} s at {args.size}x{args.size}")
    if args.output:
        args.output.write_text(json.dumps({"size": args.size, "claims": rows}, indent=1))


if __name__ == "__main__":
    main()
