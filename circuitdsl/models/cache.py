"""The on-disk cache of centre activations: a re-run of an unchanged spec costs start-up.

Entries are keyed by the *content* of the model that ran (its graph code, every parameter
and buffer, its input preprocessing, the channels ablated by an edit, the device type and
the precision), the node read, the canvas, and the stimulus key (the stimulus's name and
every parameter, rendered as text), plus a salt from the caller (the version of the
stimulus generators, so that changed drawing code never reads old numbers).

Layout: ``$CIRCUITDSL_CACHE`` (default ``$XDG_CACHE_HOME/circuitdsl``, i.e.
``~/.cache/circuitdsl``) ``/activations/<model hash>/<node, canvas, salt hash>.safetensors``,
one file per (model, node, canvas) holding ``values [N, C]`` and the N keys in its
metadata. Files are written whole to a temporary file and renamed (`os.replace`), so a
reader never sees half a file; two runs writing at once lose at most each other's new
entries, never correctness. An unreadable file is ignored (and rewritten).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from circuitdsl.language.cachedir import cache_dir

FORMAT = "circuitdsl.activations/1"  # bump when what an entry means changes


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (the package's `write_atomic`: a
    temporary file in the same folder, fsync, `os.replace`)."""
    from circuitdsl.language.atomic import write_atomic

    write_atomic(path, data)


def model_hash(
    gm: torch.nn.Module,
    *,
    preprocess: Any = None,
    channels: int = 3,
    ablate: Mapping[str, Iterable[int]] | None = None,
    extra: str = "",
) -> str:
    """SHA-256 of everything that decides a forward pass's numbers.

    The preprocessing is hashed by what it does to a fixed ramp image (a function's repr
    carries a memory address; its output does not).
    """
    h = hashlib.sha256()
    h.update(FORMAT.encode())
    code = getattr(gm, "code", None)
    h.update(str(code if code is not None else type(gm).__name__).encode())
    for name, t in sorted(gm.state_dict().items()):
        h.update(name.encode())
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    ramp = torch.linspace(0, 1, channels * 16).reshape(1, channels, 4, 4)
    if preprocess is not None:
        ramp = preprocess(ramp)
    h.update(ramp.detach().float().numpy().tobytes())
    h.update(json.dumps({k: sorted(v) for k, v in sorted((ablate or {}).items())}).encode())
    h.update(extra.encode())
    return h.hexdigest()


class DiskCache:
    """Centre activations of one model on disk: `load` and `save` per (node, canvas)."""

    def __init__(self, model: str, *, salt: str = "", root: Path | None = None) -> None:
        self.model = model
        self.salt = salt
        self.root = root if root is not None else cache_dir()
        self.hits = 0  # entries read from disk in this process
        self.writes = 0

    def path(self, node: str, canvas: str) -> Path:
        """The file holding `node`'s activations on `canvas` (`Canvas.key()`)."""
        name = hashlib.sha256(f"{node}\0{canvas}\0{self.salt}".encode()).hexdigest()[:32]
        return self.root / "activations" / self.model[:32] / f"{name}.safetensors"

    def load(self, node: str, canvas: str) -> dict[str, torch.Tensor]:
        """Every cached entry: stimulus key text -> ``[C]`` (empty when none or unreadable)."""
        path = self.path(node, canvas)
        try:
            from safetensors.torch import load as st_load

            data = path.read_bytes()
            values = st_load(data)["values"]
            header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
            meta = header.get("__metadata__", {})
            if meta.get("format") != FORMAT or meta.get("node") != node:
                return {}
            keys = json.loads(meta["keys"])
            if len(keys) != values.shape[0]:
                return {}
        except Exception:  # absent, truncated, garbled: recompute (and rewrite)
            return {}
        self.hits += len(keys)
        return dict(zip(keys, values, strict=True))

    def save(self, node: str, canvas: str, entries: Mapping[str, torch.Tensor]) -> None:
        """Write `entries` (merged with what the file already holds). Never raises: a
        cache that cannot be written (read-only home, full disk) is skipped."""
        if not entries:
            return
        try:
            from safetensors.torch import save as st_save

            merged = self.load(node, canvas)
            self.hits -= len(merged)  # a merge is not a hit
            merged.update(entries)
            keys = list(merged)
            values = torch.stack([merged[k].float().cpu() for k in keys]).contiguous()
            meta = {"format": FORMAT, "node": node, "canvas": canvas, "keys": json.dumps(keys)}
            atomic_write(self.path(node, canvas), st_save({"values": values}, metadata=meta))
            self.writes += 1
        except Exception:
            return
