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
    """A partial block from the source to one node, kept in two stages.

    Stage 1 is channel-diagonal: every source channel is filtered by the same spatial
    `profile` (identity, or the uniform windows of pools applied to the source), with
    `pstride` and `poffset` in source pixels. Stage 2 is `weight` (None: identity), a
    dense kernel on stage 1's output grid with `dstride` and `doffset` in that grid.
    Keeping the pool apart means a bottleneck after a strided pool is still one einsum;
    the profile is spread into the kernel only when the block is materialised.
    """

    profile: torch.Tensor
    pstride: tuple[int, int]
    poffset: tuple[int, int]
    weight: torch.Tensor | None
    dstride: tuple[int, int]
    doffset: tuple[int, int]
    channels: int

    @property
    def psize(self) -> tuple[int, int]:
        return int(self.profile.shape[0]), int(self.profile.shape[1])

    @property
    def dsize(self) -> tuple[int, int]:
        if self.weight is None:
            return (1, 1)
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def stride(self) -> tuple[int, int]:
        return (self.pstride[0] * self.dstride[0], self.pstride[1] * self.dstride[1])

    @property
    def offset(self) -> tuple[int, int]:
        return (
            self.poffset[0] + self.pstride[0] * self.doffset[0],
            self.poffset[1] + self.pstride[1] * self.doffset[1],
        )

    @property
    def size(self) -> tuple[int, int]:
        (ph, pw), (dh, dw) = self.psize, self.dsize
        return (self.pstride[0] * (dh - 1) + ph, self.pstride[1] * (dw - 1) + pw)

    def with_weight(
        self, weight: torch.Tensor | None, dstride: tuple[int, int], doffset: tuple[int, int]
    ) -> _K:
        return _K(self.profile, self.pstride, self.poffset, weight, dstride, doffset, self.channels)

    def dense(self) -> torch.Tensor:
        """The whole block on the source grid: [C, C_src, *size]."""
        prof = self.profile
        if self.weight is None:
            eye = torch.eye(self.channels, dtype=prof.dtype)
            return eye[:, :, None, None] * prof[None, None]
        w = self.weight
        if self.psize == (1, 1) and self.pstride == (1, 1) and float(prof[0, 0]) == 1.0:
            return w
        if self.dsize == (1, 1):
            return w * prof[None, None]  # a 1x1 weight spread by the pool's window
        # Every tap e of w lands at pstride * e + q for every profile tap q.
        return _spread(w, prof, stride=self.pstride, dilation=(1, 1))


def _spread(
    x: torch.Tensor, kernel: torch.Tensor, *, stride: tuple[int, int], dilation: tuple[int, int]
) -> torch.Tensor:
    """``out[.., stride*e + dilation*q] += x[.., e] * kernel[q]`` for every kernel pair.

    One grouped transposed convolution over all (C_out, C_in) pairs: much faster than a
    loop of strided in-place adds on a tensor whose last two dimensions are tiny.
    """
    a, b, h, w = x.shape
    n = a * b
    weight = kernel.to(x.dtype)[None, None].expand(n, 1, *kernel.shape).contiguous()
    out = F.conv_transpose2d(
        x.reshape(1, n, h, w), weight, stride=stride, dilation=dilation, groups=n
    )
    return out.reshape(a, b, out.shape[2], out.shape[3])


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


def _dilate(w: torch.Tensor, dilation: tuple[int, int]) -> torch.Tensor:
    if dilation == (1, 1):
        return w
    dh, dw = dilation
    kh, kw = w.shape[-2], w.shape[-1]
    out = w.new_zeros(*w.shape[:-2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[..., ::dh, ::dw] = w
    return out


def _compose_dense(a: torch.Tensor, a_stride: tuple[int, int], w: torch.Tensor) -> torch.Tensor:
    """Kernel of ``w`` (taps on a grid of stride a_stride) applied after kernel ``a``."""
    (sh, sw), (kh_a, kw_a) = a_stride, (a.shape[2], a.shape[3])
    eh, ew = w.shape[2], w.shape[3]
    if kh_a == 1 and kw_a == 1 and (sh == 1 or eh == 1) and (sw == 1 or ew == 1):
        # The bottleneck fast path: W_exp[o, i] = sum_b W_kxk[o, b] W_1x1[b, i].
        return torch.einsum("obhw,bi->oihw", w, a[:, :, 0, 0])
    out = w.new_zeros(w.shape[0], a.shape[1], sh * (eh - 1) + kh_a, sw * (ew - 1) + kw_a)
    for y in range(eh):
        for x in range(ew):
            if bool((w[:, :, y, x] != 0).any()):
                out[:, :, sh * y : sh * y + kh_a, sw * x : sw * x + kw_a] += torch.einsum(
                    "ob,bihw->oihw", w[:, :, y, x], a
                )
    return out


def _conv_after(k: _K, op: LinOp) -> _K:
    """Apply a conv op after block k."""
    w = _dilate(_full_weight(op), op.dilation)
    s, top, left = op.stride, op.pad[0], op.pad[2]
    if k.weight is None:
        # Directly on the (possibly pooled) source: the conv's own kernel, no copy.
        return k.with_weight(w, s, (-top, -left))
    return k.with_weight(
        _compose_dense(k.weight, k.dstride, w),
        (k.dstride[0] * s[0], k.dstride[1] * s[1]),
        (k.doffset[0] - k.dstride[0] * top, k.doffset[1] - k.dstride[1] * left),
    )


def _pool_after(k: _K, op: LinOp) -> _K:
    """Apply an average-pool (the linear stand-in for any pool) after block k."""
    kh, kw = op.kernel
    s, top, left = op.stride, op.pad[0], op.pad[2]
    if k.weight is None:
        # Still channel-diagonal: convolve the profile with the uniform window.
        (sh, sw), (ph, pw) = k.pstride, k.psize
        prof = k.profile.new_zeros(sh * (kh - 1) + ph, sw * (kw - 1) + pw)
        for y in range(kh):
            for x in range(kw):
                prof[sh * y : sh * y + ph, sw * x : sw * x + pw] += k.profile
        prof /= kh * kw
        return _K(
            prof,
            (sh * s[0], sw * s[1]),
            (k.poffset[0] - sh * top, k.poffset[1] - sw * left),
            None,
            (1, 1),
            (0, 0),
            k.channels,
        )
    # A pool after dense weights is a depthwise conv on the stage-2 grid: its taps are
    # dstride apart.
    uniform = torch.full((kh, kw), 1.0 / (kh * kw), dtype=k.weight.dtype)
    out = _spread(k.weight, uniform, stride=(1, 1), dilation=k.dstride)
    sh, sw = k.dstride
    return k.with_weight(
        out,
        (sh * s[0], sw * s[1]),
        (k.doffset[0] - sh * top, k.doffset[1] - sw * left),
    )


def _pad_after(k: _K, op: LinOp) -> _K:
    top, left = op.pad[0], op.pad[2]
    if k.weight is None:
        return _K(
            k.profile,
            k.pstride,
            (k.poffset[0] - k.pstride[0] * top, k.poffset[1] - k.pstride[1] * left),
            None,
            (1, 1),
            (0, 0),
            k.channels,
        )
    return k.with_weight(
        k.weight, k.dstride, (k.doffset[0] - k.dstride[0] * top, k.doffset[1] - k.dstride[1] * left)
    )


def _scale_after(k: _K, scale: torch.Tensor) -> _K:
    if scale.dim() == 0:  # multiplication by a constant
        if k.weight is None:
            return _K(k.profile * scale, k.pstride, k.poffset, None, (1, 1), (0, 0), k.channels)
        return k.with_weight(k.weight * scale, k.dstride, k.doffset)
    if k.weight is None:
        diag = torch.diag(scale)[:, :, None, None]
        return k.with_weight(diag, (1, 1), (0, 0))
    return k.with_weight(scale[:, None, None, None] * k.weight, k.dstride, k.doffset)


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
                dst.copy_(part.dense())  # branches occupy disjoint rows: no read-modify-write
            else:
                dst += part.dense()
        start += n_rows
    one = torch.ones(1, 1, dtype=dtype)
    return _K(one, (1, 1), (0, 0), out, live[0].stride, lo, c_src)


def compose(graph: TracedGraph, src: str, dst: str) -> Block:
    """Expanded weights src -> dst by composing kernels along the graph (fast path)."""
    c_src = graph.channels(src)
    env: dict[str, _K] = {src: _K(torch.ones(1, 1), (1, 1), (0, 0), None, (1, 1), (0, 0), c_src)}
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
            env[n] = _scale_after(k, op.scale)
        elif op.kind == "conv":
            env[n] = _conv_after(k, op)
        elif op.kind == "avgpool":
            env[n] = _pool_after(k, op)
        elif op.kind == "pad":
            env[n] = _pad_after(k, op)
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
            y = t * (op.scale if op.scale.dim() == 0 else op.scale[None, :, None, None])
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
