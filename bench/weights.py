"""Benchmark: expanded weights mixed3a -> mixed3b of InceptionV1 (random weights).

Prints, as minimum over repetitions (the machine may be shared):
* raw einsum: the two bottleneck compositions alone (3x3 and 5x5),
* by hand: the same block assembled for this one layer (einsums written into a
  zeroed 480x256x5x5 tensor, 1x1 at the centre, pool_reduce spread over 3x3),
* the block's floor: allocating and zeroing the 480x256x5x5 output alone, and that plus
  the raw einsums (what any dense block costs: the einsums write 1.2 M of its 3.1 M
  numbers, the rest is placement and zeros),
* fast path: `compose` for the whole 480x256x5x5 block (all four branches),
* general mechanism: `probe` (impulses through the linearised sub-network),
* cache hit: `adapter.weights` when the block was computed before,
and the ratios, then the fast path's time for every pair of adjacent InceptionV1
layers. Run: `python bench/weights.py`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import torch

from circuitdsl.models.base import TracedAdapter
from circuitdsl.models.inceptionv1 import InceptionV1, layer_aliases
from circuitdsl.models.weights import compose, probe


def best(fn: Callable[[], object], reps: int) -> float:
    """Minimum wall time of `fn` over `reps` runs, in seconds."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    torch.manual_seed(0)
    adapter = TracedAdapter(
        "inceptionv1",
        InceptionV1().eval(),
        weights_path=None,
        example_input=torch.zeros(1, 3, 224, 224),
        aliases=layer_aliases(),
    )
    g = adapter.graph
    src, dst = adapter.node("mixed3a"), adapter.node("mixed3b")
    p = dict(adapter.module.named_parameters())
    w3 = p["mixed3b_3x3_pre_relu_conv.weight"].detach()
    b3 = p["mixed3b_3x3_bottleneck_pre_relu_conv.weight"].detach()[:, :, 0, 0]
    w5 = p["mixed3b_5x5_pre_relu_conv.weight"].detach()
    b5 = p["mixed3b_5x5_bottleneck_pre_relu_conv.weight"].detach()[:, :, 0, 0]

    w1 = p["mixed3b_1x1_pre_relu_conv.weight"].detach()[:, :, 0, 0]
    wp = p["mixed3b_pool_reduce_pre_relu_conv.weight"].detach()[:, :, 0, 0]

    def raw() -> None:
        torch.einsum("obhw,bi->oihw", w3, b3)
        torch.einsum("obhw,bi->oihw", w5, b5)

    def by_hand() -> torch.Tensor:
        # The same block written out for this one layer: einsums into a 5x5 window.
        out = torch.zeros(480, 256, 5, 5)
        out[:128, :, 2, 2] = w1
        out[128:320, :, 1:4, 1:4] = torch.einsum("obhw,bi->oihw", w3, b3)
        out[320:416] = torch.einsum("obhw,bi->oihw", w5, b5)
        out[416:, :, 1:4, 1:4] = (wp / 9)[:, :, None, None]
        return out

    def zeros() -> None:
        torch.zeros(480, 256, 5, 5)

    for _ in range(3):  # warm up allocator and kernels
        raw()
        compose(g, src, dst)
    t_raw = t_fast = t_hand = t_zeros = float("inf")
    for _ in range(10):  # interleaved, so that load from other processes hits all
        t_raw = min(t_raw, best(raw, 5))
        t_zeros = min(t_zeros, best(zeros, 5))
        t_hand = min(t_hand, best(by_hand, 5))
        t_fast = min(t_fast, best(lambda: compose(g, src, dst), 5))
    t_probe = best(lambda: probe(g, src, dst), 3)
    adapter.weights("mixed3a", "mixed3b")
    t_hit = best(lambda: adapter.weights("mixed3a", "mixed3b"), 1000)
    fast, slow = compose(g, src, dst), probe(g, src, dst)
    err = float((fast.weight - slow.weight).abs().max() / fast.weight.abs().max())
    hand_err = float((fast.weight - by_hand()).abs().max() / fast.weight.abs().max())

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"block mixed3a -> mixed3b: {tuple(fast.weight.shape)}, offset {fast.offset}")
    print(f"raw einsum (3x3 + 5x5 bottlenecks): {t_raw * 1e3:8.3f} ms")
    print(f"zeroed 480x256x5x5 block alone:     {t_zeros * 1e3:8.3f} ms")
    print(f"by hand (einsums into the block):   {t_hand * 1e3:8.3f} ms")
    print(f"fast path (compose, whole block):   {t_fast * 1e3:8.3f} ms")
    print(f"general mechanism (probe):          {t_probe * 1e3:8.3f} ms")
    print(f"cache hit (adapter.weights):        {t_hit * 1e6:8.3f} us")
    print(f"fast / raw einsum:   {t_fast / t_raw:8.2f}x")
    print(f"fast / by hand:      {t_fast / t_hand:8.2f}x")
    print(f"fast / (raw + zeroed block): {t_fast / (t_raw + t_zeros):8.2f}x")
    print(f"probe / fast:        {t_probe / t_fast:8.1f}x")
    print(f"fast / cache hit:    {t_fast / t_hit:8.0f}x")
    print(f"max |fast - probe| / max |w|: {err:.1e}; |fast - by hand|: {hand_err:.1e}")
    print()
    print("fast path for every adjacent pair (min of 3 runs):")
    chain = ["conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c"]
    chain += ["mixed4d", "mixed4e", "mixed5a", "mixed5b"]
    for a, b in itertools.pairwise(chain):
        na, nb = adapter.node(a), adapter.node(b)
        t = best(lambda na=na, nb=nb: compose(g, na, nb), 3)
        blk = compose(g, na, nb)
        shape = "x".join(str(d) for d in blk.weight.shape)
        mib = blk.weight.numel() * 4 / 2**20
        pair = f"{a:>8} -> {b:<8}"
        print(f"  {pair} {shape:>16} stride {blk.stride[0]}  {t * 1e3:7.1f} ms {mib:5.0f} MiB")


if __name__ == "__main__":
    main()
