"""The one model-execution path: batched forward passes that keep only centre activations.

Every measurement on stimuli -- activation claims and edit predictions (`check`),
behaviour selectors (`measure.select`), `circ tune` (`measure.tuning`) -- runs the model
here, through a `Runner`:

* it runs an fx `GraphModule` (the adapter's own, or an edited copy from
  `circuitdsl.models.edits`) with `torch.fx.Interpreter`, so any traced node can be read,
  channels can be ablated (zeroed in a node's output), and the pass stops as soon as
  every requested node is computed (a conv-layer claim never runs the classifier);
* it reads each node's *centre* (`circuitdsl.models.geometry`: the middle unit along an
  odd side of the map at the model's input size, the mean of the middle two along an
  even side, stimuli anchored at the centre of their receptive fields), on whatever
  `Canvas` the stimuli were drawn on -- usually the smallest one holding those fields
  (`canvas_for`);
* batch sizes come from a memory budget (`Settings.max_memory`, default a quarter of the
  free memory of the device), on CUDA in channels_last (and bf16 autocast when asked);
* `responses` pushes each distinct keyed stimulus once per model: results are kept in
  memory for every runner of the same module, and on disk (`circuitdsl.models.cache`)
  across runs.

Run-wide settings (device, memory budget, cache, precision) are a context variable
(`using`, `settings`) set once by the caller (`check_spec`, the CLI).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.fx as fx

from circuitdsl.models.geometry import Canvas, canvas, full_canvas, unit_at
from circuitdsl.models.progress import current as _current_progress

MAX_BATCH = 64  # images per forward pass at most: past this CPU convs gain nothing
MEMORY_FRACTION = 0.25  # of the free memory, the default budget for one batch


# ---- run-wide settings ---------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How a run executes models.

    `max_memory`: bytes one batch's activations may take (None: `MEMORY_FRACTION` of
    the device's free memory); `cache`: read and write the on-disk activation cache
    (default on, unless ``$CIRCUITDSL_NO_CACHE`` is set);
    `precision`: "fp32", or "bf16" (autocast; see docs/claims.md on when it is safe);
    `canvas`: "rf" (the smallest canvas holding the receptive field) or "full".
    """

    device: str = "cpu"
    max_memory: int | None = None
    cache: bool = field(default_factory=lambda: not os.environ.get("CIRCUITDSL_NO_CACHE"))
    precision: str = "fp32"
    canvas: str = "rf"


_SETTINGS: contextvars.ContextVar[Settings] = contextvars.ContextVar(
    "run_settings",
    default=Settings(),  # noqa: B039 (frozen: never mutated)
)


def settings() -> Settings:
    """The settings of the active run (defaults outside any)."""
    return _SETTINGS.get()


@contextlib.contextmanager
def using(**changes: Any) -> Iterator[Settings]:
    """Run the block with some settings changed (None values leave a setting as it is)."""
    new = replace(settings(), **{k: v for k, v in changes.items() if v is not None})
    token = _SETTINGS.set(new)
    try:
        yield new
    finally:
        _SETTINGS.reset(token)


def free_memory(device: torch.device) -> int:
    """Bytes free on `device` (CUDA: the allocator's view; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def parse_memory(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"1.5GiB"``, ``"1000000"`` -> bytes (ValueError otherwise)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in "KMGT" else t
    value = float(number) * scale
    if not value > 0:
        raise ValueError(f"a memory size must be positive, not {text!r}")
    return int(value)


# ---- reading the centre unit --------------------------------------------------------


def centre(t: torch.Tensor, unit: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """``[N, C, H, W] -> [N, C]``: the centre (`circuitdsl.models.geometry`).

    `unit` = (first row, first column, rows, columns) of the units averaged; by default
    the map's own middle: one cell along an odd side, the mean of the middle two along an
    even side. A fully connected layer's ``[N, C]`` is returned as is.
    """
    if t.dim() == 2:
        return t
    if t.dim() != 4:
        return t.flatten(1)
    if unit is None:
        h, w = t.shape[-2], t.shape[-1]
        unit = ((h - 1) // 2, (w - 1) // 2, 2 - h % 2, 2 - w % 2)
    r, c, kr, kc = unit
    if not (r >= 0 and r + kr <= t.shape[-2] and c >= 0 and c + kc <= t.shape[-1]):
        raise RuntimeError(
            f"the centre units ({r}, {c}) x ({kr}, {kc}) are outside the"
            f" {t.shape[-2]}x{t.shape[-1]} map"
        )
    if kr == 1 and kc == 1:
        return t[:, :, r, c]
    return t[:, :, r : r + kr, c : c + kc].mean(dim=(2, 3))


def input_size(adapter: Any) -> tuple[int, int]:
    """The (height, width) the model expects (the full canvas)."""
    shape = adapter.input_shape
    return int(shape[1]), int(shape[2])


def input_channels(adapter: Any) -> int:
    """How many colour channels the model's input has (1 for greyscale models)."""
    return int(adapter.input_shape[0])


def canvas_for(adapter: Any, node: str) -> Canvas:
    """The canvas stimuli for `node` are drawn on under the active settings."""
    if settings().canvas == "full":
        return full_canvas(adapter.graph, node)
    return canvas(adapter.graph, node)


def runner_for(adapter: Any, gm: fx.GraphModule | None = None, **kw: Any) -> Runner:
    """A `Runner` over `gm` (default: the adapter's own module) with its input handling."""
    kw.setdefault("device", settings().device)
    return Runner(
        gm if gm is not None else adapter.graph.gm,
        channels=input_channels(adapter),
        preprocess=adapter.preprocess,
        graph=adapter.graph,
        **kw,
    )


# ---- the store of computed responses --------------------------------------------------


class _Store:
    """Centre activations of one (module, device, precision, ablation): per (canvas, node),
    stimulus key -> ``[C]``; backed by the disk cache when enabled."""

    def __init__(self) -> None:
        self.mem: dict[tuple[Canvas, str], dict[str, torch.Tensor]] = {}  # by repr(key)
        self.disk: Any = None  # DiskCache, made on first use
        self.loaded: set[tuple[Canvas, str]] = set()


_STORES: weakref.WeakKeyDictionary[fx.GraphModule, dict[Any, _Store]] = weakref.WeakKeyDictionary()


_DEVICE_COPIES: weakref.WeakKeyDictionary[fx.GraphModule, dict[str, fx.GraphModule]] = (
    weakref.WeakKeyDictionary()
)

# ---- the runner -------------------------------------------------------------------------


class _Done(Exception):
    """Raised inside the interpreter once every requested node has been recorded."""


class Runner:
    """Forward passes of one (possibly edited) graph module on one device.

    `ablate` maps fx node names to channels whose output is set to zero before any
    later node reads it. The module is never modified: edits are made by the caller
    on a copy (`circuitdsl.models.edits`); a module moved to a GPU is a copy too.
    `graph` (the adapter's `TracedGraph`) supplies shapes and receptive fields.
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        *,
        device: str | None = None,
        ablate: Mapping[str, Iterable[int]] | None = None,
        channels: int = 3,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        graph: Any = None,
        precision: str | None = None,
        max_memory: int | None = None,
    ) -> None:
        run = settings()
        self.device = torch.device(device or run.device)
        self.precision = precision or run.precision
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision is fp32 or bf16, not {self.precision!r}")
        self.max_memory = max_memory if max_memory is not None else run.max_memory
        self.source_gm = gm
        self.ablate = {n: sorted(set(c)) for n, c in (ablate or {}).items()}
        self.channels = channels
        self.preprocess = preprocess  # [0, 1] stimuli -> the model's input range
        self.graph = graph
        self.images_run = 0
        self.cache = run.cache
        self.max_batch = MAX_BATCH
        self._gm: fx.GraphModule | None = gm if self.device.type == "cpu" else None

    @property
    def gm(self) -> fx.GraphModule:
        """The module as run (on a GPU: a copy there, channels_last)."""
        if self._gm is None:
            # Moving a module moves its parameters in place: never do that to the caller's.
            # One copy per (module, device), shared by every runner of a run.
            per_gm = _DEVICE_COPIES.setdefault(self.source_gm, {})
            if str(self.device) not in per_gm:
                gm = copy.deepcopy(self.source_gm).to(self.device)
                per_gm[str(self.device)] = gm.to(memory_format=torch.channels_last)
            self._gm = per_gm[str(self.device)]
        return self._gm

    # -- batching --

    def batch_size(self, nodes: Sequence[str], hw: tuple[int, int]) -> int:
        """Images per pass: the activations of one image up to the deepest node read,
        at this image size, times the batch, fit the memory budget."""
        budget = self.max_memory
        if budget is None:
            budget = int(MEMORY_FRACTION * free_memory(self.device))
        per_image = 4 * self.channels * hw[0] * hw[1]
        graph = self.graph
        if graph is not None:
            deepest = max((graph.index.get(n, len(graph.order)) for n in nodes), default=0)
            base = max(1, _input_pixels(graph))
            ratio = hw[0] * hw[1] / base
            for n in graph.order[: deepest + 1]:
                shape = graph.nodes[n].shape
                if shape is not None and len(shape) >= 2:
                    numel = 1
                    for s in shape[1:]:
                        numel *= int(s)
                    per_image += int(4 * numel * (ratio if len(shape) == 4 else 1))
        return max(1, min(self.max_batch, budget // max(per_image, 1)))

    # -- forward passes --

    def centres(
        self, images: torch.Tensor, nodes: Iterable[str], canvas: Canvas | None = None
    ) -> dict[str, torch.Tensor]:
        """Centre activations ``{node: [N, C]}`` (float32, on the CPU) of `images`.

        `canvas` says where the images' stimuli are anchored (default: the full canvas
        when the images have the model's input size).
        """
        wanted = list(dict.fromkeys(nodes))
        hw = (int(images.shape[-2]), int(images.shape[-1]))
        units = {n: self._unit(n, canvas, hw) for n in wanted}
        parts: dict[str, list[torch.Tensor]] = {n: [] for n in wanted}
        if self.channels == 1 and images.shape[1] == 3:
            images = images.mean(dim=1, keepdim=True)  # greyscale models see luminance
        if self.preprocess is not None:
            images = self.preprocess(images)
        batch = self.batch_size(wanted, hw)
        label = ", ".join(wanted[:3]) + (" ..." if len(wanted) > 3 else "")
        with _current_progress().phase(
            f"{label} at {hw[0]}x{hw[1]}", total=int(images.shape[0]), unit="img"
        ) as tick:
            for start in range(0, images.shape[0], batch):
                chunk = images[start : start + batch]
                for n, v in self._run(chunk, wanted, units).items():
                    parts[n].append(v.float().cpu())
                self.images_run += int(chunk.shape[0])
                tick(int(chunk.shape[0]))
        return {n: torch.cat(v) if v else torch.zeros(0, 0) for n, v in parts.items()}

    def _unit(
        self, node: str, cv: Canvas | None, hw: tuple[int, int]
    ) -> tuple[int, int, int, int] | None:
        if self.graph is None or node not in self.graph.nodes:
            return None
        if cv is None:
            full = full_canvas(self.graph, node)
            if full.size != hw:
                return None
            cv = full
        return unit_at(self.graph, node, cv)

    def _run(
        self,
        x: torch.Tensor,
        wanted: list[str],
        units: Mapping[str, tuple[int, int, int, int] | None],
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        gm = self.gm
        if self.device.type != "cpu":
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        interp = fx.Interpreter(gm)
        run_node = interp.run_node
        ablate = self.ablate

        def record(n: fx.Node) -> Any:
            val = run_node(n)
            if n.name in ablate and isinstance(val, torch.Tensor):
                val = val.clone()
                val[:, ablate[n.name]] = 0.0
            if n.name in parts_left and isinstance(val, torch.Tensor):
                out[n.name] = centre(val.detach(), units.get(n.name)).float().clone()
                parts_left.discard(n.name)
                if not parts_left:
                    raise _Done
            return val

        parts_left = set(wanted)
        interp.run_node = record  # type: ignore[method-assign]
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.precision == "bf16"
            else contextlib.nullcontext()
        )
        with torch.no_grad(), autocast, contextlib.suppress(_Done):
            interp.run(x)
        return out

    # -- keyed responses: each distinct stimulus once per model --

    def _store(self, salt: str) -> _Store:
        per_gm = _STORES.setdefault(self.source_gm, {})
        key = (
            self.device.type,
            self.precision,
            repr(sorted(self.ablate.items())),
            salt,
            _fingerprint(self.preprocess, self.channels),  # a copy with other preprocessing
        )
        if key not in per_gm:
            per_gm[key] = _Store()
        store = per_gm[key]
        if self.cache and store.disk is None:
            from circuitdsl.models.cache import DiskCache, model_hash

            digest = model_hash(
                self.source_gm,
                preprocess=self.preprocess,
                channels=self.channels,
                ablate=self.ablate,
                extra=f"{self.device.type}/{self.precision}",
            )
            store.disk = DiskCache(digest, salt=salt)
        return store

    def responses(
        self,
        cv: Canvas,
        nodes: Sequence[str],
        keys: Sequence[Any],
        render: Callable[[Sequence[Any]], torch.Tensor],
        *,
        salt: str = "",
    ) -> dict[str, torch.Tensor]:
        """``{node: [len(keys), C]}``: centre activations to the stimuli named by `keys`.

        `render(keys)` draws the images of the given keys on `cv`; it is called once, with
        only the keys no earlier call (of any runner of this module, on this device, in
        this process, or -- with the cache on -- any earlier run) has pushed. Keys must
        be hashable and have a deterministic `repr` (tuples of strings and numbers).
        `salt` names the version of the drawing code (part of the cache key).
        """
        store = self._store(salt)
        nodes = list(dict.fromkeys(nodes))
        asked = list(nodes)
        # Read a node's elementwise neighbours too (a conv and its ReLU: the pre and the
        # post reading of one unit): free in the same pass, and a later request for the
        # other reading then pushes nothing.
        nodes = list(dict.fromkeys(n for a in asked for n in self._elementwise_family(a)))
        texts = [repr(k) for k in keys]
        missing: dict[str, Any] = {}
        for n in nodes:
            mem = store.mem.setdefault((cv, n), {})
            if store.disk is not None and (cv, n) not in store.loaded:
                store.loaded.add((cv, n))
                for text, v in store.disk.load(n, cv.key()).items():
                    mem.setdefault(text, v)
            for k, t in zip(keys, texts, strict=True):
                if t not in mem:
                    missing[t] = k
        if missing:
            todo = list(missing.values())
            todo_text = list(missing)
            need = [n for n in nodes if any(t not in store.mem[(cv, n)] for t in todo_text)]
            acts = self.centres(render(todo), need, cv)
            for n in need:
                mem = store.mem[(cv, n)]
                mem.update({t: acts[n][i] for i, t in enumerate(todo_text)})
                if store.disk is not None:
                    store.disk.save(n, cv.key(), mem)
        out = {}
        for n in asked:
            mem = store.mem[(cv, n)]
            out[n] = torch.stack([mem[t] for t in texts]) if texts else torch.zeros(0, 0)
        return out

    def _elementwise_family(self, node: str) -> list[str]:
        """`node` and the nodes joined to it by elementwise ops (ReLU, BatchNorm): the
        same units, with the same receptive fields."""
        graph = self.graph
        if graph is None or node not in graph.nodes:
            return [node]
        seen = [node]
        todo = [node]
        while todo:
            n = todo.pop()
            info = graph.nodes[n]
            near = []
            if info.op.kind in ("identity", "scale") and len(info.op.inputs) == 1:
                near.append(info.op.inputs[0])
            for u in info.users:
                uo = graph.nodes[u].op
                if uo.kind in ("identity", "scale") and len(uo.inputs) == 1:
                    near.append(u)
            for m in near:
                if m in graph.nodes and m not in seen and graph.nodes[m].op.kind != "input":
                    seen.append(m)
                    todo.append(m)
        return seen


def _fingerprint(preprocess: Any, channels: int) -> bytes:
    """What `preprocess` does to a fixed ramp: equal for equal preprocessing."""
    ramp = torch.linspace(0, 1, channels * 4).reshape(1, channels, 2, 2)
    out = preprocess(ramp) if preprocess is not None else ramp
    return bytes(out.detach().float().contiguous().numpy().tobytes())


def _input_pixels(graph: Any) -> int:
    for info in graph.nodes.values():
        if info.op.kind == "input" and info.shape is not None and len(info.shape) == 4:
            return int(info.shape[2]) * int(info.shape[3])
    return 224 * 224
