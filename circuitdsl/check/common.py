"""Shared machinery of the checker: per-layer-pair data, regions, verdicts.

Conventions used by every claim kind (docs/claims.md states them for users):

* A weight block is a tensor `W[C_dst, C_src, kh, kw]` (PyTorch's conv layout, which
  is cross-correlation: kernel row 0 multiplies the input row *above* the output
  position, so "top" means the top rows of the kernel as printed).
* A feature is a direction `sum_j c_j * channel_j` of its layer; the kernel between a
  source direction `s` and a target direction `t` is `sum_j sum_k t_j s_k W[j, k]`.
* Statistics are scale-invariant: a connection is measured relative to the
  distribution of *all* inputs into the same target (every channel of the source
  layer), so numbers compare across layers and models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from circuitdsl.language.diagnostics import Unmeasurable as Unmeasurable  # re-exported
from circuitdsl.language.ir import Circuit, Claim, Feature, Threshold
from circuitdsl.language.kinds import Payload, Region
from circuitdsl.report.model import Expected

_P = TypeVar("_P", bound=Payload)


@dataclass(slots=True)
class Outcome:
    """What a claim handler returns: numbers, a sentence, the kernels it looked at."""

    measured: dict[str, float]
    detail: str
    kernels: dict[str, list[list[float]]] = field(default_factory=dict)
    # Thresholds implied by the claim itself (e.g. `rank <= k`) when the spec gave none.
    implied: tuple[Threshold, ...] = ()
    status: str | None = None  # set only to force a status (e.g. "error")
    # The null distribution of the claim's statistics: the same statistics computed
    # for every source channel of the layer pair into the same target (for a direction
    # source, random directions of as many channels with the same coefficients). The
    # engine turns it into `percentile` and `base_rate` (docs/claims.md, "The null").
    null: dict[str, torch.Tensor] | None = None


def unmeasurable(exc: Exception) -> Outcome:
    """The outcome of a claim that cannot be measured: status `error`, the reason."""
    return Outcome({}, str(exc), status="error")


def payload_of(claim: Claim, cls: type[_P]) -> _P:
    """The claim's payload as `cls` (a handler gets only the kinds it is registered for;
    a hand-built claim that is not one is unmeasurable, not a crash)."""
    p = claim.payload
    if not isinstance(p, cls):
        raise Unmeasurable(f"a {claim.kind} claim carries a {type(p).__name__}, not {cls.__name__}")
    return p


def each(claims: Sequence[Claim], fn: Any) -> list[Outcome]:
    """Apply a one-claim measure to each claim; an Unmeasurable claim becomes an error."""
    out = []
    for c in claims:
        try:
            out.append(fn(c))
        except Unmeasurable as exc:
            out.append(unmeasurable(exc))
    return out


_RULES_CACHE: dict[tuple[Any, ...], tuple[dict[str, Threshold], dict[str, Expected]]] = {}


def _rules(claim: Claim, outcome: Outcome) -> tuple[dict[str, Threshold], dict[str, Expected]]:
    # thousands of claims share a handful of threshold sets: build each one once
    key = (claim.thresholds, outcome.implied, claim.payload.is_negated())
    hit = _RULES_CACHE.get(key)
    if hit is None:
        # the claim's own thresholds first (the first is the primary statistic, the one
        # `percentile` is about), then implied ones for statistics it leaves open
        by_stat = {t.stat: t for t in claim.thresholds}
        for t in outcome.implied:
            by_stat.setdefault(t.stat, t)
        negated = claim.payload.is_negated()  # `not F within L`, `not banded D`
        hit = (by_stat, {s: Expected(t, negated) for s, t in by_stat.items()})
        if len(_RULES_CACHE) < 10_000:
            _RULES_CACHE[key] = hit
    return hit


_NP_OPS = {
    ">=": np.greater_equal,
    "<=": np.less_equal,
    ">": np.greater,
    "<": np.less,
    "==": np.equal,
    "!=": np.not_equal,
}


def _holds_all(t: Threshold, values: np.ndarray) -> np.ndarray:
    """`t.holds` elementwise over an array of null values (NaN never holds)."""
    with np.errstate(invalid="ignore"):
        out: np.ndarray = _NP_OPS[t.op](values, t.value)
    return out & ~np.isnan(values) if t.op == "!=" else out


def _row_percentiles(w: np.ndarray) -> np.ndarray:
    """``[k, n]``: each value's percentile within its own row (higher is better).

    A defined value's percentile counts the defined values of its row that it matches
    or beats, plus the row's undefined (NaN) ones, which every defined value beats; an
    undefined value gets the share of undefined values. Sorting makes this O(n log n)
    per row (every null value of every claim gets a percentile).
    """
    nan = np.isnan(w)
    n = w.shape[1]
    filled = torch.from_numpy(np.where(nan, np.inf, w))
    ordered, _ = filled.sort(dim=1)
    below = torch.searchsorted(ordered, filled, right=True).numpy()  # defined values <= it
    nans = nan.sum(axis=1, keepdims=True)
    pct: np.ndarray = np.where(nan, 100.0 * nans / n, 100.0 * (below + nans) / n)
    return pct


def null_summaries(claims: Sequence[Claim], outcomes: Sequence[Outcome]) -> list[dict[str, float]]:
    """`percentile` and `base_rate` of each claim whose handler reported a null
    distribution (empty for the others).

    `percentile` = 100 x the share of the null values that the measured primary
    statistic (the first one with a threshold) matches or beats in the threshold's
    direction (100 = no input of the target does better; an undefined null value counts
    as beaten); `base_rate` = the share of the null for which every threshold holds,
    i.e. how often the claim would pass for a source drawn at random among the
    target's inputs. Empty without a null, or when a threshold's statistic has no null
    values.

    Thousands of claims each have a null of a few hundred values: the claims with the
    same thresholds, the same null statistics and the same null size are stacked into
    one ``[claims, n]`` array per statistic, so the work is a few array ops per group
    instead of a few per claim.
    """
    out: list[dict[str, float]] = [{} for _ in claims]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for j, (claim, outcome) in enumerate(zip(claims, outcomes, strict=True)):
        null = outcome.null
        if not null:
            continue
        by_stat, _ = _rules(claim, outcome)
        primary = next((s for s in by_stat if s in null), None)
        if primary is None or primary not in outcome.measured:
            continue
        n = len(null[primary])
        key = (claim.thresholds, outcome.implied, primary, n, tuple(null))
        groups.setdefault(key, []).append(j)
    for (_, _, primary, n, stats), members in groups.items():
        first = members[0]
        by_stat, _ = _rules(claims[first], outcomes[first])
        arrays = {
            s: torch.stack([outcomes[j].null[s].detach().cpu() for j in members])  # type: ignore[index]
            .to(torch.float64)
            .numpy()
            for s in stats
        }
        t = by_stat[primary]
        higher = t.op in (">=", ">")
        nv = arrays[primary]  # [k, n]
        v = np.array([outcomes[j].measured[primary] for j in members], dtype=np.float64)
        if n:
            # the claim's own source is in its null, computed by another float32
            # reduction: compare within a rounding tolerance so it never "beats" itself
            with np.errstate(invalid="ignore"):
                finite_abs = np.where(np.isfinite(nv), np.abs(nv), 0.0)
                scale = np.maximum(np.abs(v), finite_abs.max(axis=1))
                tol = (1e-5 * scale)[:, None]
                vv = v[:, None]
                beaten = ((nv <= vv + tol) if higher else (nv >= vv - tol)) | np.isnan(nv)
            percentile = 100.0 * beaten.mean(axis=1)
            for row, j in enumerate(members):
                if v[row] == v[row]:
                    out[j]["percentile"] = float(percentile[row])
        ok = np.ones(nv.shape, dtype=bool)
        evaluable = True
        for s, th in by_stat.items():
            if s == "percentile":
                ok &= _holds_all(th, _row_percentiles(nv if higher else -nv))
            elif s in arrays:
                ok &= _holds_all(th, arrays[s])
            elif s != "base_rate":
                evaluable = False  # a threshold the null cannot evaluate: no base rate
                break
        if evaluable and n:
            base = ok.mean(axis=1)
            for row, j in enumerate(members):
                out[j]["base_rate"] = float(base[row])
    return out


def verdict(claim: Claim, outcome: Outcome) -> tuple[str, dict[str, Expected], str]:
    """Status, expected-text and detail of a claim from its measured statistics.

    A claim passes when every threshold (the claim's own, else the implied ones) holds;
    a threshold on a statistic the handler did not measure is an error, not a pass.
    """
    by_stat, shared = _rules(claim, outcome)
    expected = dict(shared)
    if outcome.status is not None:
        return outcome.status, expected, outcome.detail
    if not by_stat:
        return "error", expected, "the claim has no threshold to compare against"
    measured = outcome.measured
    for s in by_stat:
        if s not in measured:
            missing = [m for m in by_stat if m not in measured]
            return (
                "error",
                expected,
                f"statistic {', '.join(missing)} is not measured for a {claim.kind} claim",
            )
    negated = claim.payload.is_negated()  # `not F within L`, `not banded D`
    for s, t in by_stat.items():
        value = measured[s]
        if value != value:  # NaN: the statistic is undefined (so is its negation)
            return "fail", expected, outcome.detail + f" ({s} is undefined)"
        if not t.holds(value):
            return ("pass" if negated else "fail"), expected, outcome.detail
    return ("fail" if negated else "pass"), expected, outcome.detail


def feature_coeffs(feature: Feature) -> list[tuple[int, float]]:
    """(channel, coefficient) pairs of a feature."""
    return list(zip(feature.channels, feature.coefficients, strict=True))


def fmt(x: float) -> str:
    """A number for a detail sentence."""
    return f"{x:.3g}"


# ---- regions -------------------------------------------------------------------------


def region_mask(region: Region, kh: int, kw: int) -> torch.Tensor:
    """Boolean [kh, kw] mask of a named or explicit region of a kernel.

    Named regions are relative to the centre line of the kernel: `top` = rows strictly
    above the middle, `bottom` strictly below, `left`/`right` likewise for columns,
    corners their intersections, `center` = the cells within half a cell of the centre
    (the middle cell for odd sizes). Explicit regions are `rows r0..r1 cols c0..c1`
    (inclusive). Raises Unmeasurable where the region is empty for this kernel size.
    """
    rows = torch.arange(kh, dtype=torch.float32)[:, None].expand(kh, kw)
    cols = torch.arange(kw, dtype=torch.float32)[None, :].expand(kh, kw)
    mr, mc = (kh - 1) / 2, (kw - 1) / 2
    if region.name is not None:
        name = region.name
        if kh == 1 and kw == 1:
            raise Unmeasurable(f"a 1x1 kernel has no `{name}` region (it has no spatial extent)")
        top, bottom = rows < mr, rows > mr
        left, right = cols < mc, cols > mc
        mid_r, mid_c = (rows - mr).abs() <= 0.5, (cols - mc).abs() <= 0.5
        masks = {
            "top": top,
            "bottom": bottom,
            "left": left,
            "right": right,
            "center": mid_r & mid_c,
            "top_left": top & left,
            "top_right": top & right,
            "bottom_left": bottom & left,
            "bottom_right": bottom & right,
        }
        if name not in masks:
            raise Unmeasurable(f"unknown region `{name}`; known: {', '.join(masks)}")
        mask = masks[name]
        label = name
    else:
        assert region.rows is not None
        r0, r1 = (int(v) for v in region.rows)
        # `rows r0..r1` alone spans every column
        c0, c1 = (int(v) for v in region.cols or (0, kw - 1))
        if not (0 <= r0 <= r1 < kh and 0 <= c0 <= c1 < kw):
            raise Unmeasurable(
                f"region rows {r0}..{r1} cols {c0}..{c1} lies outside the {kh}x{kw} kernel"
            )
        mask = (rows >= r0) & (rows <= r1) & (cols >= c0) & (cols <= c1)
        label = f"rows {r0}..{r1} cols {c0}..{c1}"
    if not bool(mask.any()):
        raise Unmeasurable(f"region `{label}` is empty in a {kh}x{kw} kernel")
    return mask


def region_label(region: Region) -> str:
    """How a region reads in a sentence."""
    if region.name is not None:
        return region.name.replace("_", " ")
    assert region.rows is not None
    r0, r1 = region.rows
    if region.cols is None:
        return f"rows {r0}..{r1}"
    c0, c1 = region.cols
    return f"rows {r0}..{r1} cols {c0}..{c1}"


def embed_mask(mask: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Place a centred effective-size mask into the full [kh, kw] block kernel."""
    eh, ew = mask.shape
    out = torch.zeros(kh, kw, dtype=torch.bool)
    r0, c0 = (kh - eh) // 2, (kw - ew) // 2
    out[r0 : r0 + eh, c0 : c0 + ew] = mask
    return out


def crop(k: torch.Tensor, eh: int, ew: int) -> torch.Tensor:
    """The centred [eh, ew] part of the last two dims of `k`."""
    kh, kw = k.shape[-2:]
    r0, c0 = (kh - eh) // 2, (kw - ew) // 2
    return k[..., r0 : r0 + eh, c0 : c0 + ew]


# ---- per-layer-pair data ---------------------------------------------------------------


class PairData:
    """Everything measured once for one (source layer, target layer) pair.

    `inputs[t]` is the stack of kernels from every source-layer channel into target
    feature `t` ([n_targets, C_src, kh, kw]); reductions over it (totals, norms,
    regional sums) are computed lazily, once, with tensor ops for all targets.
    """

    def __init__(self, block: torch.Tensor, targets: Sequence[Feature]) -> None:
        if block.dim() != 4:
            raise Unmeasurable(f"weight block has shape {tuple(block.shape)}, expected 4-D")
        self.block = block.detach().to(torch.float32)
        self.c_dst, self.c_src, self.kh, self.kw = self.block.shape
        self.target_index: dict[str, int] = {}
        for t in targets:
            self.target_index.setdefault(t.name, len(self.target_index))
        feats = {t.name: t for t in targets}
        ordered = [feats[n] for n in self.target_index]
        for t in ordered:  # distinct targets only
            for ch in t.channels:
                if not 0 <= ch < self.c_dst:
                    raise Unmeasurable(
                        f"{t.ref}: channel {ch} out of range (layer has {self.c_dst})"
                    )
        if all(t.is_channel for t in ordered):
            idx = torch.tensor([t.channels[0] for t in ordered], dtype=torch.long)
            self.inputs = self.block.index_select(0, idx)
        else:
            coeff = torch.zeros(len(ordered), self.c_dst)
            for i, t in enumerate(ordered):
                for ch, c in feature_coeffs(t):
                    coeff[i, ch] += c
            self.inputs = torch.einsum("td,dchw->tchw", coeff, self.block)
        self._cache: dict[Any, torch.Tensor] = {}
        self._eff: list[tuple[int, int]] | None = None

    @property
    def eff_size(self) -> list[tuple[int, int]]:
        """Per target, the centred kernel size that holds all its nonzero weights.

        Adapters may pad the kernels of a mixed layer's branches to one common size
        (1x1 and 3x3 inside 5x5); region and shape claims must use the true size, so
        that e.g. a region claim on a 1x1-branch unit is reported as unmeasurable.
        """
        if self._eff is None:
            self._eff = self._effective_sizes()
        return self._eff

    def _effective_sizes(self) -> list[tuple[int, int]]:
        t = self.inputs.shape[0]
        if self.kh % 2 == 0 or self.kw % 2 == 0 or t == 0:
            return [(self.kh, self.kw)] * t
        # Which positions carry any weight: a random mix of all sources is nonzero
        # exactly where some source is (structural zeros are exact; a continuous random
        # mix of nonzero weights is zero with probability 0). One pass over the data
        # instead of an elementwise test.
        g = torch.Generator().manual_seed(0)
        r = torch.rand(self.c_src, generator=g, dtype=self.inputs.dtype) + 0.5
        nz = (r @ self.inputs.flatten(2)).view(t, self.kh, self.kw).ne(0)
        rdist = (torch.arange(self.kh) - (self.kh - 1) // 2).abs()
        cdist = (torch.arange(self.kw) - (self.kw - 1) // 2).abs()
        rr = torch.where(nz.any(dim=2), rdist, -1).amax(dim=1)
        cc = torch.where(nz.any(dim=1), cdist, -1).amax(dim=1)
        out = []
        for r_, c_ in zip(rr.tolist(), cc.tolist(), strict=True):
            if r_ < 0:  # an all-zero target: keep the block size; totals flag it
                out.append((self.kh, self.kw))
            else:
                # keep kernels square when the block is: a 3x3 branch with a zero
                # column still reads as 3x3
                if self.kh == self.kw:
                    r_ = c_ = max(r_, c_)
                out.append((2 * r_ + 1, 2 * c_ + 1))
        return out

    # Reductions over all inputs into each target, computed once and cached. Linear
    # ones (totals, regional sums) for several masks share one matmul: the weights
    # are read once for all of them.
    def totals(self) -> torch.Tensor:
        """[T, C_src] signed weight sums."""
        if "totals" not in self._cache:  # asked once per claim: skip building the mask key
            whole = torch.ones(self.kh, self.kw, dtype=torch.bool)
            self._cache["totals"] = self.masked_totals_many([whole])[0]
        return self._cache["totals"]

    def totals_z(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[T, C_src] weight sums, their z (in RMS over the target's inputs) and |z|: the
        null of a sign claim is one row of each, shared by every claim into the target."""
        if "totals_z" not in self._cache:
            totals = self.totals()
            zs = totals / totals.pow(2).mean(dim=1, keepdim=True).sqrt()
            self._cache["totals_z"] = torch.stack([totals, zs, zs.abs()])
        both = self._cache["totals_z"]
        return both[0], both[1], both[2]

    def norms(self) -> torch.Tensor:
        """[T, C_src] kernel L2 norms."""
        if "norm" not in self._cache:
            self._cache["norm"] = torch.linalg.vector_norm(self.inputs.flatten(2), dim=2)
        return self._cache["norm"]

    @staticmethod
    def _key(mask: torch.Tensor) -> tuple[Any, ...]:
        return ("mask", mask.numpy().tobytes(), tuple(mask.shape))

    def masked_totals_many(self, masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """[T, C_src] weight sums over each [kh, kw] mask, uncached ones in one matmul."""
        todo = {self._key(m): m for m in masks if self._key(m) not in self._cache}
        if todo:
            cols = torch.stack([m.flatten().to(self.inputs.dtype) for m in todo.values()], 1)
            t, c = self.inputs.shape[:2]
            sums = (self.inputs.reshape(t * c, -1) @ cols).view(t, c, -1)
            for n, key in enumerate(todo):
                self._cache[key] = sums[:, :, n]
        return [self._cache[self._key(m)] for m in masks]

    def masked_totals(self, mask: torch.Tensor) -> torch.Tensor:
        """[T, C_src] weight sums over a [kh, kw] mask of the full block kernel."""
        return self.masked_totals_many([mask])[0]

    def masked_rms_many(self, masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """[T] RMS over source channels of the masked weight sums, for each mask."""
        keys = [("rms", *self._key(m)) for m in masks]
        todo = [m for m, k in zip(masks, keys, strict=True) if k not in self._cache]
        for m, tot in zip(todo, self.masked_totals_many(todo), strict=True):
            key = ("rms", *self._key(m))
            self._cache[key] = tot.pow(2).mean(dim=1).sqrt()
        return [self._cache[k] for k in keys]

    def masked_rms(self, mask: torch.Tensor) -> torch.Tensor:
        """[T] RMS over source channels of the weight sums over a mask, per target."""
        return self.masked_rms_many([mask])[0]

    def kernels(self, edges: Sequence[tuple[int, Feature]]) -> torch.Tensor:
        """[n, kh, kw] kernels for (target index, source feature) edges, gathered at once."""
        # per distinct source: its channel if it is a plain channel, else None
        chan: dict[str, int | None] = {}
        for _, s in edges:
            if s.name not in chan:
                for ch in s.channels:
                    if not 0 <= ch < self.c_src:
                        raise Unmeasurable(
                            f"{s.ref}: channel {ch} out of range (layer has {self.c_src})"
                        )
                chan[s.name] = s.channels[0] if s.is_channel else None
        src_ch = [chan[s.name] for _, s in edges]
        if all(c is not None for c in src_ch):
            t_idx = torch.tensor([t for t, _ in edges], dtype=torch.long)
            return self.inputs[t_idx, torch.tensor(src_ch, dtype=torch.long)]
        out = torch.empty(len(edges), self.kh, self.kw)
        for i, ((t, s), c) in enumerate(zip(edges, src_ch, strict=True)):
            if c is not None:
                out[i] = self.inputs[t, c]
            else:
                chans = torch.tensor(s.channels, dtype=torch.long)
                co = torch.tensor(s.coefficients, dtype=torch.float32)
                out[i] = torch.einsum("c,chw->hw", co, self.inputs[t, chans])
        return out


def pearson(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pearson correlation along the last two dims (optionally within `mask`); NaN if flat."""
    a = a.flatten(-2)
    b = b.flatten(-2)
    if mask is not None:
        m = mask.flatten()
        a, b = a[..., m], b[..., m]
    n = a.shape[-1]
    scale_a = a.abs().amax(dim=-1) * n**0.5
    scale_b = b.abs().amax(dim=-1) * n**0.5
    a = a - a.mean(dim=-1, keepdim=True)
    b = b - b.mean(dim=-1, keepdim=True)
    na, nb = a.norm(dim=-1), b.norm(dim=-1)
    # a constant input leaves only float32 rounding after centring (~1e-8 of its
    # size): that is no variation, and the correlation is undefined, not ~0
    flat = (na <= 1e-5 * scale_a) | (nb <= 1e-5 * scale_b) | (na * nb <= 1e-30)
    return torch.where(flat, torch.nan, (a * b).sum(dim=-1) / (na * nb).clamp_min(1e-30))


class CircuitIndex:
    """A circuit with its features and families indexed by name (lookups in O(1)).

    `Circuit.feature` rebuilds its index on every call; specs with 10,000 claims need
    one index built once.
    """

    def __init__(self, circuit: Circuit) -> None:
        self.circuit = circuit
        self.features = {f.name: f for f in circuit.features}
        self.families = {f.name: f for f in circuit.families}
        self._family_directions: dict[str, Feature] = {}

    def feature(self, name: str) -> Feature:
        """The feature called `name`, or a family as a whole; Unmeasurable if neither.

        A family used where a feature is expected stands for the family as a whole: the
        direction that sums its members (docs/claims.md, "Conventions").
        """
        f = self.features.get(name)
        if f is not None:
            return f
        fam = self.families.get(name)
        if fam is None:
            raise Unmeasurable(f"`{name}` is not a feature of the circuit")
        if name not in self._family_directions:
            chans: dict[int, float] = {}
            for m in self.members(name):
                for ch, c in zip(m.channels, m.coefficients, strict=True):
                    chans[ch] = chans.get(ch, 0.0) + c
            self._family_directions[name] = Feature(
                name, fam.layer, tuple(chans), tuple(chans.values()), label=fam.label
            )
        return self._family_directions[name]

    def members(self, name: str) -> list[Feature]:
        """The member features of family `name`."""
        fam = self.families.get(name)
        if fam is None:
            raise Unmeasurable(f"`{name}` is not a family of the circuit")
        return [self.feature(m) for m in fam.members]


def nodes_of(index: CircuitIndex | Circuit, name: str) -> list[Feature]:
    """The features a node name stands for (a feature, or every member of a family)."""
    if not isinstance(index, CircuitIndex):
        index = CircuitIndex(index)
    if name in index.features:
        return [index.features[name]]
    if name in index.families:
        return index.members(name)
    raise Unmeasurable(f"`{name}` is neither a feature nor a family of the circuit")
