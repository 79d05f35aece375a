"""Lucid's InceptionV1 ("inception5h"), the model of the Distill Circuits thread.

`InceptionV1` is a PyTorch module whose `state_dict()` keys and shapes are exactly
those of lucent's port (greentfrapp/lucent, `lucent/modelzoo/inceptionv1`), so
lucent's `inception5h.pth` loads into it unchanged. The forward pass follows the same
graph: asymmetric "SAME" pads, max-pools padded with -inf, local response norm, a
1008-way classifier.

Activation points carry Lucid's names: `conv2d0` ... `conv2d2`, `mixed3a` ...
`mixed5b` (the concatenation of the four post-ReLU branches), branch layers
(`mixed3b_1x1`, `mixed3b_3x3_bottleneck`, `mixed3b_3x3`, `mixed3b_5x5_bottleneck`,
`mixed3b_5x5`, `mixed3b_pool_reduce`), their pre-ReLU convs (`mixed3b_5x5_pre_relu`,
alias of the module `mixed3b_5x5_pre_relu_conv`), pools (`maxpool0`, `maxpool1`,
`maxpool4`, `maxpool10`, `mixed3b_pool`), `localresponsenorm0/1`, `avgpool0`,
`softmax2_pre_activation_matmul` and `softmax2`.

Input: RGB in lucent's range, i.e. ``x * 255 - 117`` for an image x in [0, 1]
(`preprocess`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from circuitdsl.models.base import ModelAdapter

WEIGHTS_URL = (
    "https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"
)
NUM_CLASSES = 1008

# name: (in, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool_reduce)
MIXED: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "mixed3a": (192, 64, 96, 128, 16, 32, 32),
    "mixed3b": (256, 128, 128, 192, 32, 96, 64),
    "mixed4a": (480, 192, 96, 204, 16, 48, 64),
    "mixed4b": (508, 160, 112, 224, 24, 64, 64),
    "mixed4c": (512, 128, 128, 256, 24, 64, 64),
    "mixed4d": (512, 112, 144, 288, 32, 64, 64),
    "mixed4e": (528, 256, 160, 320, 32, 128, 128),
    "mixed5a": (832, 256, 160, 320, 48, 128, 128),
    "mixed5b": (832, 384, 192, 384, 48, 128, 128),
}
BRANCHES = ("1x1", "3x3", "5x5", "pool_reduce")  # concatenation order


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """Lucent's input transform for this model: images in [0, 1] to ``x * 255 - 117``."""
    from circuitdsl.models.preprocess import LUCENT

    return LUCENT(x)


class _Cat(nn.Module):
    """Concatenation along channels; a module so that the layer has a name."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, 1)


def _pad_pool(x: torch.Tensor, pool: nn.Module, pad: tuple[int, int, int, int]) -> torch.Tensor:
    # TensorFlow "SAME" max-pooling: pad with -inf so the pad never wins the max.
    out: torch.Tensor = pool(F.pad(x, pad, value=float("-inf")))
    return out


class InceptionV1(nn.Module):
    """InceptionV1 with Lucid's layer names and lucent's parameter names."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d
        self.conv2d0_pre_relu_conv = conv(3, 64, 7, stride=2)
        self.conv2d1_pre_relu_conv = conv(64, 64, 1)
        self.conv2d2_pre_relu_conv = conv(64, 192, 3)
        # Registration order matches lucent's, so state_dict() lists keys in its order.
        for name, (c_in, c1, b3, c3, b5, c5, cp) in MIXED.items():
            setattr(self, f"{name}_1x1_pre_relu_conv", conv(c_in, c1, 1))
            setattr(self, f"{name}_3x3_bottleneck_pre_relu_conv", conv(c_in, b3, 1))
            setattr(self, f"{name}_5x5_bottleneck_pre_relu_conv", conv(c_in, b5, 1))
            setattr(self, f"{name}_pool_reduce_pre_relu_conv", conv(c_in, cp, 1))
            setattr(self, f"{name}_3x3_pre_relu_conv", conv(b3, c3, 3))
            setattr(self, f"{name}_5x5_pre_relu_conv", conv(b5, c5, 5))
        self.softmax2_pre_activation_matmul = nn.Linear(1024, NUM_CLASSES)

        # Parameter-free modules: the named activation points.
        self.conv2d0 = nn.ReLU()
        self.maxpool0 = nn.MaxPool2d(3, 2)
        self.localresponsenorm0 = nn.LocalResponseNorm(9, alpha=9.99999974738e-05, beta=0.5, k=1)
        self.conv2d1 = nn.ReLU()
        self.conv2d2 = nn.ReLU()
        self.localresponsenorm1 = nn.LocalResponseNorm(9, alpha=9.99999974738e-05, beta=0.5, k=1)
        self.maxpool1 = nn.MaxPool2d(3, 2)
        for name in MIXED:
            setattr(self, f"{name}_pool", nn.MaxPool2d(3, 1))
            for part in ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce"):
                setattr(self, f"{name}_{part}", nn.ReLU())
            setattr(self, name, _Cat())
        self.maxpool4 = nn.MaxPool2d(3, 2)
        self.maxpool10 = nn.MaxPool2d(3, 2)
        self.avgpool0 = nn.AvgPool2d(7, 1)
        self.softmax2 = nn.Softmax(dim=1)

    def _mixed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        def m(part: str) -> nn.Module:
            return getattr(self, part)  # type: ignore[no-any-return]

        b1 = m(f"{name}_1x1")(m(f"{name}_1x1_pre_relu_conv")(x))
        b3 = m(f"{name}_3x3_bottleneck")(m(f"{name}_3x3_bottleneck_pre_relu_conv")(x))
        b3 = m(f"{name}_3x3")(m(f"{name}_3x3_pre_relu_conv")(F.pad(b3, (1, 1, 1, 1))))
        b5 = m(f"{name}_5x5_bottleneck")(m(f"{name}_5x5_bottleneck_pre_relu_conv")(x))
        b5 = m(f"{name}_5x5")(m(f"{name}_5x5_pre_relu_conv")(F.pad(b5, (2, 2, 2, 2))))
        bp = _pad_pool(x, m(f"{name}_pool"), (1, 1, 1, 1))
        bp = m(f"{name}_pool_reduce")(m(f"{name}_pool_reduce_pre_relu_conv")(bp))
        out: torch.Tensor = m(name)(b1, b3, b5, bp)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (1008) for a batch in lucent's input range."""
        x = self.conv2d0(self.conv2d0_pre_relu_conv(F.pad(x, (2, 3, 2, 3))))
        x = self.localresponsenorm0(_pad_pool(x, self.maxpool0, (0, 1, 0, 1)))
        x = self.conv2d1(self.conv2d1_pre_relu_conv(x))
        x = self.conv2d2(self.conv2d2_pre_relu_conv(F.pad(x, (1, 1, 1, 1))))
        x = _pad_pool(self.localresponsenorm1(x), self.maxpool1, (0, 1, 0, 1))
        x = self._mixed("mixed3a", x)
        x = self._mixed("mixed3b", x)
        x = _pad_pool(x, self.maxpool4, (0, 1, 0, 1))
        for name in ("mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e"):
            x = self._mixed(name, x)
        x = _pad_pool(x, self.maxpool10, (0, 1, 0, 1))
        x = self._mixed("mixed5a", x)
        x = self._mixed("mixed5b", x)
        x = self.avgpool0(x)
        x = self.softmax2_pre_activation_matmul(x.reshape(-1, 1024))
        probs: torch.Tensor = self.softmax2(x)
        return probs


def layer_aliases() -> dict[str, str]:
    """Lucid's pre-ReLU names (`mixed3b_5x5_pre_relu`) for the conv modules, and the
    Circuits articles' short names (`4c` for `mixed4c`, as in `4c:447`)."""
    out = {name[len("mixed") :]: name for name in MIXED}
    out["conv2d0_pre_relu"] = "conv2d0_pre_relu_conv"
    out["conv2d1_pre_relu"] = "conv2d1_pre_relu_conv"
    out["conv2d2_pre_relu"] = "conv2d2_pre_relu_conv"
    for name in MIXED:
        for part in ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce"):
            out[f"{name}_{part}_pre_relu"] = f"{name}_{part}_pre_relu_conv"
    return out


def download_weights(dest: str | Path) -> Path:
    """Fetch lucent's `inception5h.pth` from its published URL (needs internet; opt-in)."""
    import urllib.request

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Into a temporary file, renamed when complete: an interrupted download must not
    # leave a truncated file in the cache, where the next run would find it.
    partial = dest.with_name(f".{dest.name}.part")
    try:
        urllib.request.urlretrieve(WEIGHTS_URL, partial)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def build(weights: str | Path | None = None, *, download: bool = False) -> ModelAdapter:
    """The `inceptionv1` adapter: lucent's weights from `weights` (required).

    Without a file this raises E210 explaining where the weights come from; with
    ``download=True`` it fetches them into torch's cache directory first.
    """
    from circuitdsl.language.diagnostics import E_WEIGHTS_MISSING, Diagnostic, DiagnosticError
    from circuitdsl.models.base import TracedAdapter
    from circuitdsl.models.checkpoint import load_state_dict_into

    if weights is None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / "inception5h.pth"
        if cached.is_file():
            weights = cached
        elif download:
            weights = download_weights(cached)
        else:
            raise DiagnosticError(
                [
                    Diagnostic(
                        E_WEIGHTS_MISSING,
                        "the `inceptionv1` model needs its weights: lucent's `inception5h.pth`"
                        " (about 28 MB)",
                        help=f"download it from {WEIGHTS_URL} and pass `--weights"
                        " inception5h.pth` (in Python: `load_model('inceptionv1',"
                        " weights='inception5h.pth')`), or put it at "
                        f"{cached}",
                    )
                ]
            )
    module = InceptionV1()
    missing = load_state_dict_into(module, weights, model_name="inceptionv1")
    return TracedAdapter(
        "inceptionv1",
        module.eval(),
        weights_path=str(weights),
        example_input=torch.zeros(1, 3, 224, 224),
        aliases=layer_aliases(),
        # Lucid's names are the ones the Circuits articles use.
        preferred=frozenset(a for a in layer_aliases() if a.endswith("_pre_relu")),
        preprocess="lucent",
        missing_parameters=missing,
    )
