"""Train a zoo model reproducibly: ``python -m circuitdsl.zoo.train NAME --seed S [--out DIR]``.

Runs on one CPU thread with deterministic algorithms, so a given (name, seed, steps) always
produces the same weights on the same torch build. Writes ``NAME_seedS.safetensors`` and a
JSON metadata file beside it (task, accuracy, seed, time, torch version, command).

With ``--checkpoint-every N`` it also saves the weights before the first step and after every
N-th (and the last) into ``OUT/NAME_seedS/step_XXXXXX.safetensors`` (XXXXXX = optimiser steps
taken), each written atomically, for `circ check --checkpoints` (docs/training.md). Saving
draws no random numbers, so the final weights are the same with or without checkpoints.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from circuitdsl.language.atomic import write_atomic
from circuitdsl.zoo import nets
from circuitdsl.zoo.data import (
    EVAL_SEED,
    curve_eval_set,
    curve_task_batch,
    load_fashion_mnist,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "weights"

CHECK_SIZE = 512
"""Images of the held-out set whose accuracy is recorded separately for fast tests."""


@dataclass(frozen=True)
class Recipe:
    """How one architecture is trained: factory, default steps, batch size and learning rate."""

    factory: Callable[[], nn.Module]
    steps: int
    batch_size: int
    lr: float
    task: str
    data: str


RECIPES: dict[str, Recipe] = {
    "curvenet": Recipe(
        nets.curvenet,
        steps=2000,
        batch_size=128,
        lr=3e-3,
        task="classify generated 32x32 images: curve orientation (8 bins of 45°, convex side) "
        "or line orientation (4 bins)",
        data="circuitdsl.zoo.data.curve_task_batch: a fresh generated batch every step; "
        f"held-out set = 2000 images from seed {EVAL_SEED}",
    ),
    "fashionnet": Recipe(
        nets.fashionnet,
        steps=1500,
        batch_size=128,
        lr=2e-3,
        task="Fashion-MNIST 10-way classification (28x28 greyscale)",
        data="Fashion-MNIST train split (Debian package dataset-fashion-mnist), batches drawn "
        "by a seeded permutation; evaluated on the 10000-image test split",
    ),
}


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on a labelled set, evaluated in batches of 500."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), 500):
            pred = model(images[i : i + 500]).argmax(1)
            correct += int((pred == labels[i : i + 500]).sum())
    return correct / len(images)


def checkpoint_filename(step: int) -> str:
    """File name of the checkpoint after ``step`` optimiser steps: ``step_000500.safetensors``."""
    return f"step_{step:06d}.safetensors"


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file so that a reader never sees half of it.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file
    is renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows): a sweep that
    globs the folder while training runs, or a crash mid-write, never meets a torn file.
    """
    from safetensors.torch import save as save_bytes

    write_atomic(path, save_bytes(tensors, metadata=metadata))


def train(
    name: str,
    seed: int,
    steps: int | None = None,
    *,
    checkpoint_every: int | None = None,
    checkpoint_dir: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train model ``name`` from ``seed``; returns the model and its metadata dict.

    With ``checkpoint_every`` N (and ``checkpoint_dir``), the weights before training and
    after every N-th step and the last step are saved there as ``step_XXXXXX.safetensors``.
    """
    if checkpoint_every is not None and (checkpoint_every < 1 or checkpoint_dir is None):
        raise SystemExit("--checkpoint-every needs a whole number >= 1 and an output folder")
    if name not in RECIPES:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    steps = recipe.steps if steps is None else steps
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    model = recipe.factory()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(steps, 1))

    if name == "fashionnet":
        train_x, train_y = load_fashion_mnist("train")
        order = torch.randperm(len(train_x), generator=g)

        def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            start = (step * recipe.batch_size) % (len(order) - recipe.batch_size)
            idx = order[start : start + recipe.batch_size]
            return train_x[idx], train_y[idx]
    else:

        def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            return curve_task_batch(recipe.batch_size, g)

    def checkpoint(done: int) -> None:
        if checkpoint_every is None or checkpoint_dir is None:
            return
        tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        atomic_save(
            tensors,
            checkpoint_dir / checkpoint_filename(done),
            # One entry, as in `save`: several would be written in hash order.
            {"model": f"{name} seed {seed} step {done}"},
        )

    start = time.perf_counter()
    cpu_start = time.process_time()
    checkpoint(0)
    model.train()
    for step in range(steps):
        x, y = next_batch(step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.4f}", flush=True)
        if checkpoint_every is not None and (
            (step + 1) % checkpoint_every == 0 or step + 1 == steps
        ):
            checkpoint(step + 1)
    train_time = time.perf_counter() - start
    # CPU time is the honest cost on a shared machine, where wall time depends on the load.
    cpu_time = time.process_time() - cpu_start

    if name == "fashionnet":
        eval_x, eval_y = load_fashion_mnist("test")
    else:
        eval_x, eval_y = curve_eval_set(2000)
    acc = accuracy(model, eval_x, eval_y)
    acc_check = accuracy(model, eval_x[:CHECK_SIZE], eval_y[:CHECK_SIZE])
    meta = {
        "name": name,
        "seed": seed,
        "task": recipe.task,
        "data": recipe.data,
        "steps": steps,
        "batch_size": recipe.batch_size,
        "optimizer": f"Adam, one-cycle lr schedule, max lr {recipe.lr}",
        "accuracy": round(acc, 4),
        "eval_images": len(eval_x),
        "accuracy_check": round(acc_check, 4),
        "check_images": CHECK_SIZE,
        "training_time_s": round(train_time, 1),
        "training_cpu_s": round(cpu_time, 1),
        "threads": 1,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "command": command_line(name, seed, steps if steps != recipe.steps else None),
    }
    return model, meta


def command_line(name: str, seed: int, steps: int | None) -> str:
    """The exact command that reproduces a run."""
    cmd = f"python -m circuitdsl.zoo.train {name} --seed {seed}"
    return cmd if steps is None else f"{cmd} --steps {steps}"


def weights_filename(name: str, seed: int) -> str:
    """File name of a model's weights, e.g. ``curvenet_seed0.safetensors``."""
    return f"{name}_seed{seed}.safetensors"


def save(model: nn.Module, meta: dict[str, Any], out_dir: Path) -> Path:
    """Write weights (safetensors) and metadata (JSON) into ``out_dir``; return the weights."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / weights_filename(meta["name"], meta["seed"])
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # One metadata entry only: safetensors writes the metadata map in hash order, so two
    # entries would make the file's bytes (and its sha256) differ from run to run.
    save_file(tensors, str(path), metadata={"model": f"{meta['name']} seed {meta['seed']}"})
    meta = {**meta, "weights": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m circuitdsl.zoo.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("name", choices=sorted(RECIPES), help="model to train")
    parser.add_argument("--seed", type=int, default=0, help="seed of init and data order")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: recipe)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="also save the weights at step 0, every N steps and the last step, to "
        "OUT/NAME_seedS/step_XXXXXX.safetensors",
    )
    args = parser.parse_args(argv)
    ckpt_dir = args.out / f"{args.name}_seed{args.seed}" if args.checkpoint_every else None
    model, meta = train(
        args.name,
        args.seed,
        args.steps,
        checkpoint_every=args.checkpoint_every,
        checkpoint_dir=ckpt_dir,
    )
    path = save(model, meta, args.out)
    print(
        f"{args.name} seed {args.seed}: accuracy {meta['accuracy']:.4f} on "
        f"{meta['eval_images']} held-out images; training {meta['training_time_s']:.1f} s"
    )
    print(f"wrote {path}", file=sys.stderr)
    if ckpt_dir is not None:
        print(f"checkpoints in {ckpt_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
