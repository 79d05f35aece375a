"""`banded L horizontal | vertical` -- weight banding in all kernels into a layer.

For every kernel w (h x w) into layer L (the layer's own conv weights, every
(output, input) channel pair): `SS_total = sum (w - mean w)^2` and, for horizontal
bands, `SS_rows = w_cols * sum_r (rowmean_r - mean w)^2` (columns for vertical).
Statistic: `banding = sum SS_rows / sum SS_total` over all kernels, the share of
kernel variance explained by row (column) means. Random kernels give
`(h - 1) / (h w - 1)` (1/6 for 5x5); perfectly banded ones give 1. Default
`banding >= 0.5`. A layer with 1-row (1-column) kernels is an error.
"""

from __future__ import annotations

import torch

from circuitdsl.check.common import CircuitIndex, Outcome, Unmeasurable, each, fmt, payload_of
from circuitdsl.check.context import Context
from circuitdsl.language.ir import Claim, Feature
from circuitdsl.language.kinds import BandingClaim


def edges(claim: Claim, circuit: CircuitIndex) -> list[tuple[Feature, Feature]]:
    """No feature edges: banding reads a layer's own kernels."""
    return []


def layer_kernels(ctx: Context, layer: str) -> torch.Tensor:
    """All kernels into `layer`, [C_out, C_in, h, w], from whatever the model exposes.

    An object with `input_kernels(layer)` answers directly. Otherwise, through the
    adapter's public API: the conv that makes `layer` (the layer itself, or for an
    activation the nearest earlier conv layer upstream of it), and its weights from
    the nearest earlier layer upstream of that conv -- the conv's own kernel.
    """
    stored = ctx.bound.input_kernels(layer)
    if stored is not None:
        return stored
    adapter = ctx.adapter
    if adapter is None:
        raise Unmeasurable("the model does not expose its layers, so banding cannot be measured")
    info = adapter.layer(layer)
    order = [li.name for li in adapter.layers()]
    kinds = {li.name: li.kind for li in adapter.layers()}
    conv = None
    if info.kind == "conv":
        conv = layer
    elif info.kind == "relu":
        for name in reversed(order[: order.index(layer)]):
            if kinds[name] == "conv" and adapter.is_upstream(name, layer):
                conv = name
                break
    if conv is None:
        raise Unmeasurable(
            f"layer {layer} is a {info.kind} layer, not a convolution (or its activation)"
        )
    for name in reversed(order[: order.index(conv)]):
        if adapter.is_upstream(name, conv):
            return adapter.weights(name, conv)
    raise Unmeasurable(f"the convolution {conv} has no input layer to read kernels from")


def banding(kernels: torch.Tensor, direction: str) -> float:
    """Share of kernel variance explained by row (horizontal) or column (vertical) means."""
    k = kernels.detach().to(torch.float64).flatten(0, -3)  # [n, h, w]
    axis = 2 if direction == "horizontal" else 1  # average along a row -> row means
    if k.shape[1] * k.shape[2] <= 1 or k.shape[3 - axis] == 1:
        raise Unmeasurable(f"{k.shape[1]}x{k.shape[2]} kernels have no {direction} bands")
    centred = k - k.mean(dim=(1, 2), keepdim=True)
    ss_total = centred.pow(2).sum()
    means = centred.mean(dim=axis, keepdim=True)
    ss_bands = (means.pow(2) * k.shape[axis]).sum()
    if ss_total <= 0:
        raise Unmeasurable("the kernels are constant; banding is undefined")
    return float(ss_bands / ss_total)


def measure(claims: list[Claim], ctx: Context) -> list[Outcome]:
    """The banding share for each claim's layer."""
    return each(claims, lambda c: _measure_all([c], ctx)[0])


def _measure_all(claims: list[Claim], ctx: Context) -> list[Outcome]:
    out = []
    for c in claims:
        p = payload_of(c, BandingClaim)
        layer, direction = p.layer, p.direction
        if direction not in ("horizontal", "vertical"):
            raise Unmeasurable(f"unknown banding direction `{direction}`")
        # several claims on one layer read its kernels and measure them once
        key = ("banding", layer, direction)
        if key not in ctx.memo:
            k = layer_kernels(ctx, layer)
            if k.dim() != 4:
                raise Unmeasurable(f"layer {layer} kernels have shape {tuple(k.shape)}")
            ctx.memo[key] = (k, banding(k, direction))
        k, b = ctx.memo[key]
        h, w = k.shape[-2:]
        mean = {f"mean into {layer}": k.detach().float().mean(dim=(0, 1)).tolist()}
        than = p.than
        if than is not None:
            other_key = ("banding", layer, str(than))
            if other_key not in ctx.memo:
                ctx.memo[other_key] = (k, banding(k, str(than)))
            o = ctx.memo[other_key][1]
            ratio = b / o if o > 0 else float("inf")
            detail = (
                f"{direction} bands explain {fmt(b)} of the kernel variance into {layer}, "
                f"{than} bands {fmt(o)}: {fmt(ratio)}x"
            )
            out.append(Outcome({"ratio": ratio, "banding": b, "other": o}, detail, mean))
            continue
        chance = ((h if direction == "horizontal" else w) - 1) / (h * w - 1)
        detail = (
            f"{direction} bands explain {fmt(b)} of the variance of {k.shape[0] * k.shape[1]} "
            f"{h}x{w} kernels into {layer} (random kernels: {fmt(chance)})"
        )
        out.append(Outcome({"banding": b, "chance": chance}, detail, mean))
    return out
