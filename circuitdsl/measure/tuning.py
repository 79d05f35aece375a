"""Measure every channel's tuning to the stimulus library.

``orientation_tuning(model, layer, stimulus="curve", ...)`` renders one stimulus per
orientation (optionally crossed with several values of other parameters, which are averaged),
runs the model through the one runner (`circuitdsl.models.probe`) and reads each channel's
response at the layer's *centre* (`circuitdsl.models.geometry`: the middle unit along an
odd side, the mean of the middle two along an even one, with the stimulus anchored at the
centre of their receptive fields -- the same definition activation claims and selectors
use). Stimuli are drawn on the smallest canvas that holds those receptive fields.
``model`` is any model adapter (``load_model``) or a plain ``nn.Module`` (traced once
into one).

Command line::

    circ tune MODEL LAYER [--weights F] [--stimulus curve] [--plot OUT.png] [--classify]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from circuitdsl.language.diagnostics import BadArgument, did_you_mean
from circuitdsl.measure.stimuli import get_stimulus


@dataclass
class TuningResult:
    """Per-channel responses of one layer to an orientation sweep of one stimulus.

    ``responses[c, k]`` is channel ``c``'s centre response to ``orientations[k]`` (averaged
    over crossed parameters). Angles are in degrees in the stimulus convention (0° right,
    counter-clockwise on screen). ``period`` is the stimulus's orientation period (360 for
    curves and edges, 180 for lines).

    - ``preferred``: the sampled orientation with the largest response (argmax).
    - ``preferred_mean``: circular mean of the orientation weighted by the rectified response,
      on the circle of circumference ``period`` (doubled angles for lines).
    - ``selectivity``: length of that mean resultant, in [0, 1]; 1 = responds to one
      orientation only, 0 = flat (or symmetric) tuning.
    - ``peak``: the largest response; ``opposite``: the response half a period away from
      ``preferred`` (180° for curves: the "echo"; 90° for lines: the orthogonal line);
      ``echo = opposite / peak`` (0 when the peak is not positive).
    """

    layer: str
    stimulus: str
    orientations: torch.Tensor
    responses: torch.Tensor
    period: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        """Number of channels measured."""
        return int(self.responses.shape[0])

    @property
    def preferred(self) -> torch.Tensor:
        """Orientation (deg) of each channel's largest response, ``[C]``."""
        return self.orientations[self.responses.argmax(1)]

    @property
    def peak(self) -> torch.Tensor:
        """Largest response per channel, ``[C]``."""
        return self.responses.max(1).values

    def _resultant(self) -> torch.Tensor:
        r = self.responses.clamp_min(0.0).double()
        phase = torch.deg2rad(self.orientations.double()) * (360.0 / self.period)
        z = (r * torch.exp(1j * phase)).sum(1)
        total = r.sum(1)
        return torch.where(total > 0, z / total.clamp_min(1e-30), torch.zeros_like(z))

    @property
    def preferred_mean(self) -> torch.Tensor:
        """Circular mean orientation (deg, in [0, period)) of the rectified responses, ``[C]``."""
        angle = torch.rad2deg(torch.angle(self._resultant())) * (self.period / 360.0)
        return torch.remainder(angle, self.period).float()

    @property
    def selectivity(self) -> torch.Tensor:
        """Mean resultant length of the rectified tuning curve, in [0, 1], ``[C]``."""
        return self._resultant().abs().float()

    @property
    def opposite(self) -> torch.Tensor:
        """Response half a period from the argmax orientation (nearest sample), ``[C]``."""
        target = torch.remainder(self.preferred + self.period / 2, self.period)
        diff = torch.remainder(self.orientations[None, :] - target[:, None], self.period)
        diff = torch.minimum(diff, self.period - diff)
        idx = diff.argmin(1)
        return self.responses.gather(1, idx[:, None]).squeeze(1)

    @property
    def echo(self) -> torch.Tensor:
        """``opposite / peak`` (0 where the peak is not positive), ``[C]``."""
        peak = self.peak
        return torch.where(peak > 0, self.opposite / peak.clamp_min(1e-12), torch.zeros_like(peak))

    def order(self) -> list[int]:
        """Channel indices sorted by selectivity, most selective first (ties by peak)."""
        sel, peak = self.selectivity.tolist(), self.peak.tolist()
        return sorted(range(self.channels), key=lambda c: (-round(sel[c], 6), -peak[c]))

    def rows(self) -> list[dict[str, float | int]]:
        """One dict per channel (sorted by selectivity) with the summary statistics."""
        pref, mean = self.preferred.tolist(), self.preferred_mean.tolist()
        sel, peak = self.selectivity.tolist(), self.peak.tolist()
        opp, echo = self.opposite.tolist(), self.echo.tolist()
        return [
            {"channel": c, "preferred": pref[c], "preferred_mean": round(mean[c], 2),
             "selectivity": round(sel[c], 4), "peak": round(peak[c], 4),
             "opposite": round(opp[c], 4), "echo": round(echo[c], 4)}
            for c in self.order()
        ]  # fmt: skip

    def table(self, top: int | None = None) -> str:
        """A plain-text table of the channels, most selective first."""
        rows = self.rows()[:top]
        title = f"{self.layer} / {self.stimulus} (period {self.period:g} deg)"
        cols = f"{'ch':>4} {'pref':>7} {'mean':>7} {'select':>7} {'peak':>9} {'opp':>9} {'echo':>6}"
        head = f"{title}\n{cols}"
        lines = [
            f"{r['channel']:>4} {r['preferred']:>7.1f} {r['preferred_mean']:>7.1f} "
            f"{r['selectivity']:>7.3f} {r['peak']:>9.4f} {r['opposite']:>9.4f} {r['echo']:>6.2f}"
            for r in rows
        ]
        return "\n".join([head, *lines])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (statistics per channel plus the raw responses)."""
        return {
            "layer": self.layer,
            "stimulus": self.stimulus,
            "period": self.period,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "orientations": self.orientations.tolist(),
            "channels": self.rows(),
            "responses": self.responses.tolist(),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, tuple):
        return list(v)
    return v


def module_names(model: nn.Module) -> list[str]:
    """Dotted paths of every named submodule (what ``layer`` arguments may name)."""
    return [name for name, _ in model.named_modules() if name]


def get_module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule at dotted path ``layer``; ``ValueError`` lists close names otherwise."""
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = module_names(model)
        close = did_you_mean(layer, names)
        hint = f" {close}" if close else ""
        raise BadArgument(
            f"model has no layer {layer!r};{hint} layers: {', '.join(names)}"
        ) from None


def input_channels(model: nn.Module) -> int:
    """Input channels the model expects: those of its first ``Conv2d`` (3 if it has none)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


def as_adapter(model: Any, size: int | None = None) -> Any:
    """The model adapter of `model`: itself if it is one; a plain ``nn.Module`` is traced
    once per input `size` (default 32) into one (`adapter_from_module`)."""
    from circuitdsl.models.base import ModelAdapter, adapter_from_module

    if isinstance(model, ModelAdapter):
        return model
    side = 32 if size is None else int(size)
    per_size = _ADAPTERS.setdefault(model, {})
    if side not in per_size:
        per_size[side] = adapter_from_module(
            type(model).__name__, model.eval(), input_shape=(input_channels(model), side, side)
        )
    return per_size[side]


_ADAPTERS: weakref.WeakKeyDictionary[nn.Module, dict[int, Any]] = weakref.WeakKeyDictionary()


def _node(adapter: Any, model: Any, layer: str) -> str:
    if isinstance(model, nn.Module):
        get_module(model, layer)  # a ValueError naming close module paths
    return str(adapter.node(layer))


def layer_activations(
    model: Any, layer: str, images: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """Centre-unit activations ``[N, C]`` of ``layer`` for full-size ``images``.

    Runs the one runner (`circuitdsl.models.probe.Runner`); RGB stimuli are averaged to
    grey when the model takes one channel. ``batch_size`` caps the batch (default: from
    the memory budget).
    """
    from circuitdsl.models.probe import runner_for

    adapter = as_adapter(model, int(images.shape[-1]))
    node = _node(adapter, model, layer)
    runner = runner_for(adapter, max_memory=None)
    if batch_size is not None:
        runner.max_batch = batch_size
    return runner.centres(images, [node])[node]


def centre_unit(map_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[float, float]:
    """Receptive-field centre ``(x, y)`` of map unit ``(h // 2, w // 2)`` from the image centre.

    Assumes the layer's stride is ``H / h`` and its padding keeps the map centred on the
    image (true for "same"-padded convolutions and even pooling, as in the zoo's models):
    unit ``i`` then looks at pixel ``(i + 0.5) * s - 0.5``.
    """
    (h, w), (img_h, img_w) = map_size, image_size
    sy, sx = img_h / h, img_w / w
    return (w // 2 + 0.5) * sx - img_w / 2, (h // 2 + 0.5) * sy - img_h / 2


def unit_response(acts: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` response of the centre unit ``(h // 2, w // 2)`` of ``[N, C, h, w]`` maps."""
    if acts.dim() == 2:
        return acts
    if acts.dim() != 4:
        raise ValueError(f"expected activations [N, C, h, w] or [N, C], got {tuple(acts.shape)}")
    h, w = acts.shape[-2:]
    return acts[:, :, h // 2, w // 2]


def centre_response(acts: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` response at the centre of ``[N, C, h, w]`` maps (mean of the central 1-4)."""
    if acts.dim() == 2:
        return acts
    if acts.dim() != 4:
        raise ValueError(f"expected activations [N, C, h, w] or [N, C], got {tuple(acts.shape)}")
    h, w = acts.shape[-2:]
    rows = slice((h - 1) // 2, h // 2 + 1)
    cols = slice((w - 1) // 2, w // 2 + 1)
    return acts[:, :, rows, cols].mean((-2, -1))


def receptive_field(model: Any, layer: str, size: int = 32) -> int:
    """Width in pixels of the centre unit's receptive field in ``layer`` (the larger of
    height and width, clipped by the image of side ``size``).

    From the conv arithmetic of the traced graph (`circuitdsl.models.geometry`); a layer
    behind a global operation sees the whole image.
    """
    from circuitdsl.models.geometry import geometries

    adapter = as_adapter(model, size)
    geom = geometries(adapter.graph).get(_node(adapter, model, layer))
    side = max(adapter.input_shape[1], adapter.input_shape[2])
    if geom is None:
        return int(side)
    return int(min(max(geom.field), side))


def sagitta(radius: float, chord: float) -> float:
    """How far an arc of ``radius`` bulges from its chord of length ``chord`` (pixels)."""
    half = min(chord / 2, radius)
    return radius - math.sqrt(radius * radius - half * half)


def orientation_tuning(
    model: Any,
    layer: str,
    stimulus: str = "curve",
    orientations: Sequence[float] | torch.Tensor | None = None,
    *,
    size: int | None = None,
    rectify: bool = True,
    offsets: Sequence[float] | None = None,
    batch_size: int | None = None,
    **params: Any,
) -> TuningResult:
    """Centre response of every channel of ``layer`` to ``stimulus`` at each orientation.

    ``model``: a model adapter, or an ``nn.Module`` taking ``size`` x ``size`` images
    (default 32). ``orientations`` defaults to 0, 5, ... degrees over the stimulus's period. Extra
    ``params`` go to the generator; a parameter given as a list/tuple/1-D tensor of several
    values is crossed with the orientations and the responses are averaged over its values
    (e.g. ``radius=[5, 8, 11]``). ``rectify`` applies ReLU to the hooked output, since these
    models' units are read after their ReLU (a no-op when ``layer`` is already a ReLU).

    ``offsets`` (pixels) measures position tolerance: the stimulus's anchor is also shifted
    by each offset across the stimulus (along its normal, see ``StimulusSpec.normal``) and
    each orientation's response is the *maximum* over the offsets, so a unit whose preferred
    position is a pixel or two off-centre is compared with other units at its best position.
    """
    spec = get_stimulus(stimulus)
    if spec.orientation_period is None:
        raise ValueError(f"stimulus {stimulus!r} has no orientation to sweep")
    period = spec.orientation_period
    if orientations is None:
        orientations = torch.arange(0.0, period, 5.0)
    theta = torch.as_tensor(orientations, dtype=torch.float32).reshape(-1)
    crossed = {k: torch.as_tensor(v, dtype=torch.float32).reshape(-1) for k, v in params.items()
               if isinstance(v, (list, tuple, torch.Tensor)) and torch.as_tensor(v).numel() > 1
               and k not in ("color_a", "color_b")}  # fmt: skip
    fixed = {k: v for k, v in params.items() if k not in crossed}
    if "x" in crossed or "y" in crossed:
        raise ValueError("x and y take one value each in a tuning sweep")
    from circuitdsl.measure.stimuli.registry import draw
    from circuitdsl.models.probe import canvas_for, runner_for

    adapter = as_adapter(model, size)
    node = _node(adapter, model, layer)
    cv = canvas_for(adapter, node)  # anchored on the centre unit's receptive field
    fixed["x"] = float(fixed.get("x", 0.0))
    fixed["y"] = float(fixed.get("y", 0.0))
    shifts = torch.as_tensor([0.0] if offsets is None else offsets, dtype=torch.float32)
    combos = list(itertools.product(*[v.tolist() for v in crossed.values()])) or [()]
    m, d, k = len(combos), len(shifts), len(theta)
    # Image order is (combo, offset, orientation), orientation varying fastest.
    sweep: dict[str, Any] = {"orientation": theta.repeat(m * d)}
    for j, name in enumerate(crossed):
        sweep[name] = torch.tensor([c[j] for c in combos]).repeat_interleave(d * k)
    if offsets is not None:
        normal = torch.deg2rad(theta + spec.normal)
        shift = shifts.repeat_interleave(k).repeat(m)
        sweep["x"] = fixed.pop("x") + shift * torch.cos(normal).repeat(m * d)
        sweep["y"] = fixed.pop("y") - shift * torch.sin(normal).repeat(m * d)
    images = draw(stimulus, cv, **fixed, **sweep)
    runner = runner_for(adapter)
    if batch_size is not None:
        runner.max_batch = batch_size
    acts = runner.centres(images, [node], cv)[node]
    if rectify:
        acts = acts.clamp_min(0.0)
    resp = unit_response(acts).reshape(m, d, k, -1).amax(1).mean(0).T.contiguous()
    recorded = dict(params) if offsets is None else {**params, "offsets": list(offsets)}
    return TuningResult(layer, stimulus, theta, resp.float(), period, recorded)


# Stimulus settings used to call line and curve detectors; the radii and lengths are
# averaged so the call does not hinge on one scale.
# The line lengths match the arc lengths of the curves (radius x 90° in radians), so a peak
# response to curves above the peak response to lines means curvature, not just more ink.
LINE_PARAMS: dict[str, Any] = {"length": [7.85, 12.57, 17.28], "width": 1.5}
CURVE_PARAMS: dict[str, Any] = {"radius": [5.0, 8.0, 11.0], "span": 90.0, "width": 1.5}
# For the curve/line comparison both stimuli are also shifted across themselves by these
# amounts (best position kept), so a unit that prefers a straight line a pixel or two
# off-centre is not mistaken for a curve detector because a centred curve's arms happen to
# reach its preferred position. Curve selectivity and echo use centred curves: shifting
# them would broaden every curve tuning curve and raise echoes.
OFFSETS: tuple[float, ...] = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class FeatureCall:
    """A channel's classification as a line or curve detector, with the evidence."""

    layer: str
    channel: int
    kind: str  # "curve", "line", "weak" (below the selectivity thresholds), "silent"
    orientation: float  # preferred orientation in the stimulus convention of `kind`
    selectivity: float
    echo: float  # curve tuning: response at preferred + 180° / peak
    line_selectivity: float
    curve_selectivity: float
    curve_vs_line: float  # peak response to curves / peak response to lines
    bend: float  # sagitta (px) of the smallest tested curve across the receptive field


def classify_channels(
    model: Any,
    layer: str,
    *,
    size: int | None = None,
    min_line_selectivity: float = 0.3,
    min_curve_selectivity: float = 0.1,
    max_curve_echo: float = 0.5,
    min_curve_vs_line: float = 1.0,
    min_peak: float = 0.02,
    min_bend: float = 1.0,
    step: float = 5.0,
    line_params: dict[str, Any] | None = None,
    curve_params: dict[str, Any] | None = None,
    offsets: Sequence[float] | None = OFFSETS,
) -> list[FeatureCall]:
    """Call each channel of ``layer`` a curve detector, a line detector, weak or silent.

    Rule (documented in docs/zoo.md): measure line tuning (period 180) and curve tuning
    (period 360) with ``line_params`` / ``curve_params`` (default :data:`LINE_PARAMS` /
    :data:`CURVE_PARAMS`, scaled for 32x32 inputs). Selectivity and echo come from stimuli
    on the unit's receptive-field centre; for the curve/line peak comparison both stimuli
    are also shifted across themselves by ``offsets`` (default :data:`OFFSETS`) and each
    keeps its best position. A channel whose
    peak response to both stimuli is below ``min_peak`` times the layer's largest peak is
    ``silent`` (dead or tuned to something else). It is a ``curve`` detector when

    1. its curve selectivity is at least ``min_curve_selectivity`` (lower than for lines,
       because a curve detector also answers curves turned by up to ~90°, which spreads its
       tuning over the whole circle),
    2. its curve echo (response to the same curve turned 180°, relative to the peak) is at
       most ``max_curve_echo``: it tells a curve from its mirror image across the tangent,
       which a line detector cannot, and
    3. its peak response to curves is at least ``min_curve_vs_line`` times its peak response
       to lines of the same length (each at its best position), so a unit that wants a
       straight line slightly off-centre is not called a curve detector, and
    4. its receptive field is wide enough to see the tested curves bend: the smallest
       tested radius must bulge at least ``min_bend`` pixels from its chord across the
       field (:func:`receptive_field`, :func:`sagitta`). A 5x5 first layer cannot see a
       radius-5 arc bend (0.7 px), so its asymmetric curve tuning comes from where the ink
       falls, not from curvature.

    Otherwise it is a ``line`` detector when its line selectivity is at least
    ``min_line_selectivity``; else ``weak``.
    """
    lines = orientation_tuning(model, layer, "line", torch.arange(0.0, 180.0, step),
                               size=size, offsets=offsets,
                               **(line_params or LINE_PARAMS))  # fmt: skip
    curves = orientation_tuning(model, layer, "curve", torch.arange(0.0, 360.0, step),
                                size=size, **(curve_params or CURVE_PARAMS))  # fmt: skip
    # Curves at their best position too, for the curve/line comparison only: both stimuli
    # then get the same chance to meet the unit where it looks.
    curves_best = orientation_tuning(model, layer, "curve", torch.arange(0.0, 360.0, step),
                                     size=size, offsets=offsets,
                                     **(curve_params or CURVE_PARAMS))  # fmt: skip
    radii = torch.as_tensor((curve_params or CURVE_PARAMS).get("radius", 8.0)).reshape(-1)
    bend = sagitta(float(radii.min()), receptive_field(model, layer, size or 32))
    calls = []
    l_sel, c_sel = lines.selectivity.tolist(), curves.selectivity.tolist()
    c_echo = curves.echo.tolist()
    # A unit silent to every line but not to curves gets an infinite curve/line ratio.
    ratio = torch.where(lines.peak > 1e-9, curves_best.peak / lines.peak.clamp_min(1e-9),
                        torch.full_like(lines.peak, math.inf)).tolist()  # fmt: skip
    l_pref, c_pref = lines.preferred.tolist(), curves.preferred.tolist()
    peak = torch.maximum(lines.peak, curves.peak)
    floor = min_peak * float(peak.max())
    for c in range(curves.channels):
        if float(peak[c]) <= floor:
            kind, orient, sel = "silent", math.nan, 0.0
        elif (
            c_sel[c] >= min_curve_selectivity
            and c_echo[c] <= max_curve_echo
            and ratio[c] >= min_curve_vs_line
            and bend >= min_bend
        ):
            kind, orient, sel = "curve", c_pref[c], c_sel[c]
        elif l_sel[c] >= min_line_selectivity:
            kind, orient, sel = "line", l_pref[c], l_sel[c]
        else:
            kind, orient, sel = "weak", l_pref[c], l_sel[c]
        calls.append(FeatureCall(layer, c, kind, orient, round(sel, 4), round(c_echo[c], 4),
                                 round(l_sel[c], 4), round(c_sel[c], 4),
                                 round(ratio[c], 3), round(bend, 2)))  # fmt: skip
    return calls


def calls_markdown(calls: Sequence[FeatureCall]) -> str:
    """A Markdown table of line/curve detectors (weak and silent channels listed below)."""
    kept = [c for c in calls if c.kind in ("curve", "line")]
    kept.sort(key=lambda c: (c.kind, -c.selectivity))
    out = ["| layer | channel | kind | preferred orientation (deg) | selectivity | curve echo "
           "| curve/line peak |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    out += [f"| {c.layer} | {c.channel} | {c.kind} | {c.orientation:g} | {c.selectivity:.3f} "
            f"| {c.echo:.2f} | {c.curve_vs_line:.2f} |" for c in kept]  # fmt: skip
    rest = {k: [c.channel for c in calls if c.kind == k] for k in ("weak", "silent")}
    for kind, chans in rest.items():
        if chans:
            out.append(f"\n{kind}: {', '.join(map(str, chans))}")
    return "\n".join(out)


def plot_tuning(result: TuningResult, path: Path, top: int | None = None, cols: int = 8) -> Path:
    """Draw a polar plot of each channel's tuning (most selective first) into a PNG.

    Radius is the response relative to the layer's largest peak (so weak channels look
    small); 0° points right and angles grow counter-clockwise, as in the stimuli. A red
    spoke marks the argmax orientation. For period-180 stimuli the curve is drawn on the
    full circle with both directions of each line.
    """
    from PIL import Image, ImageDraw

    order = result.order()[:top]
    cell = 120
    rows = max(1, math.ceil(len(order) / cols))
    img = Image.new("RGB", (cols * cell, rows * cell + 20), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 4), f"{result.layer}: {result.stimulus} tuning (sorted by selectivity)",
              fill="black")  # fmt: skip
    top_peak = float(result.peak.max()) or 1.0
    theta = result.orientations.tolist()
    reps = round(360.0 / result.period)
    for i, c in enumerate(order):
        ox, oy = (i % cols) * cell, (i // cols) * cell + 20
        cx, cy, rad = ox + cell / 2, oy + cell / 2 + 6, cell / 2 - 14
        draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), outline=(200, 200, 200))
        draw.line((cx - rad, cy, cx + rad, cy), fill=(225, 225, 225))
        draw.line((cx, cy - rad, cx, cy + rad), fill=(225, 225, 225))
        resp = result.responses[c].clamp_min(0).tolist()
        pts = []
        for rep in range(reps):
            for t, r in zip(theta, resp, strict=True):
                a = math.radians(t + rep * result.period)
                rr = rad * r / top_peak
                pts.append((cx + rr * math.cos(a), cy - rr * math.sin(a)))
        if pts:
            draw.line([*pts, pts[0]], fill=(30, 60, 200), width=2)
        pref = math.radians(float(result.preferred[c]))
        draw.line((cx, cy, cx + rad * math.cos(pref), cy - rad * math.sin(pref)),
                  fill=(220, 30, 30))  # fmt: skip
        label = f"{c}: {float(result.preferred[c]):.0f}° s={float(result.selectivity[c]):.2f}"
        draw.text((ox + 3, oy + 1), label, fill="black")
    import io

    from circuitdsl.language.atomic import write_atomic

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_atomic(path, buf.getvalue())  # a failed write keeps an older plot whole
    return path


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,VALUE...], got {text!r}")
    name, value = text.split("=", 1)
    values = [float(v.removesuffix("deg")) for v in value.split(",")]
    return name, values if len(values) > 1 else values[0]


def main(argv: list[str] | None = None, prog: str = "python -m circuitdsl.measure.tuning") -> int:
    """Command-line entry point (also `circ tune`): print a tuning table, plot, classify.

    Works on every model `load_model` knows (the adapters); a bad model, weights file or
    layer is a diagnostic (exit 2).
    """
    from circuitdsl.language.diagnostics import DiagnosticError, render
    from circuitdsl.models.progress import Progress, use
    from circuitdsl.models.registry import load_model
    from circuitdsl.models.threads import default_threads

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure every channel's orientation tuning to a stimulus.",
    )
    parser.add_argument(
        "model", help="any model name (curvenet, torchvision:vgg16, vgg16-hed, ...)"
    )
    parser.add_argument("layer", help="a layer name (`circ layers MODEL`), e.g. conv2")
    parser.add_argument("--stimulus", default="curve", help="stimulus name (default: curve)")
    parser.add_argument("--weights", type=Path, default=None, help="weights file to load instead")
    parser.add_argument("--step", type=float, default=5.0, help="orientation step in degrees")
    parser.add_argument("--param", action="append", type=_parse_param, default=[],
                        metavar="NAME=V[,V...]", help="stimulus parameter; several values are "
                        "averaged (repeatable)")  # fmt: skip
    parser.add_argument("--top", type=int, default=None, help="show only the N most selective")
    parser.add_argument("--plot", type=Path, default=None, help="write a polar-plot PNG")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON")
    parser.add_argument("--classify", action="store_true",
                        help="also call line/curve detectors, print a Markdown table")  # fmt: skip
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--no-cache", action="store_true", help="do not use the activation cache")
    parser.add_argument("--max-memory", default=None, metavar="BYTES",
                        help="memory for one batch, e.g. 2G (default: 1/4 of free)")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    from circuitdsl.models.probe import parse_memory, using

    default_threads()
    progress = Progress(enabled=False if args.quiet else None)
    try:
        budget = parse_memory(args.max_memory) if args.max_memory else None
        with use(progress), using(device=args.device, max_memory=budget,
                                  cache=False if args.no_cache else None):  # fmt: skip
            progress.note(f"loading {args.model}")
            adapter = load_model(args.model, args.weights)
            spec = get_stimulus(args.stimulus)
            period = spec.orientation_period or 360.0
            result = orientation_tuning(
                adapter, args.layer, args.stimulus, torch.arange(0.0, period, args.step),
                **dict(args.param),
            )  # fmt: skip
            calls = classify_channels(adapter, args.layer) if args.classify else None
    except DiagnosticError as err:
        print(render(err.diagnostics, {}), file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    print(result.table(args.top))
    if args.plot:
        print(f"wrote {plot_tuning(result, args.plot, args.top)}", file=sys.stderr)
    if args.json:
        from circuitdsl.language.atomic import write_atomic

        write_atomic(args.json, json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")
    if calls is not None:
        print()
        print(calls_markdown(calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
