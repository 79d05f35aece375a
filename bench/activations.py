"""Activation claims on a real VGG16 against a bare torch floor (issue 18).

    python bench/activations.py [--repeat 3] [--tree PATH] [--threads N]

The workload: on `vgg16-hed`, a behaviour-selected curve family at `features.19` (conv4_2,
receptive field 76 px) and its `no echo` claim (`SPEC` below), checked with the cache
off. The floor: load the conv weights into torchvision's ``vgg16().features[:20]`` and
push the same number of distinct images, at receptive-field size (76 x 76), in batches
of 64, under ``torch.no_grad``. Each side runs in a fresh process (so peak memory is
its own): time from after ``import torch`` to the end, and the process's peak RSS.
Then a re-run of the check with the on-disk cache warm (only start-up is left).

A second floor pushes the same images at the check's own canvas size, which is larger
than the receptive field: on an even-sized map the centre is the mean of the middle two
units per side (the definition that makes a canvas run equal the full-size run), so the
canvas holds two units' fields plus the pixels the unit grid leaves before the first
field that fits (for conv4_2: 6 + 76 + 8 = 90 px). That floor separates the cost of the
larger canvas from the tool's own overhead.

The machine is shared by other engineers: every figure is the minimum over `--repeat`
runs (the least disturbed), and the two sides alternate so that a busy spell hits both.
`--tree` runs the check side against another checkout (e.g. main, for "before"
figures); the floor always uses this one. Prints the figures and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]

SPEC = """circuit vgg_curves "curve detectors in VGG16's conv4_2, chosen by behaviour"
model "vgg16-hed"
family curve(orientation: angle) = top 4 of features.19 by curve(radius = 16) over orientation
expect curve no echo on curve(orientation = self.orientation + 180deg, radius = 16)
"""


def _peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def child_check(no_cache: bool) -> dict[str, object]:
    """The check side: load, select, measure; counts the images pushed."""
    import torch

    t0 = time.perf_counter()
    import circuitdsl
    from circuitdsl.check.api import check_spec
    from circuitdsl.models.probe import Runner

    pushed: list[tuple[int, tuple[int, ...]]] = []
    orig = Runner.centres

    def centres(self, images, *args, **kw):  # type: ignore[no-untyped-def]
        pushed.append((int(images.shape[0]), tuple(images.shape[-2:])))
        return orig(self, images, *args, **kw)

    Runner.centres = centres  # type: ignore[method-assign]
    spec = circuitdsl.loads(SPEC)
    kw: dict[str, object] = {"program": spec.program}
    try:  # the options this branch added; an older checkout has none
        report = check_spec(spec.circuit, None, cache=not no_cache, progress=False, **kw)
    except TypeError:
        report = check_spec(spec.circuit, None, **kw)
    wall = time.perf_counter() - t0
    return {
        "time": wall,
        "rss": _peak_rss(),
        "images": sum(n for n, _ in pushed),
        "sizes": sorted({s for _, s in pushed}),
        "summary": report.summary,
        "selections": list(report.selections),
        "threads": torch.get_num_threads(),
    }


def child_floor(n: int, size: int, batch: int, weights: str) -> dict[str, object]:
    """The floor: conv weights into features[:20], n images of size x size through it.

    Bare torch: the module is built here from VGG16's configuration, the weights read
    from the converted safetensors file with `safetensors.torch.load_file`.
    """
    import torch

    t0 = time.perf_counter()
    from safetensors.torch import load_file
    from torch import nn

    layers: list[nn.Module] = []
    c = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            c = int(v)
    features = nn.Sequential(*layers)
    state = load_file(weights)
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
    net = features[:20].eval()
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for i in range(0, n, batch):
            out = net(images[i : i + batch])
            _ = out[:, :, out.shape[-2] // 2, out.shape[-1] // 2].clone()
    wall = time.perf_counter() - t0
    return {"time": wall, "rss": _peak_rss(), "images": n, "threads": torch.get_num_threads()}


def _weights_file(env: dict[str, str]) -> str:
    """The converted vgg16-hed safetensors (made now if absent)."""
    code = (
        "from circuitdsl.models.vgg16_hed import converted_state, find_h5;"
        "print(converted_state(find_h5())[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _run(args: list[str], tree: Path, env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(HERE), *args],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Print the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout the check side runs")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both sides")
    ap.add_argument("--batch", type=int, default=64, help="the floor's batch")
    ap.add_argument("--child", choices=("check", "check-cached", "floor"))
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--size", type=int, default=76)
    ap.add_argument("--weights", default="")
    args = ap.parse_args()
    if args.child == "check":
        print(json.dumps(child_check(no_cache=True)))
        return
    if args.child == "check-cached":
        print(json.dumps(child_check(no_cache=False)))
        return
    if args.child == "floor":
        print(json.dumps(child_floor(args.n, args.size, args.batch, args.weights)))
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.pop("CIRCUITDSL_NO_CACHE", None)
    cache = tempfile.mkdtemp(prefix="circuitdsl-bench-")
    env["CIRCUITDSL_CACHE"] = cache
    # the vgg16-hed conversion is cached too: made once here, so neither side pays for it
    weights = _weights_file(env)
    checks, floors, canvas_floors = [], [], []
    for _ in range(args.repeat):
        checks.append(_run(["--child", "check"], args.tree, env))
        n = int(checks[-1]["images"])  # type: ignore[call-overload]
        floor = ["--child", "floor", "--n", str(n), "--size", str(args.size)]
        floors.append(_run([*floor, "--weights", weights], ROOT, env))
        side = max(max(s) for s in checks[-1]["sizes"])  # type: ignore[attr-defined]
        floor = ["--child", "floor", "--n", str(n), "--size", str(side)]
        canvas_floors.append(_run([*floor, "--weights", weights], ROOT, env))
    _run(["--child", "check-cached"], args.tree, env)  # fills the cache
    cached = [_run(["--child", "check-cached"], args.tree, env) for _ in range(args.repeat)]
    c_t = min(float(c["time"]) for c in checks)  # type: ignore[arg-type]
    f_t = min(float(f["time"]) for f in floors)  # type: ignore[arg-type]
    c_m = min(int(c["rss"]) for c in checks)  # type: ignore[call-overload]
    f_m = min(int(f["rss"]) for f in floors)  # type: ignore[call-overload]
    w_t = min(float(c["time"]) for c in cached)  # type: ignore[arg-type]
    first = checks[0]
    print(
        f"vgg16-hed, features.19, {args.threads} thread(s), min of {args.repeat} (shared machine)"
    )
    print(f"check tree: {args.tree}")
    print(f"  selections: {'; '.join(first['selections'])}")  # type: ignore[arg-type]
    print(f"  verdicts: {first['summary']}; images pushed: {first['images']} at {first['sizes']}")
    print(f"check (cache off)       {c_t:8.2f} s   peak {c_m / 2**30:6.2f} GiB")
    label = f"floor ({first['images']} imgs at {args.size}px)"
    print(f"{label:<23} {f_t:8.2f} s   peak {f_m / 2**30:6.2f} GiB")
    print(f"check, cache warm       {w_t:8.2f} s   peak "
          f"{min(int(c['rss']) for c in cached) / 2**30:6.2f} GiB")  # type: ignore[call-overload]  # fmt: skip
    side = max(max(s) for s in first["sizes"])  # type: ignore[attr-defined]
    k_t = min(float(f["time"]) for f in canvas_floors)  # type: ignore[arg-type]
    print(f"{f'floor at the canvas ({side}px)':<23} {k_t:8.2f} s")
    print(f"ratio time   check/floor {c_t / f_t:6.2f}x   (target <= 1.5x)")
    print(f"  of which canvas/field  {k_t / f_t:6.2f}x   (the two-unit centre and grid slack)")
    print(f"  and check/canvas floor {c_t / k_t:6.2f}x   (the tool's own overhead)")
    print(f"ratio memory check/floor {c_m / f_m:6.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()
