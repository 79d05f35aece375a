"""Running a model on stimuli: batched forward passes that keep only centre activations.

Activation claims read each feature's response *at the centre spatial position of its
layer* (stimuli are anchored at the image centre and every shipped model uses "same"
padding, so the image centre maps to the map centre; an even-sized map averages its
central 2x2, which is where the centre falls between four cells).

`Runner` wraps an fx `GraphModule` (the adapter's own, or an edited copy) and runs it
with `torch.fx.Interpreter`, so any traced layer can be read, channels can be ablated
(zeroed in a node's output), and the run stops as soon as every requested layer has
been computed (the classifier head is never run for a conv-layer claim).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx

if TYPE_CHECKING:
    from circuitdsl.models.base import ModelAdapter

BATCH = 256  # images per forward pass: large enough to amortise Python overhead


class _Done(Exception):
    """Raised inside the interpreter once every requested node has been recorded."""


def centre(t: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W] -> [N, C]``: the value at the centre of the map.

    Odd sizes take the middle cell; even sizes average the two middle rows/columns,
    where the image centre falls between cells.
    """
    if t.dim() == 2:  # a fully connected layer has no spatial extent
        return t
    h, w = t.shape[-2], t.shape[-1]
    r0, r1 = (h - 1) // 2, h // 2 + 1
    c0, c1 = (w - 1) // 2, w // 2 + 1
    return t[:, :, r0:r1, c0:c1].mean(dim=(2, 3))


def input_size(adapter: ModelAdapter) -> tuple[int, int]:
    """The (height, width) the model expects: stimuli are rendered at that size."""
    _, h, w = adapter.input_shape
    return int(h), int(w)


def runner_for(adapter: ModelAdapter, gm: fx.GraphModule | None = None, **kw: Any) -> Runner:
    """A `Runner` over `gm` (default: the adapter's own module) with its input handling."""
    return Runner(
        gm if gm is not None else adapter.graph.gm,
        channels=input_channels(adapter),
        preprocess=adapter.preprocess,
        **kw,
    )


def input_channels(adapter: ModelAdapter) -> int:
    """How many colour channels the model's input has (1 for greyscale models)."""
    return int(adapter.input_shape[0])


class Runner:
    """Forward passes of one (possibly edited) graph module on one device.

    `ablate` maps fx node names to channels whose output is set to zero before any
    later node reads it. The module is never modified: edits are made by the caller
    on a copy (`circuitdsl.models.edits`).
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        *,
        device: str = "cpu",
        ablate: Mapping[str, Iterable[int]] | None = None,
        channels: int = 3,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type != "cpu":
            # Moving a module moves its parameters in place: never do that to the caller's.
            gm = copy.deepcopy(gm).to(self.device)
        self.gm = gm
        self.ablate = {n: sorted(set(c)) for n, c in (ablate or {}).items()}
        self.channels = channels
        self.preprocess = preprocess  # [0, 1] stimuli -> the model's input range
        self.images_run = 0

    def centres(self, images: torch.Tensor, nodes: Iterable[str]) -> dict[str, torch.Tensor]:
        """Centre activations ``{node: [N, C]}`` (on the CPU) of `images` ``[N, 3, H, W]``."""
        wanted = list(dict.fromkeys(nodes))
        parts: dict[str, list[torch.Tensor]] = {n: [] for n in wanted}
        if self.channels == 1 and images.shape[1] == 3:
            images = images.mean(dim=1, keepdim=True)  # greyscale models see luminance
        if self.preprocess is not None:
            images = self.preprocess(images)
        for start in range(0, images.shape[0], BATCH):
            chunk = images[start : start + BATCH].to(self.device)
            for n, v in self._run(chunk, wanted).items():
                parts[n].append(v.float().cpu())
            self.images_run += int(chunk.shape[0])
        return {n: torch.cat(v) if v else torch.zeros(0, 0) for n, v in parts.items()}

    def _run(self, x: torch.Tensor, wanted: list[str]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        interp = fx.Interpreter(self.gm)
        run_node = interp.run_node
        ablate = self.ablate

        def record(n: fx.Node) -> Any:
            val = run_node(n)
            if n.name in ablate and isinstance(val, torch.Tensor):
                val = val.clone()
                val[:, ablate[n.name]] = 0.0
            if n.name in parts_left and isinstance(val, torch.Tensor):
                out[n.name] = centre(val.detach())
                parts_left.discard(n.name)
                if not parts_left:
                    raise _Done
            return val

        parts_left = set(wanted)
        interp.run_node = record  # type: ignore[method-assign]
        with torch.no_grad(), contextlib.suppress(_Done):
            interp.run(x)
        return out
