"""Calibration of the default thresholds: false passes on null weights, passes on planted circuits.

    python bench/calibration.py [--plants 16] [--null 400] [--strength 3] [--seed 0]

For every claim kind, random claims are checked on networks with nothing planted and
true claims on circuits planted into the same random weights, in two formats:

* InceptionV1 (lucent's architecture, random init): each planted kernel reaches its
  target through a mixed layer's 5x5 bottleneck (one bottleneck unit is made to read the
  planted source only), so every claim is measured on expanded weights, with the other
  bottleneck units adding their random contribution on top -- as in
  tests/check/test_planted_inceptionv1.py;
* a small CNN (3 -> 16 -> 32 -> 64 channels, 5x5 convolutions, random init): the planted
  kernel is written into the conv weight itself.

A planted kernel has `--strength` times the RMS kernel norm of all inputs of its target
in the weights the claim reads (3 by default: a strong but not overwhelming connection).
Per kind the table gives the per-claim false-pass rate on the null (random claims
about random channel pairs: sampled, and exact as the claims' mean base rate), the
pass rate of the true claims on the planted circuit, and for quantified lines (8 claims
each) the aggregate verdict's false-pass and pass rates at alpha 0.01. A sweep of the
main statistic's threshold shows where the defaults come from. docs/claims.md,
"Calibration", quotes its output.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuitdsl.check import check
from circuitdsl.check.aggregate import aggregates
from circuitdsl.check.shape import template
from circuitdsl.language.ir import Claim, Threshold
from circuitdsl.models.base import TracedAdapter, adapter_from_module
from circuitdsl.models.inceptionv1 import InceptionV1, layer_aliases
from circuitdsl.tools.planting import circuit, claim, feature, top_bottom_kernel

MIXED = [
    "mixed3a",
    "mixed3b",
    "mixed4a",
    "mixed4b",
    "mixed4c",
    "mixed4d",
    "mixed4e",
    "mixed5a",
    "mixed5b",
]
LINE = 8  # claims per quantified line


# ---- the kinds: a planted pattern and the true claim about it ---------------------------


@dataclasses.dataclass
class Kind:
    name: str  # row label
    stat: str  # the main statistic swept in the second table
    sweep: tuple[float, ...]
    op: str
    # (rng) -> (pattern for the first edge, pattern for a second edge or None, claim args)
    plant: Callable[[random.Random], tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]]
    kind: str  # claim kind
    two_edges: bool = False


def _unit(k: torch.Tensor) -> torch.Tensor:
    return k / k.norm()


def _gauss(rng: random.Random) -> torch.Tensor:
    g = torch.Generator().manual_seed(rng.randrange(1 << 30))
    return torch.randn(5, 5, generator=g)


def _arc(theta: float) -> torch.Tensor:
    t = template("arc", theta, 5, 5)
    return torch.where(t > 0, t, torch.full_like(t, -0.1))


def _line(theta: float) -> torch.Tensor:
    t = template("line", theta, 5, 5)
    return torch.where(t > 0, t, torch.full_like(t, -0.1))


def _shape_plant(shape: str, theta: float) -> tuple[torch.Tensor, None, dict[str, Any]]:
    kernel = _arc(theta) if shape == "arc" else _line(theta)
    return kernel, None, {"sign": "excites", "shape": shape, "orientation": theta}


KINDS = [
    Kind(
        "excites",
        "z",
        (1.0, 1.5, 2.0, 2.5),
        ">=",
        lambda r: (torch.ones(5, 5), None, {"sign": "excites"}),
        "sign",
    ),
    Kind(
        "inhibits",
        "z",
        (-1.0, -1.5, -2.0, -2.5),
        "<=",
        lambda r: (-torch.ones(5, 5), None, {"sign": "inhibits"}),
        "sign",
    ),
    Kind(
        "excites at top",
        "z",
        (1.0, 1.5, 2.0, 2.5),
        ">=",
        lambda r: (top_bottom_kernel(5), None, {"sign": "excites", "region": {"name": "top"}}),
        "region",
    ),
    Kind(
        "inhibits at bottom",
        "z",
        (-1.0, -1.5, -2.0, -2.5),
        "<=",
        lambda r: (top_bottom_kernel(5), None, {"sign": "inhibits", "region": {"name": "bottom"}}),
        "region",
    ),
    Kind(
        "strongest at bottom",
        "margin",
        (0.0, 0.25, 0.4, 0.5, 0.75),
        ">",
        lambda r: (
            torch.tensor([0.2, 0.2, 0.5, 1.0, 1.0])[:, None].expand(5, 5).clone(),
            None,
            {"sign": "excites", "region": {"name": "bottom"}},
        ),
        "strongest",
    ),
    Kind(
        "among top 10 inputs",
        "rank",
        (10.0,),
        "<=",
        lambda r: (_gauss(r), None, {"k": 10, "polarity": "any"}),
        "rank",
    ),
    Kind(
        "among top 10 excitatory",
        "rank",
        (10.0,),
        "<=",
        lambda r: (torch.ones(5, 5), None, {"k": 10, "polarity": "excitatory"}),
        "rank",
    ),
    Kind(
        "stronger than",
        "ratio",
        (1.0, 1.1, 1.5, 1.6, 2.0),
        ">=",
        lambda r: (_gauss(r), None, {"measure": "norm"}),
        "compare",
        True,
    ),
    Kind(
        "excites more than",
        "difference",
        (0.5, 1.5, 2.5, 3.0),
        ">=",
        lambda r: (torch.ones(5, 5), None, {"measure": "excites"}),
        "compare",
        True,
    ),
    Kind(
        "similar to",
        "cosine",
        (0.3, 0.5, 0.7),
        ">=",
        lambda r: (_gauss(r), "same", {"measure": "similar"}),
        "compare",
        True,
    ),
    Kind(
        "opposite to",
        "cosine",
        (-0.3, -0.5, -0.7),
        "<=",
        lambda r: (_gauss(r), "negated", {"measure": "opposite"}),
        "compare",
        True,
    ),
    Kind(
        "excites along arc θ",
        "correlation",
        (0.3, 0.5, 0.7),
        ">=",
        lambda r: _shape_plant("arc", float(r.randrange(0, 360, 15))),
        "shape",
    ),
    Kind(
        "excites along line θ",
        "correlation",
        (0.3, 0.5, 0.7),
        ">=",
        lambda r: _shape_plant("line", float(r.randrange(0, 180, 15))),
        "shape",
    ),
]


# ---- two model formats ----------------------------------------------------------------


@dataclasses.dataclass
class Slot:
    """A place where one planted kernel goes: source layer/channel -> target layer/channel."""

    src_layer: str
    dst_layer: str
    dst: int
    src_pool: int  # channels of the source layer


class Format:
    """A random network with slots for plants; `adapter(model)` wraps a (planted) copy."""

    name: str
    model: nn.Module

    def pairs(self) -> list[tuple[str, str, list[int], int]]:  # (src, dst, targets, C_src)
        raise NotImplementedError

    def capacity(self, pair: int) -> int:
        raise NotImplementedError

    def plant(
        self, m: nn.Module, pair: int, slot: int, src: int, dst: int, kernel: torch.Tensor
    ) -> None:
        raise NotImplementedError

    def adapter(self, m: nn.Module) -> Any:
        raise NotImplementedError


class Inception(Format):
    name = "InceptionV1"

    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = InceptionV1().eval()
        self.mods = dict(self.model.named_modules())
        self._pairs = []
        for a, b in itertools.pairwise(MIXED):
            w1 = self.mods[f"{b}_1x1_pre_relu_conv"].weight.shape[0]
            w3 = self.mods[f"{b}_3x3_pre_relu_conv"].weight.shape[0]
            n5 = self.mods[f"{b}_5x5_pre_relu_conv"].weight.shape[0]
            c_src = self.mods[f"{b}_5x5_bottleneck_pre_relu_conv"].weight.shape[1]
            self._pairs.append((a, b, list(range(w1 + w3, w1 + w3 + n5)), c_src))

    def pairs(self) -> list[tuple[str, str, list[int], int]]:
        return self._pairs

    def capacity(self, pair: int) -> int:
        b = self._pairs[pair][1]
        return int(self.mods[f"{b}_5x5_bottleneck_pre_relu_conv"].weight.shape[0])

    def plant(
        self, m: nn.Module, pair: int, slot: int, src: int, dst: int, kernel: torch.Tensor
    ) -> None:
        _, b, targets, _ = self._pairs[pair]
        mods = dict(m.named_modules())
        bn, k5 = (
            mods[f"{b}_5x5_bottleneck_pre_relu_conv"].weight,
            mods[f"{b}_5x5_pre_relu_conv"].weight,
        )
        with torch.no_grad():
            # the unit reads the planted source only and writes to the planted target
            # only (left in place, its weight-1 read of `src` would send the unit's
            # random 5x5 kernels, several times a typical input, to every other target)
            bn[slot] = 0.0
            bn[slot, src] = 1.0
            k5[:, slot] = 0.0
            k5[dst - targets[0], slot] = kernel

    def adapter(self, m: nn.Module) -> Any:
        return TracedAdapter(
            "inceptionv1",
            m,
            weights_path=None,
            example_input=torch.zeros(1, 3, 224, 224),
            aliases=layer_aliases(),
        )


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


class Small(Format):
    name = "small CNN"

    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = SmallNet().eval()
        self._pairs = [
            ("conv1", "conv2", list(range(32)), 16),
            ("conv2", "conv3", list(range(64)), 32),
        ]

    def pairs(self) -> list[tuple[str, str, list[int], int]]:
        return self._pairs

    def capacity(self, pair: int) -> int:
        return len(self._pairs[pair][2])  # one plant per target

    def plant(
        self, m: nn.Module, pair: int, slot: int, src: int, dst: int, kernel: torch.Tensor
    ) -> None:
        conv = getattr(m, self._pairs[pair][1])
        with torch.no_grad():
            conv.weight[dst, src] = kernel

    def adapter(self, m: nn.Module) -> Any:
        return adapter_from_module("small", m, input_shape=(3, 32, 32))


# ---- measuring --------------------------------------------------------------------------


def _feat(name: str, layer: str, ch: int) -> Any:
    return feature(name, layer, ch)


def _null_claims(fmt: Format, k: Kind, n: int, rng: random.Random) -> tuple[list[Any], list[Claim]]:
    feats, claims = [], []
    for i in range(n):
        p = rng.randrange(len(fmt.pairs()))
        a, b, targets, c_src = fmt.pairs()[p]
        s, t = rng.randrange(c_src), rng.choice(targets)
        # o != s: `a -> t similar to a -> t` is true, its pass no false pass (with 16
        # inputs, 1 claim in 16 compared a connection with itself)
        o = rng.choice([c for c in range(c_src) if c != s])
        feats += [_feat(f"s{i}", a, s), _feat(f"t{i}", b, t), _feat(f"o{i}", a, o)]
        _, _, args = k.plant(rng)
        edges = [(f"s{i}", f"t{i}")] + ([(f"o{i}", f"t{i}")] if k.two_edges else [])
        claims.append(
            dataclasses.replace(claim(f"c{i}", k.kind, edges, **args), line=f"null{i // LINE}")
        )
    return feats, claims


def _planted(
    fmt: Format, k: Kind, n: int, rng: random.Random, strength: float, scale: dict
) -> tuple[nn.Module, list[Any], list[Claim]]:
    feats, claims = [], []
    # (pair, slot, source, target, unit kernel, is the claim's first edge) per kernel
    placements: list[tuple[int, int, int, int, torch.Tensor, bool]] = []
    used: dict[int, int] = {}
    order = list(range(len(fmt.pairs())))
    i = 0
    while i < n:
        p = order[i % len(order)]
        a, b, targets, c_src = fmt.pairs()[p]
        need = 2 if k.two_edges and k.plant(random.Random(0))[1] is not None else 1
        if used.get(p, 0) + need > fmt.capacity(p):
            order.remove(p)
            if not order:
                break
            continue
        slot = used.get(p, 0)
        used[p] = slot + need
        t = targets[slot % len(targets)] if isinstance(fmt, Inception) else targets[slot]
        s, o = rng.sample(range(c_src), 2)
        first, second, args = k.plant(rng)
        placements.append((p, slot, s, t, _unit(first), True))
        if second is not None:
            other = first if second == "same" else -first
            noise = 0.3 * _unit(_gauss(rng)) * other.norm()
            # the second kernel gets the first's norm in the conv it is written to
            placements.append((p, slot + 1, o, t, _unit(other + noise), False))
        feats += [_feat(f"s{i}", a, s), _feat(f"t{i}", b, t), _feat(f"o{i}", a, o)]
        edges = [(f"s{i}", f"t{i}")] + ([(f"o{i}", f"t{i}")] if k.two_edges else [])
        claims.append(
            dataclasses.replace(claim(f"c{i}", k.kind, edges, **args), line=f"plant{i // LINE}")
        )
        i += 1
    gains = _gains(fmt, placements)
    m = copy.deepcopy(fmt.model)
    norm = 0.0
    for (p, slot, s, t, unit, first_edge), g in zip(placements, gains, strict=True):
        if first_edge:  # strength x the RMS input norm in the weights the claim reads
            norm = strength * scale[(p, t)] / g
        fmt.plant(m, p, slot, s, t, norm * unit)
    return m, feats, claims


def _gains(
    fmt: Format, placements: list[tuple[int, int, int, int, torch.Tensor, bool]]
) -> list[float]:
    """Norm of each unit kernel once expanded into the weights the checker reads.

    1 where the kernel is written into the measured weights (a 5x5 branch read through
    its 1x1 bottleneck, the small CNN); less where a pool lies between the two layers
    (mixed3b -> mixed4a, mixed4e -> mixed5a: the 5x5 kernel is spread over 11x11 by the
    linearised 3x3/2 pool), and pattern-dependent there. Expansion is linear in the
    planted kernel, so planting every unit kernel and every zero kernel and taking the
    difference gives each one's expanded kernel exactly.
    """
    ones, zeros = copy.deepcopy(fmt.model), copy.deepcopy(fmt.model)
    for p, slot, s, t, unit, _ in placements:
        fmt.plant(ones, p, slot, s, t, unit)
        fmt.plant(zeros, p, slot, s, t, torch.zeros_like(unit))
    a1, a0 = fmt.adapter(ones), fmt.adapter(zeros)
    out = []
    for p, _, s, t, _, _ in placements:
        src, dst = fmt.pairs()[p][:2]
        out.append(float((a1.weights(src, dst)[t, s] - a0.weights(src, dst)[t, s]).norm()))
    return out


def _scales(fmt: Format) -> dict[tuple[int, int], float]:
    """RMS kernel norm of all inputs of every target, on the null network."""
    ad = fmt.adapter(copy.deepcopy(fmt.model))
    out = {}
    for p, (a, b, targets, _) in enumerate(fmt.pairs()):
        w = ad.weights(a, b)
        norms = w[targets].flatten(2).norm(dim=2)
        for t, r in zip(targets, norms.pow(2).mean(dim=1).sqrt().tolist(), strict=True):
            out[(p, t)] = r
    return out


def _rate(results: list[Any], ok: Callable[[Any], bool]) -> float:
    measured = [r for r in results if r.status in ("pass", "fail")]
    return sum(ok(r) for r in measured) / len(measured) if measured else math.nan


def _chance(results: list[Any]) -> float:
    """Mean base rate of the null claims: the exact false-pass rate of a random source.

    Each claim's `base_rate` is the share of *all* inputs of its target for which it
    would pass, so its mean over random targets estimates the null false-pass rate
    with far less noise than the share of sampled claims that pass.
    """
    rates = [r.measured["base_rate"] for r in results if "base_rate" in r.measured]
    return sum(rates) / len(rates) if rates else math.nan


def _agg_count(claims: list[Claim], rep: Any) -> tuple[int, int]:
    aggs = aggregates(claims, {r.id: r for r in rep.claims})
    return sum(a.status == "pass" for a in aggs), len(aggs)


def _agg_rate(claims: list[Claim], rep: Any) -> float:
    aggs = aggregates(claims, {r.id: r for r in rep.claims})
    return sum(a.status == "pass" for a in aggs) / len(aggs) if aggs else math.nan


def run(fmt: Format, n: int, n_null: int, strength: float, seed: int) -> list[dict[str, Any]]:
    null_ad = fmt.adapter(copy.deepcopy(fmt.model))
    scale = _scales(fmt)
    rows = []
    for j, k in enumerate(KINDS):
        # separate streams: the null's size does not change which circuits are planted
        feats, claims = _null_claims(fmt, k, n_null, random.Random(f"{seed}/null/{j}"))
        null_rep = check(circuit(feats, claims), null_ad)
        m, pfeats, pclaims = _planted(
            fmt, k, n, random.Random(f"{seed}/plant/{j}"), strength, scale
        )
        pad = fmt.adapter(m)
        plant_rep = check(circuit(pfeats, pclaims), pad)
        ctrl = {c: check(circuit(pfeats, pclaims), pad, control=c) for c in ("null", "negated")}
        row = {
            "kind": k.name,
            "null_fp": _rate(null_rep.claims, lambda r: r.status == "pass"),
            "chance": _chance(null_rep.claims),
            "planted": _rate(plant_rep.claims, lambda r: r.status == "pass"),
            "agg_fp": _agg_rate(claims, null_rep),
            "agg_fp_count": _agg_count(claims, null_rep),
            "agg_planted": _agg_rate(pclaims, plant_rep),
            "ctrl_null": _rate(ctrl["null"].claims, lambda r: r.status == "pass"),
            "ctrl_neg": _rate(ctrl["negated"].claims, lambda r: r.status == "pass"),
            "n_null": len(claims),
            "n_planted": len(pclaims),
            "sweep": [],
        }
        for v in k.sweep:
            t = Threshold(k.stat, k.op, v)

            def ok(r: Any, t: Threshold = t) -> bool:
                x = r.measured.get(t.stat, math.nan)
                others = [th for th in _claim_thresholds(r, t.stat)]
                return x == x and t.holds(x) and all(th for th in others)

            row["sweep"].append(
                (f"{k.stat} {k.op} {v:g}", _rate(null_rep.claims, ok), _rate(plant_rep.claims, ok))
            )
        rows.append(row)
        print(f"  {fmt.name}: {k.name} done", file=sys.stderr)
    return rows


def _claim_thresholds(r: Any, swept: str) -> list[bool]:
    """Whether each of the claim's other default thresholds holds (for the sweep)."""
    out = []
    for stat, want in r.expected.items():
        if stat == swept:
            continue
        out.append(want.holds(r.measured.get(stat, math.nan)))  # an `Expected`
    return out


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f} %"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plants", type=int, default=16, help="planted claims per kind and format")
    ap.add_argument(
        "--null", type=int, default=400, help="null claims per kind and format (lines of 8)"
    )
    ap.add_argument("--strength", type=float, default=3.0, help="planted norm / RMS input norm")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = {
        f.name: run(f, args.plants, args.null, args.strength, args.seed)
        for f in (Inception(args.seed), Small(args.seed))
    }
    print(
        f"# calibration: {args.plants} planted / {args.null} null claims per kind and "
        "format, "
        f"strength {args.strength:g}, seed {args.seed}, lines of {LINE} claims, alpha 0.01\n"
    )
    print(
        "| kind | null false-pass: sampled / chance (InceptionV1) | planted pass (InceptionV1) "
        "| null false-pass: sampled / chance (small CNN) | planted pass (small CNN) "
        "| lines: false-pass / pass (InceptionV1) | lines: false-pass / pass (small CNN) "
        "| planted under --control null / negated (InceptionV1) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    inc, small = results["InceptionV1"], results["small CNN"]
    for a, b in zip(inc, small, strict=True):
        print(
            f"| {a['kind']} | {_pct(a['null_fp'])} / {_pct(a['chance'])} | {_pct(a['planted'])} "
            f"| {_pct(b['null_fp'])} / {_pct(b['chance'])} | "
            f"{_pct(b['planted'])} | {_pct(a['agg_fp'])} / {_pct(a['agg_planted'])} | "
            f"{_pct(b['agg_fp'])} / {_pct(b['agg_planted'])} | "
            f"{_pct(a['ctrl_null'])} / {_pct(a['ctrl_neg'])} |"
        )
    for name, rows in results.items():
        fp = sum(r["agg_fp_count"][0] for r in rows)
        of = sum(r["agg_fp_count"][1] for r in rows)
        print(
            f"\n{name}: {fp} of {of} null lines pass ({_pct(fp / of if of else math.nan)})", end=""
        )
    print()
    print(
        "\nThreshold sweep of the main statistic (other thresholds at their defaults): "
        "null false-pass / planted pass\n"
    )
    print("| kind | threshold | InceptionV1 | small CNN |")
    print("|---|---|---|---|")
    for a, b in zip(inc, small, strict=True):
        for (label, fp, tp), (_, fp2, tp2) in zip(a["sweep"], b["sweep"], strict=True):
            print(
                f"| {a['kind']} | `{label}` | {_pct(fp)} / {_pct(tp)} | {_pct(fp2)} / {_pct(tp2)} |"
            )
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
