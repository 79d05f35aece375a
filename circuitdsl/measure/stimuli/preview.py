"""One preview PNG per stimulus: ``python -m circuitdsl.measure.stimuli.preview OUT_DIR``.

Each PNG is a row of images sweeping the stimulus's sweep parameter (orientation in 45°
steps from 0°, or radius for circles), rendered at 32x32 and scaled up 4x without smoothing
so the antialiasing is visible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from circuitdsl.measure.stimuli.registry import STIMULI, Stimulus


def preview_sweep(spec: Stimulus) -> tuple[str, torch.Tensor]:
    """The sweep shown in a stimulus's preview: parameter name and its values."""
    if spec.sweep == "radius":
        return "radius", torch.tensor([2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0])
    return spec.sweep, torch.arange(0.0, 360.0, 45.0)


def write_previews(out_dir: Path, size: int = 32, scale: int = 4) -> list[Path]:
    """Render every stimulus's preview sweep into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec in STIMULI.items():
        param, values = preview_sweep(spec)
        images = spec(size=size, **{param: values})
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
        path = out_dir / f"{name}.png"
        save_image(images, path, nrow=len(values), padding=4, pad_value=0.5)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m circuitdsl.measure.stimuli.preview", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out_dir", type=Path, help="folder to write <stimulus>.png into")
    parser.add_argument("--size", type=int, default=32, help="image size in pixels")
    parser.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscaling")
    args = parser.parse_args(argv)
    for path in write_previews(args.out_dir, args.size, args.scale):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
