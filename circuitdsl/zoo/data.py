"""Training and evaluation data for the zoo: generated curve/line images and Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from circuitdsl.measure.stimuli import curve, line

FASHION_DIR_ENV = "CIRCUITDSL_FASHION_MNIST"
FASHION_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")

EVAL_SEED = 20_240_601
"""Seed of curvenet's held-out set; training streams use the model seed, never this one."""

LINE_JITTER = 10.0  # degrees either side of a line class's centre


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def curve_task_batch(
    n: int,
    g: torch.Generator,
    size: int = 32,
    curve_fraction: float = 0.75,
    curve_bins: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled images for curvenet, drawn from ``g`` (deterministic given its state).

    A ``curve_fraction`` of the images are curves (label = orientation bin ``k`` of
    ``curve_bins``, orientation ``k * bin ± bin / 3``; 45k ± 15° for 8 bins), the rest lines
    (label ``curve_bins + k``, orientation ``45k ± 10°`` mod 180), with random radius, arc
    span, length, width, position, grey levels and Gaussian pixel noise. The jitter stays
    below half a bin so that every label is unambiguous.
    """
    n_curve = round(n * curve_fraction)
    n_line = n - n_curve
    step = 360.0 / curve_bins
    jitter = step / 3
    k_c = torch.randint(0, curve_bins, (n_curve,), generator=g)
    curves = curve(
        step * k_c + _u(g, n_curve, -jitter, jitter),
        radius=_u(g, n_curve, 4.0, 11.0),
        span=_u(g, n_curve, 70.0, 150.0),
        width=_u(g, n_curve, 1.0, 2.5),
        x=_u(g, n_curve, -6.0, 6.0),
        y=_u(g, n_curve, -6.0, 6.0),
        foreground=_u(g, n_curve, 0.5, 1.0),
        background=_u(g, n_curve, 0.0, 0.3),
        size=size,
    )
    k_l = torch.randint(0, 4, (n_line,), generator=g)
    lines = line(
        45.0 * k_l + _u(g, n_line, -LINE_JITTER, LINE_JITTER),
        length=_u(g, n_line, 6.0, 16.0),
        width=_u(g, n_line, 1.0, 2.5),
        x=_u(g, n_line, -6.0, 6.0),
        y=_u(g, n_line, -6.0, 6.0),
        foreground=_u(g, n_line, 0.5, 1.0),
        background=_u(g, n_line, 0.0, 0.3),
        size=size,
    )
    images = torch.cat([curves, lines])
    labels = torch.cat([k_c, curve_bins + k_l])
    sigma = _u(g, n, 0.0, 0.08).reshape(-1, 1, 1, 1)
    images = (images + sigma * torch.randn(images.shape, generator=g)).clamp(0.0, 1.0)
    order = torch.randperm(n, generator=g)
    return images[order], labels[order]


def curve_eval_set(n: int = 2000, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """curvenet's fixed held-out set: the first ``n`` images drawn from ``EVAL_SEED``."""
    g = torch.Generator().manual_seed(EVAL_SEED)
    return curve_task_batch(n, g, size)


def fashion_dir() -> Path:
    """Folder holding Fashion-MNIST's idx files (env ``CIRCUITDSL_FASHION_MNIST`` overrides)."""
    return Path(os.environ.get(FASHION_DIR_ENV, FASHION_DEFAULT_DIR))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(
            f"{path} is truncated: expected {int(np.prod(dims))} values, got {data.size}"
        )
    return data.reshape(dims)


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``split`` ("train" or "test") as images ``[N, 1, 28, 28]`` in [0, 1], labels.

    Reads the gzipped idx files of the Debian package ``dataset-fashion-mnist``; raises
    ``FileNotFoundError`` saying how to install it when they are missing.
    """
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = fashion_dir()
    images_path = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = folder / f"{prefix}-labels-idx1-ubyte.gz"
    missing = [p for p in (images_path, labels_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST file {missing[0]} not found: install the Debian package "
            f"'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist) or point "
            f"{FASHION_DIR_ENV} at a folder with the idx .gz files"
        )
    images = torch.from_numpy(_read_idx(images_path).copy()).float().div_(255.0).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(labels_path).astype(np.int64))
    return images, labels
