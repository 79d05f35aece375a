"""Benchmark the checker: 10,000 weight claims against InceptionV1 (random weights).

    python bench/check.py [--claims N] [--naive-sample M] [--seed S]

Times `check()` after the model is built and its weight blocks are loaded (warm),
and once more with cold weight caches (expanded weights computed inside the run);
prints time per claim, peak memory, and the ratio to a naive per-claim loop over
the same claims (`circuitdsl.check.reference`, which fetches and reduces the
weights anew for every claim). The naive loop also cross-checks every statistic.

The engine reports each claim's null (`percentile`, `base_rate`: the statistic for every
input of the target). The naive loop is timed twice: on the statistics alone, and on
what the engine reports (statistics and null, `reference.null_one`/`null_stats`, numpy
per claim); the second is the like-for-like ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuitdsl.check import check
from circuitdsl.check.reference import measure_one, null_one, null_stats
from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.bind import bind
from circuitdsl.models.inceptionv1 import InceptionV1, layer_aliases
from circuitdsl.tools.planting import circuit, claim, family, feature

PAIRS = [
    ("mixed3a", "mixed3b"),
    ("mixed4a", "mixed4b"),
    ("mixed4b", "mixed4c"),
    ("mixed4c", "mixed4d"),
    ("mixed5a", "mixed5b"),
]
SIZES = {
    "mixed3a": 256,
    "mixed3b": 480,
    "mixed4a": 508,
    "mixed4b": 512,
    "mixed4c": 512,
    "mixed4d": 528,
    "mixed5a": 832,
    "mixed5b": 1024,
}
REGIONS = ["top", "bottom", "left", "right", "center", "top_left", "bottom_right"]
# claim-kind mix (fractions of the total); equivariance, within, banding are few and fixed
MIX = [
    ("sign", 0.33),
    ("region", 0.22),
    ("strongest", 0.06),
    ("rank", 0.15),
    ("compare", 0.06),
    ("shape", 0.1),
    ("union", 0.05),
    ("within", 0.03),
]


def model(seed: int) -> TracedAdapter:
    torch.manual_seed(seed)
    return TracedAdapter(
        "inceptionv1",
        InceptionV1().eval(),
        weights_path=None,
        example_input=torch.zeros(1, 3, 224, 224),
        aliases=layer_aliases(),
    )


def make_claims(n: int, seed: int):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    feats: dict[str, object] = {}

    def f(layer: str, ch: int) -> str:
        name = f"{layer}:{ch}"
        if name not in feats:
            feats[name] = feature(name, layer, ch)
        return name

    def edge() -> tuple[str, str]:
        s, d = rng.choice(PAIRS)
        # targets in the 5x5 and 3x3 branches so region/shape claims are measurable
        return f(s, rng.randrange(SIZES[s])), f(d, rng.randrange(SIZES[d] // 4, SIZES[d] * 3 // 4))

    claims = []
    kinds = [k for k, w in MIX for _ in range(round(w * 1000))]
    fams = []
    for i in range(n - 20):
        kind = rng.choice(kinds)
        cid = f"c{i}"
        if kind == "sign":
            claims.append(claim(cid, "sign", [edge()], sign=rng.choice(["excites", "inhibits"])))
        elif kind == "region":
            claims.append(
                claim(
                    cid,
                    "region",
                    [edge()],
                    sign=rng.choice(["excites", "inhibits"]),
                    region={"name": rng.choice(REGIONS)},
                )
            )
        elif kind == "strongest":
            claims.append(
                claim(
                    cid, "strongest", [edge()], sign="excites", region={"name": rng.choice(REGIONS)}
                )
            )
        elif kind == "rank":
            claims.append(
                claim(
                    cid,
                    "rank",
                    [edge()],
                    k=rng.choice([1, 5, 10, 50]),
                    polarity=rng.choice(["any", "excitatory", "inhibitory"]),
                )
            )
        elif kind == "compare":
            claims.append(claim(cid, "compare", [edge(), edge()], measure="norm"))
        elif kind == "shape":
            claims.append(
                claim(
                    cid,
                    "shape",
                    [edge()],
                    sign="excites",
                    shape=rng.choice(["line", "arc"]),
                    orientation=float(rng.randrange(0, 360, 15)),
                )
            )
        elif kind == "union":
            s, d = rng.choice(PAIRS)
            tgt = f(d, rng.randrange(SIZES[d]))
            members = [(f(s, rng.randrange(SIZES[s])), tgt) for _ in range(3)]
            claims.append(claim(cid, "union", members, sign="excites"))
        else:
            d = rng.choice(PAIRS)[1]
            claims.append(
                claim(cid, "within", subjects=[f(d, rng.randrange(SIZES[d]))], branch=f"{d}_5x5")
            )
    for j in range(10):  # families of 8 with orientations, 3a -> 3b (5x5 branch)
        fa, ma = family(
            f"A{j}", "mixed3a", {c: 45.0 * i for i, c in enumerate(rng.sample(range(256), 8))}
        )
        fb, mb = family(
            f"B{j}", "mixed3b", {c: 45.0 * i for i, c in enumerate(rng.sample(range(320, 416), 8))}
        )
        fams += [fa, fb]
        for m in ma + mb:
            feats[m.name] = m
        claims.append(
            claim(
                f"eq{j}",
                "equivariance",
                [(fa.name, fb.name)],
                transform="rotation",
                param="orientation",
                period=None,
            )
        )
    for j in range(10):
        layer = rng.choice(["mixed5b_5x5", "mixed4a_5x5", "mixed3b_3x3"])
        claims.append(claim(f"band{j}", "banding", layer=layer, direction="horizontal"))
    return circuit(list(feats.values()), claims, fams, name="bench")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=10_000)
    ap.add_argument(
        "--naive-sample",
        type=int,
        default=0,
        help="time the naive loop on this many claims and extrapolate (0 = all)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    adapter = model(a.seed)
    cir = make_claims(a.claims, a.seed)
    bound = bind(cir, adapter)
    t_build = time.perf_counter() - t0
    kinds: dict[str, int] = {}
    for c in cir.claims:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    print(f"model + {len(cir.claims)} claims built and bound in {t_build:.1f} s; mix: {kinds}")

    t0 = time.perf_counter()
    check(cir, bound, threads=a.threads)  # cold: expanded weights computed inside
    t_cold = time.perf_counter() - t0
    rss_before = rss_mb()
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        report = check(cir, bound, threads=a.threads)
        best = min(best, time.perf_counter() - t0)
    rss_after = rss_mb()
    one = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        check(cir, bound, threads=1)
        one = min(one, time.perf_counter() - t0)
    tracemalloc.start()
    check(cir, bound)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(cir.claims)
    print(f"check (cold, incl. expanded weights of {len(PAIRS)} layer pairs): {t_cold:.3f} s")
    print(
        f"check (warm, best of 3, {a.threads} threads): {best:.3f} s = "
        f"{1e6 * best / n:.1f} us/claim; summary {report.summary}"
    )
    print(
        f"check (warm, best of 3, 1 thread, the default): {one:.3f} s = "
        f"{1e6 * one / n:.1f} us/claim"
    )
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"peak RSS {rss_after:.0f} MB (before warm runs {rss_before:.0f} MB); "
        f"Python-heap peak during check (tracemalloc) {py_peak / 2**20:.1f} MB"
    )

    subset = [c for c in cir.claims if c.kind not in ("equivariance", "banding")]
    if a.naive_sample:
        subset = random.Random(1).sample(subset, min(a.naive_sample, len(subset)))
    results = {r.id: r for r in report.claims}
    torch.set_num_threads(1)  # the naive loop's small ops are fastest single-threaded too
    best = min(best, one)
    batched_same = best * len(subset) / n  # the engine's time for the same share
    print(f"engine on the {len(subset)} claims the naive loops run: ~{batched_same:.3f} s")
    for with_null in (False, True):
        t0 = time.perf_counter()
        worst = 0.0
        compared = 0
        for c in subset:
            try:
                ref = measure_one(c, bound)
                if with_null:
                    ref.update(null_stats(c, {**results[c.id].measured, **ref}, null_one(c, bound)))
            except Exception:
                continue
            got = results[c.id].measured
            for k, v in ref.items():
                if k in got and math.isfinite(v) and math.isfinite(got[k]):
                    # percentile is in percent: compare on its 0-100 scale
                    scale = 100.0 if k == "percentile" else max(1.0, abs(v))
                    worst = max(worst, abs(v - got[k]) / scale)
                    compared += 1
        t_naive = time.perf_counter() - t0
        per_naive = t_naive / len(subset)
        what = "statistics + null (like for like)" if with_null else "statistics only"
        print(
            f"naive per-claim loop, {what}: {t_naive:.2f} s for {len(subset)} claims = "
            f"{1e6 * per_naive:.0f} us/claim; engine speed-up {per_naive * n / best:.1f}x; "
            f"{compared} numbers compared, max relative difference {worst:.2e}"
        )


if __name__ == "__main__":
    main()
