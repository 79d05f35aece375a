"""The checker's per-run state: weight blocks per layer pair and per-edge statistics.

The engine first collects every (source feature, target feature) edge that any claim
needs, groups the edges by (source layer, target layer), fetches each block once and
gathers all kernels of a group with one indexing op. Per-edge statistics (totals, z,
norms, ranks) are then computed for the whole group with tensor ops, on first use,
and handlers read them as plain Python numbers.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch

from circuitdsl.check.common import CircuitIndex, PairData, Unmeasurable, crop
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.language.ir import Circuit, Feature
from circuitdsl.models.base import ModelAdapter
from circuitdsl.models.bind import Bound


class BoundLike(Protocol):
    """What the checker needs from a bound circuit (see `circuitdsl.models.bind.BoundCircuit`)."""

    def block(self, src_layer: str, dst_layer: str) -> torch.Tensor: ...


def describe_exception(exc: BaseException) -> str:
    """One line for a report's `detail`, whatever went wrong."""
    if isinstance(exc, DiagnosticError):
        return "; ".join(d.message + (f" ({d.help})" if d.help else "") for d in exc.diagnostics)
    if isinstance(exc, Unmeasurable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def fetch_block(bound: Bound, src: str, dst: str) -> torch.Tensor:
    """The [C_dst, C_src, kh, kw] weights from a `Bound` (a `BoundCircuit`, a `TensorBound`)."""
    w = bound.block(src, dst)
    if not isinstance(w, torch.Tensor):
        raise Unmeasurable(f"the weights {src} -> {dst} are a {type(w).__name__}, not a tensor")
    return w


class Group(PairData):
    """A layer pair's block plus the edges the claims need from it."""

    def __init__(
        self, key: tuple[str, str], block: torch.Tensor, edges: Sequence[tuple[Feature, Feature]]
    ) -> None:
        super().__init__(block, [dst for _, dst in edges])
        self.key = key
        self.edges = list(edges)
        self.position = {(s.name, d.name): i for i, (s, d) in enumerate(self.edges)}
        self.t_idx = torch.tensor([self.target_index[d.name] for _, d in self.edges])
        self.kern = self.kernels([(self.target_index[d.name], s) for s, d in self.edges])
        self._stats: dict[str, list[Any]] = {}
        self._rank_cache: dict[str, dict[int, tuple[int, float]]] = {}
        self._klists: list[list[list[float]]] | None = None
        self._null_draws: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    #: random directions drawn for the null of a direction source (a channel source's
    #: null is every channel of the source layer, exactly)
    NULL_DRAWS = 256

    def null_draws(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """([N, k] channel indices, [k] coefficients) of edge i's null sources.

        None for a channel source (its null is every source channel). A direction of k
        channels is compared with `NULL_DRAWS` directions of k distinct random channels
        with the same coefficients, drawn with a fixed seed (reports are reproducible).
        """
        s = self.edges[i][0]
        if s.is_channel:
            return None
        key = (s.channels, s.coefficients)
        if key not in self._null_draws:
            k = len(s.channels)
            g = torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))
            idx = torch.argsort(torch.rand(self.NULL_DRAWS, self.c_src, generator=g), dim=1)
            co = torch.tensor(s.coefficients, dtype=self.inputs.dtype)
            self._null_draws[key] = (idx[:, :k], co)
        return self._null_draws[key]

    def null_values(self, i: int, row: torch.Tensor) -> torch.Tensor:
        """The null of a *linear* per-input statistic (`row`: its value for each source channel)."""
        draws = self.null_draws(i)
        if draws is None:
            return row
        idx, co = draws
        return (row[idx] * co.to(row.dtype)).sum(dim=-1)

    #: claims per batch of `channel_null_batches`: [128, C_src, kh, kw] floats at most
    NULL_CHUNK = 128

    def channel_null_batches(
        self, edges: Sequence[int]
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """The nulls of the edges whose source is a channel, in batches: (positions in
        `edges`, ``[k, C_src, kh, kw]`` kernels into each one's target from every source
        channel), `NULL_CHUNK` edges at a time. A direction source's drawn null is not
        here (`null_kernels`)."""
        picked = [p for p, i in enumerate(edges) if self.null_draws(i) is None]
        for lo in range(0, len(picked), self.NULL_CHUNK):
            chunk = picked[lo : lo + self.NULL_CHUNK]
            rows = self.t_idx[torch.tensor([edges[p] for p in chunk])]
            yield chunk, self.inputs[rows]

    def null_kernels(self, i: int) -> torch.Tensor:
        """[N, kh, kw]: the kernels into edge i's target from each null source."""
        inputs = self.inputs[int(self.t_idx[i])]
        draws = self.null_draws(i)
        if draws is None:
            return inputs
        idx, co = draws
        return torch.einsum("nk,nkhw->nhw", co.expand(idx.shape[0], -1), inputs[idx])

    def stat(self, name: str) -> list[Any]:
        """A per-edge statistic as a Python list (computed for all edges at once)."""
        if name not in self._stats:
            self._stats[name] = self._compute(name)
        return self._stats[name]

    def _compute(self, name: str) -> list[Any]:
        k = self.kern
        if name == "total":
            return list(k.sum(dim=(1, 2)).tolist())
        if name == "rms_total":
            return list(self.totals().pow(2).mean(dim=1).sqrt()[self.t_idx].tolist())
        if name == "norm":
            return list(k.flatten(1).norm(dim=1).tolist())
        if name == "eff":
            return [self.eff_size[t] for t in self.t_idx.tolist()]
        raise KeyError(name)

    def ranks(self, positions: Sequence[int], polarity: str) -> dict[int, tuple[int, float]]:
        """(rank, strength) of the sources of the given edges among all inputs.

        Rank 1 = strongest. Strength is the kernel norm (`any`), the total
        (`excitatory`) or minus the total (`inhibitory`), reported relative to its RMS
        over all inputs (NaN when every input is zero). Computed only for the edges
        asked for, all at once; norms only for their targets.
        """
        cache = self._rank_cache.setdefault(polarity, {})
        todo = sorted({p for p in positions if p not in cache})
        if todo:
            pos = torch.tensor(todo)
            k = self.kern[pos]
            if polarity == "any":
                uniq, inv = torch.unique(self.t_idx[pos], return_inverse=True)
                norms = torch.linalg.vector_norm(
                    self.inputs.index_select(0, uniq).flatten(2), dim=2
                )
                row, val = norms[inv], torch.linalg.vector_norm(k.flatten(1), dim=1)
            else:
                sign = 1.0 if polarity == "excitatory" else -1.0
                row, val = sign * self.totals()[self.t_idx[pos]], sign * k.sum(dim=(1, 2))
            # a channel source takes its value from the row it is ranked in, so that
            # it is never compared with a differently rounded copy of itself
            srcs = [self.edges[p][0] for p in todo]
            chan = torch.tensor([s.is_channel for s in srcs], dtype=torch.bool)
            if bool(chan.any()):
                idx = torch.tensor([s.channels[0] if s.is_channel else 0 for s in srcs])
                val = torch.where(chan, row.gather(1, idx[:, None])[:, 0], val)
            rank = (row > val[:, None]).sum(dim=1) + 1
            rms = row.pow(2).mean(dim=1).sqrt()
            strength = torch.where(rms > 0, val / rms, torch.nan)
            for p, r, s in zip(todo, rank.tolist(), strength.tolist(), strict=True):
                cache[p] = (int(r), float(s))
        return cache

    def kernel_lists(self) -> list[list[list[float]]]:
        """Each edge's kernel cropped to its target's effective size, as nested lists."""
        if self._klists is None:
            full = self.kern.tolist()
            out = []
            for rows, (eh, ew) in zip(full, self.stat("eff"), strict=True):
                r0, c0 = (self.kh - eh) // 2, (self.kw - ew) // 2
                out.append([r[c0 : c0 + ew] for r in rows[r0 : r0 + eh]])
            self._klists = out
        return self._klists

    def kernel(self, i: int) -> torch.Tensor:
        """Edge i's kernel cropped to its target's effective size."""
        eh, ew = self.stat("eff")[i]
        return crop(self.kern[i], eh, ew)


def _with_threads(n: int | None, fn: Any, *args: Any) -> Any:
    """Call fn(*args) with torch's intra-op threads set to n (None: unchanged)."""
    if n is None or n == torch.get_num_threads():
        return fn(*args)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(old)


def _range_error(f: Feature, size: int) -> str | None:
    bad = [ch for ch in f.channels if not 0 <= ch < size]
    if bad:
        return f"{f.ref}: channel {bad[0]} is out of range (layer {f.layer} has {size} channels)"
    return None


class Context:
    """Handed to every claim handler: the circuit, the bound model, the edge groups."""

    def __init__(self, circuit: Circuit, bound: Bound) -> None:
        self.circuit = circuit
        self.index = CircuitIndex(circuit)
        self.bound = bound
        self.groups: dict[tuple[str, str], Group] = {}
        self.group_errors: dict[tuple[str, str], str] = {}
        self.edge_errors: dict[tuple[str, str], str] = {}
        self.memo: dict[Any, Any] = {}  # per-run results handlers share between claims
        self._where: dict[tuple[str, str], tuple[str, str]] = {}
        self.device = "cpu"  # where activation claims run the model
        self.caller_threads: int | None = None  # torch threads outside the checker

    @property
    def adapter(self) -> ModelAdapter | None:
        """The model adapter behind the bound circuit (None for blocks in memory)."""
        return self.bound.adapter

    def load(
        self, edges: Sequence[tuple[Feature, Feature]], *, fetch_threads: int | None = None
    ) -> None:
        """Fetch each layer pair's block once and gather the kernels of all edges."""
        by_pair: dict[tuple[str, str], dict[tuple[str, str], tuple[Feature, Feature]]] = {}
        for s, d in edges:
            by_pair.setdefault((s.layer, d.layer), {})[(s.name, d.name)] = (s, d)
        for key, group_edges in by_pair.items():
            try:
                block = _with_threads(fetch_threads, fetch_block, self.bound, *key)
                good = []
                # each feature is range-checked once, however many edges it is on
                bad_src = {f.name: _range_error(f, block.shape[1]) for f, _ in group_edges.values()}
                bad_dst = {f.name: _range_error(f, block.shape[0]) for _, f in group_edges.values()}
                for e, (src, dst) in group_edges.items():
                    bad = bad_src[src.name] or bad_dst[dst.name]
                    if bad:
                        self.edge_errors[e] = bad
                    else:
                        good.append((src, dst))
                self.groups[key] = Group(key, block, good)
            except Exception as exc:  # any failure is reported on the claims, never raised
                self.group_errors[key] = describe_exception(exc)
            for e in group_edges:
                self._where[e] = key

    def problem(self, src: str, dst: str) -> str | None:
        """Why the edge between two feature names has no weights, or None if it has."""
        if not self.group_errors and not self.edge_errors:
            return None
        key = self._where.get((src, dst))
        if key in self.group_errors:
            return f"weights {key[0]} -> {key[1]} could not be computed: {self.group_errors[key]}"
        return self.edge_errors.get((src, dst))

    def edge(self, src: str, dst: str) -> tuple[Group, int]:
        """The group and position of a loaded edge between two feature names."""
        key = self._where.get((src, dst))
        if key is None:
            raise Unmeasurable(f"no weights were loaded for {src} -> {dst}")
        if self.group_errors or self.edge_errors:
            problem = self.problem(src, dst)
            if problem is not None:
                raise Unmeasurable(problem)
        g = self.groups[key]
        return g, g.position[(src, dst)]
