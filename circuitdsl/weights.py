"""Weights between layers: kernel slices and expanded weights.

Input: a `TracedGraph` (a model whose every node has a linear stand-in, see
`circuitdsl.models.traced`) and two of its nodes. Output: a `Block`, the linear map
from the source layer to the target layer as a stack of kernels.

Semantics (docs/weights.md has the long form):

* The *linearised network* replaces every ReLU-like nonlinearity and LRN by the
  identity, max-pool by average-pool over the same window (padding with zeros, so a
  3x3 pool spreads a unit's weight as 1/9 over its window), keeps BatchNorm's
  per-channel scale and drops every bias. The weights from layer A to layer B are the
  linear map A -> B of that network (Olah et al. 2021, "Visualizing Weights"). For
  two directly connected convolutions this is exactly the conv's kernel (BatchNorm
  folded in); through a bottleneck it is ``W_exp[o, i] = sum_b W_kxk[o, b] W_1x1[b, i]``.
* Spatial convention: PyTorch cross-correlation. ``block.weight[o, i, dy, dx]``
  multiplies source channel i at row ``stride_h * Y + offset_h + dy`` (and likewise
  for columns) when computing target channel o at row Y. Row 0 is the *top* of the
  kernel: the input row above the output position.

Two mechanisms compute the same map:

* `compose` (the fast path): walks the sub-graph once and composes kernels
  symbolically -- 1x1 and concat compositions are matrix products, a kxk conv after a
  1x1 bottleneck is one einsum, pools are uniform kernels.
* `probe` (the general mechanism): runs the linearised sub-network on a batch of
  one-hot impulses (one per source channel and stride phase) placed in a map just
  large enough that no border is touched, and reads the kernels off the output maps.

Both are tested against each other and against an autograd Jacobian.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from circuitdsl.models.traced import LinOp, TracedGraph


class NotLinearisable(Exception):
    """The path between two layers goes through an operation with no kernel form."""


@dataclass(frozen=True)
class Block:
    """The linear map between two layers: ``weight[C_dst, C_src, kh, kw]``.

    Target position Y reads source rows ``stride[0] * Y + offset[0] + dy`` for
    ``dy in range(kh)`` (columns likewise).
    """

    weight: torch.Tensor
    stride: tuple[int, int]
    offset: tuple[int, int]

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])


# ---- receptive fields -----------------------------------------------------------

# Per spatial dimension: (stride, lo, hi): target position Y reads source
# positions stride*Y + lo ... stride*Y + hi.
_RF = tuple[tuple[int, int, int], tuple[int, int, int]]


def _rf_step(rf: _RF, op: LinOp) -> _RF:
    out = []
    for d in range(2):
        s_a, lo, hi = rf[d]
        if op.kind in ("conv", "avgpool"):
            k, s, dil = op.kernel[d], op.stride[d], op.dilation[d]
            p = op.pad[2 * d]
            out.append((s_a * s, lo - s_a * p, hi + s_a * (dil * (k - 1) - p)))
        elif op.kind == "pad":
            p = op.pad[2 * d]
            out.append((s_a, lo - s_a * p, hi - s_a * p))
        else:
            out.append((s_a, lo, hi))
    return (out[0], out[1])


def receptive_fields(graph: TracedGraph, src: str, dst: str) -> dict[str, _RF]:
    """Receptive field, in source pixels, of every node on the paths src -> dst."""
    rfs: dict[str, _RF] = {src: ((1, 0, 0), (1, 0, 0))}
    for n in graph.path_nodes(src, dst):
        op = graph.nodes[n].op
        ins = [rfs[i] for i in op.inputs if i in rfs]
        if op.kind == "opaque":
            raise NotLinearisable(f"`{n}` is {op.why}, which has no kernel form")
        if op.kind in ("cat", "add"):
            if len({(r[0][0], r[1][0]) for r in ins}) != 1:
                raise NotLinearisable(f"`{n}` joins paths of different strides")
            rf = tuple(
                (ins[0][d][0], min(r[d][1] for r in ins), max(r[d][2] for r in ins))
                for d in range(2)
            )
            rfs[n] = (rf[0], rf[1])
        else:
            rfs[n] = _rf_step(ins[0], op)
    return rfs


# ---- fast path: symbolic composition ---------------------------------------------


@dataclass
class _K:
    """A partial block. `weight` None means identity over channels times `profile`."""

    weight: torch.Tensor | None
    profile: torch.Tensor  # [kh, kw], used when weight is None
    channels: int
    stride: tuple[int, int]
    offset: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        t = self.profile if self.weight is None else self.weight
        return int(t.shape[-2]), int(t.shape[-1])

    def dense(self) -> torch.Tensor:
        if self.weight is not None:
            return self.weight
        eye = torch.eye(self.channels, dtype=self.profile.dtype)
        return eye[:, :, None, None] * self.profile[None, None]


def _full_weight(op: LinOp) -> torch.Tensor:
    """A conv weight with groups expanded to a dense [C_out, C_in, kh, kw]."""
    assert op.weight is not None
    w = op.weight
    if op.groups == 1:
        return w
    c_out, c_in_g = w.shape[0], w.shape[1]
    full = w.new_zeros(c_out, c_in_g * op.groups, *w.shape[2:])
    per_out = c_out // op.groups
    for g in range(op.groups):
        full[g * per_out : (g + 1) * per_out, g * c_in_g : (g + 1) * c_in_g] = w[
            g * per_out : (g + 1) * per_out
        ]
    return full


def _compose_spatial(k: _K, w: torch.Tensor, op: LinOp) -> _K:
    """Apply a conv-like op with weight w [C_out, C_mid, kh, kw] after block k."""
    (sh, sw), (dh, dw) = k.stride, op.dilation
    kh_a, kw_a = k.size
    eh, ew = w.shape[2], w.shape[3]
    size = (sh * dh * (eh - 1) + kh_a, sw * dw * (ew - 1) + kw_a)
    stride = (sh * op.stride[0], sw * op.stride[1])
    offset = (k.offset[0] - sh * op.pad[0], k.offset[1] - sw * op.pad[2])
    plain = k.size == (1, 1) and k.stride == (1, 1) and op.dilation == (1, 1)
    if k.weight is None and plain and float(k.profile[0, 0]) == 1:
        # A conv applied directly to the source: its kernel, exactly (no copy).
        return _K(w, k.profile, k.channels, stride, offset)
    if k.weight is None and eh == 1 and ew == 1:
        # A 1x1 conv after a pool: its weight spread by the pool's profile.
        return _K(w * k.profile[None, None], k.profile, k.channels, stride, offset)
    if k.weight is None:
        # Identity with a spatial profile (e.g. after a pool): place the profile at
        # every tap of w -- as many loops as the profile has taps, usually 1 or 9.
        out = w.new_zeros(w.shape[0], w.shape[1], *size)
        prof = k.profile
        for y in range(kh_a):
            for x in range(kw_a):
                v = float(prof[y, x])
                if v == 0.0:
                    continue
                out[
                    :,
                    :,
                    y : y + sh * dh * (eh - 1) + 1 : sh * dh,
                    x : x + sw * dw * (ew - 1) + 1 : sw * dw,
                ] += v * w
        return _K(out, prof, k.channels, stride, offset)
    a = k.weight
    if kh_a == 1 and kw_a == 1 and sh * dh == 1 and sw * dw == 1:
        # The bottleneck fast path: W_exp[o, i] = sum_b W_kxk[o, b] W_1x1[b, i].
        out = torch.einsum("obhw,bi->oihw", w, a[:, :, 0, 0])
        return _K(out, k.profile, k.channels, stride, offset)
    out = w.new_zeros(w.shape[0], a.shape[1], *size)
    for y in range(eh):
        for x in range(ew):
            y0, x0 = sh * dh * y, sw * dw * x
            out[:, :, y0 : y0 + kh_a, x0 : x0 + kw_a] += torch.einsum(
                "ob,bihw->oihw", w[:, :, y, x], a
            )
    return _K(out, k.profile, k.channels, stride, offset)


def _pool_profile(k: _K, op: LinOp) -> _K:
    kh, kw = op.kernel
    uniform = torch.full((kh, kw), 1.0 / (kh * kw), dtype=k.profile.dtype)
    if k.weight is None:
        # Pool after identity stays channel-diagonal: convolve the profile.
        prof = _compose_spatial(
            _K(k.profile[None, None], k.profile, 1, k.stride, k.offset), uniform[None, None], op
        )
        assert prof.weight is not None
        return _K(None, prof.weight[0, 0], k.channels, prof.stride, prof.offset)
    c = k.weight.shape[0]
    # A pool is a depthwise conv: apply the uniform window channel by channel.
    (sh, sw) = k.stride
    kh_a, kw_a = k.size
    size = (sh * (kh - 1) + kh_a, sw * (kw - 1) + kw_a)
    out = k.weight.new_zeros(c, k.weight.shape[1], *size)
    for y in range(kh):
        for x in range(kw):
            out[:, :, sh * y : sh * y + kh_a, sw * x : sw * x + kw_a] += k.weight
    out /= kh * kw
    return _K(
        out,
        k.profile,
        k.channels,
        (sh * op.stride[0], sw * op.stride[1]),
        (k.offset[0] - sh * op.pad[0], k.offset[1] - sw * op.pad[2]),
    )


def _join(graph: TracedGraph, op: LinOp, ins: Sequence[_K | None], c_src: int) -> _K:
    """Concatenate (or add) blocks in their common window, writing each part once."""
    live = [p for p in ins if p is not None]
    lo = (min(p.offset[0] for p in live), min(p.offset[1] for p in live))
    hi = (
        max(p.offset[0] + p.size[0] for p in live),
        max(p.offset[1] + p.size[1] for p in live),
    )
    size = (hi[0] - lo[0], hi[1] - lo[1])
    rows = [graph.channels(i) for i in op.inputs] if op.kind == "cat" else [c_src]
    dtype = live[0].profile.dtype
    first = live[0].weight
    n_out = sum(rows) if op.kind == "cat" else first.shape[0] if first is not None else c_src
    out = torch.zeros(n_out, c_src, *size, dtype=dtype)
    start = 0
    for part, n_rows in zip(ins, rows if op.kind == "cat" else [0] * len(ins), strict=True):
        if part is not None:
            top, left = part.offset[0] - lo[0], part.offset[1] - lo[1]
            h, w = part.size
            dst = out[:, :, top : top + h, left : left + w]
            if op.kind == "cat":
                # A branch that does not depend on the source keeps zero weights.
                dst = dst[start : start + n_rows]
            if part.weight is None:
                idx = torch.arange(c_src)
                dst[idx, idx] += part.profile
            elif op.kind == "cat":
                dst.copy_(part.weight)  # branches occupy disjoint rows: no read-modify-write
            else:
                dst += part.weight
        start += n_rows
    return _K(out, live[0].profile, c_src, live[0].stride, lo)


def compose(graph: TracedGraph, src: str, dst: str) -> Block:
    """Expanded weights src -> dst by composing kernels along the graph (fast path)."""
    c_src = graph.channels(src)
    env: dict[str, _K] = {src: _K(None, torch.ones(1, 1), c_src, (1, 1), (0, 0))}
    for n in graph.path_nodes(src, dst):
        op = graph.nodes[n].op
        ins = [env.get(i) for i in op.inputs]
        live = [k for k in ins if k is not None]
        if op.kind == "opaque":
            raise NotLinearisable(f"`{n}` is {op.why}, which has no kernel form")
        k = live[0]
        if op.kind == "identity":
            env[n] = k
        elif op.kind == "scale":
            assert op.scale is not None
            env[n] = _K(
                op.scale[:, None, None, None] * k.dense(), k.profile, c_src, k.stride, k.offset
            )
        elif op.kind == "conv":
            env[n] = _compose_spatial(k, _full_weight(op), op)
        elif op.kind == "avgpool":
            env[n] = _pool_profile(k, op)
        elif op.kind == "pad":
            env[n] = _K(
                k.weight,
                k.profile,
                c_src,
                k.stride,
                (k.offset[0] - k.stride[0] * op.pad[0], k.offset[1] - k.stride[1] * op.pad[2]),
            )
        elif op.kind in ("cat", "add"):
            if len({p.stride for p in live}) != 1:
                raise NotLinearisable(f"`{n}` joins paths of different strides")
            env[n] = _join(graph, op, ins, c_src)
        else:
            raise NotLinearisable(f"`{n}` ({op.kind}) has no kernel form")
    out = env[dst]
    return Block(out.dense().contiguous(), out.stride, out.offset)


# ---- general mechanism: impulse probing -----------------------------------------


def _run_linear(
    graph: TracedGraph, src: str, dst: str, x: torch.Tensor, nodes: list[str]
) -> dict[str, torch.Tensor]:
    """The linearised sub-network src -> dst on input x (other inputs are zero)."""
    env: dict[str, torch.Tensor] = {src: x}
    for n in nodes:
        op = graph.nodes[n].op
        ins = [env.get(i) for i in op.inputs]
        live = [t for t in ins if t is not None]
        t = live[0]
        if op.kind == "identity":
            y = t
        elif op.kind == "scale":
            assert op.scale is not None
            y = t * op.scale[None, :, None, None]
        elif op.kind == "conv":
            assert op.weight is not None
            t = F.pad(t, (op.pad[2], op.pad[3], op.pad[0], op.pad[1]))
            y = F.conv2d(t, op.weight, None, op.stride, 0, op.dilation, op.groups)
        elif op.kind == "avgpool":
            t = F.pad(t, (op.pad[2], op.pad[3], op.pad[0], op.pad[1]))
            y = F.avg_pool2d(t, op.kernel, op.stride, 0, op.ceil_mode, count_include_pad=True)
        elif op.kind == "pad":
            y = F.pad(t, (op.pad[2], op.pad[3], op.pad[0], op.pad[1]))
        elif op.kind == "add":
            y = live[0]
            for other in live[1:]:
                y = y + other
        elif op.kind == "cat":
            parts = []
            for i, part in zip(op.inputs, ins, strict=True):
                if part is None:
                    part = t.new_zeros(t.shape[0], graph.channels(i), *t.shape[2:])
                parts.append(part)
            y = torch.cat(parts, 1)
        else:
            raise NotLinearisable(f"`{n}` is {op.why or op.kind}, which has no kernel form")
        env[n] = y
    return env


def _probe_geometry(
    graph: TracedGraph, src: str, dst: str, rfs: dict[str, _RF], nodes: list[str]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The smallest source map (and impulse position) whose impulses touch no border.

    In a bias-free linear network an impulse's response is zero outside its
    receptive-field footprint, so zero padding agrees with an infinite plane as long
    as every node's footprint (for every stride phase) lies inside that node's map.
    """
    c_src = graph.channels(src)
    s_dst = (rfs[dst][0][0], rfs[dst][1][0])
    span = max(rfs[dst][d][2] - rfs[dst][d][1] + 1 for d in range(2))
    for extra in range(0, 8 * max(s_dst) + 16):
        size = span + extra
        with torch.no_grad():
            env = _run_linear(graph, src, dst, torch.zeros(1, c_src, size, size), nodes)
        ok_q: list[int | None] = [None, None]
        for d in range(2):
            for q in range(size - s_dst[d] + 1):
                ok = True
                for n in nodes:
                    s_a, lo, hi = rfs[n][d]
                    extent = env[n].shape[2 + d]
                    first = math.ceil((q - hi) / s_a)
                    last = (q + s_dst[d] - 1 - lo) // s_a
                    if first < 0 or last > extent - 1:
                        ok = False
                        break
                if ok:
                    ok_q[d] = q
                    break
        if ok_q[0] is not None and ok_q[1] is not None:
            return (size, size), (ok_q[0], ok_q[1])
    raise NotLinearisable(f"no probe size found for {src} -> {dst}")


def probe(graph: TracedGraph, src: str, dst: str, *, chunk: int = 256) -> Block:
    """Expanded weights src -> dst by probing the linearised sub-network with impulses."""
    nodes = graph.path_nodes(src, dst)
    rfs = receptive_fields(graph, src, dst)
    (sh, lo_h, hi_h), (sw, lo_w, hi_w) = rfs[dst]
    kh, kw = hi_h - lo_h + 1, hi_w - lo_w + 1
    (size_h, size_w), (qh, qw) = _probe_geometry(graph, src, dst, rfs, nodes)
    c_src, c_dst = graph.channels(src), graph.channels(dst)
    out = torch.zeros(c_dst, c_src, kh, kw)
    with torch.no_grad():
        # One impulse per (source channel, stride phase); a phase's impulses share
        # the same read-out geometry, so each chunk is read with one gather.
        for uh in range(sh):
            for uw in range(sw):
                for c0 in range(0, c_src, chunk):
                    c1 = min(c_src, c0 + chunk)
                    n = c1 - c0
                    x = torch.zeros(n, c_src, size_h, size_w)
                    x[torch.arange(n), torch.arange(c0, c1), qh + uh, qw + uw] = 1.0
                    y = _run_linear(graph, src, dst, x, nodes)[dst]
                    # Output Y sees the impulse at kernel row q + u - lo - S*Y.
                    ys = [
                        (r, qh + uh - lo_h - sh * r)
                        for r in range(y.shape[2])
                        if 0 <= qh + uh - lo_h - sh * r < kh
                    ]
                    xs = [
                        (c, qw + uw - lo_w - sw * c)
                        for c in range(y.shape[3])
                        if 0 <= qw + uw - lo_w - sw * c < kw
                    ]
                    if not ys or not xs:
                        continue  # a kernel narrower than the stride skips this phase
                    ry = torch.tensor([a for a, _ in ys], dtype=torch.long)
                    dy = torch.tensor([d for _, d in ys], dtype=torch.long)
                    rx = torch.tensor([a for a, _ in xs], dtype=torch.long)
                    dx = torch.tensor([d for _, d in xs], dtype=torch.long)
                    sel = y[:, :, ry[:, None], rx[None, :]]  # [n, C_dst, |dy|, |dx|]
                    out[:, c0:c1, dy[:, None], dx[None, :]] = sel.transpose(0, 1)
    return Block(out, (sh, sw), (lo_h, lo_w))


def expanded_weights(graph: TracedGraph, src: str, dst: str, *, method: str = "auto") -> Block:
    """Weights src -> dst: `compose` where every op has a known kernel form, else `probe`."""
    if method == "probe":
        return probe(graph, src, dst)
    if method == "compose":
        return compose(graph, src, dst)
    try:
        return compose(graph, src, dst)
    except NotLinearisable:
        return probe(graph, src, dst)


# ---- directions and helpers -----------------------------------------------------


def reduce_block(
    block: torch.Tensor,
    dst_channels: Sequence[int],
    dst_coefficients: Sequence[float],
    src_channels: Sequence[int] | None = None,
    src_coefficients: Sequence[float] | None = None,
) -> torch.Tensor:
    """Combine a block's kernels linearly along two directions.

    A direction is ``sum_k c_k * channel_k``; its weights are the same combination of
    kernels: ``K = sum_o sum_i d_o c_i block[o, i]``. Returns ``[kh, kw]``, or
    ``[C_src, kh, kw]`` (every source channel into the target direction) when
    `src_channels` is None.
    """
    d = torch.as_tensor(list(dst_coefficients), dtype=block.dtype)
    rows = block[list(dst_channels)]  # [n_dst, C_src, kh, kw]
    into = torch.einsum("o,oihw->ihw", d, rows)
    if src_channels is None:
        return into
    c = torch.as_tensor(
        list(src_coefficients) if src_coefficients is not None else [1.0] * len(src_channels),
        dtype=block.dtype,
    )
    return torch.einsum("i,ihw->hw", c, into[list(src_channels)])


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one conv equal to ``bn(conv(x))`` in eval mode."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    shift = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    w = conv.weight * scale[:, None, None, None]
    b = (bias - bn.running_mean) * scale + shift
    return w.detach(), b.detach()
