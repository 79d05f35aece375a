"""Reading weight files, the one place that does: safe loading and precise errors.

Input: a path (PyTorch `.pt`/`.pth` or safetensors). Output: a state dict of tensors,
or a `DiagnosticError` that says what is wrong and what to do -- never a traceback.

* PyTorch files load with ``torch.load(..., weights_only=True)``: a pickle that would
  run code is refused (E213) and nothing in it is executed.
* A missing file is E210, an unreadable or truncated one E211, and a state dict that
  does not fit the model E212, listing missing, unexpected and mis-shaped keys by
  name in one paragraph, the way `load_state_dict` does.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from circuitdsl.language.diagnostics import (
    E_WEIGHTS_CORRUPT,
    E_WEIGHTS_MISMATCH,
    E_WEIGHTS_MISSING,
    E_WEIGHTS_UNSAFE,
    Diagnostic,
    DiagnosticError,
)

_LIST_LIMIT = 12


def _fail(code: str, message: str, help: str | None = None) -> DiagnosticError:
    return DiagnosticError([Diagnostic(code, message, help=help)])


def _names(keys: list[str]) -> str:
    shown = ", ".join(f"`{k}`" for k in keys[:_LIST_LIMIT])
    more = len(keys) - _LIST_LIMIT
    return shown + (f" and {more} more" if more > 0 else "")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors stored in a weight file (PyTorch pickle-free load or safetensors)."""
    p = Path(path)
    if not p.exists():
        raise _fail(
            E_WEIGHTS_MISSING,
            f"weight file `{p}` does not exist",
            help="check the path given to `--weights`",
        )
    if not p.is_file():
        raise _fail(E_WEIGHTS_MISSING, f"weight file `{p}` is not a file")
    with p.open("rb") as fh:
        head = fh.read(8)
    if p.suffix == ".safetensors" or (len(head) == 8 and not head.startswith((b"PK", b"\x80"))):
        return _read_safetensors(p)
    try:
        return _read_torch(p)
    except DiagnosticError as err:
        # A safetensors file's 8-byte length header can start like a pickle: try it.
        # (Parsing safetensors never runs code, so trying it after a refusal is safe.)
        if head.startswith(b"PK"):
            raise
        try:
            return _read_safetensors(p)
        except DiagnosticError:
            raise err from None


def _read_safetensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file

        return dict(load_file(str(p)))
    except Exception as exc:  # safetensors raises several error types for bad files
        raise _fail(
            E_WEIGHTS_CORRUPT,
            f"weight file `{p}` is not a readable safetensors or PyTorch file ({_short(exc)})",
            help="the file may be truncated or of another format; download it again",
        ) from None


def _short(exc: BaseException, limit: int = 200) -> str:
    """The exception's first line, shortened at a sentence or word boundary, never mid-word."""
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else type(exc).__name__
    if len(line) <= limit:
        return line
    cut = line[:limit]
    end = cut.rfind(". ")
    if end > 0:  # whole sentences fit: end after the last of them
        return cut[: end + 1]
    return cut[: cut.rfind(" ")].rstrip(",;:") + " ..." if " " in cut else cut + " ..."


def _read_torch(p: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global outside its allow-list before calling it.
        raise _fail(
            E_WEIGHTS_UNSAFE,
            f"weight file `{p}` contains Python objects that would run code when loaded;"
            " it was not loaded",
            help="only plain tensors are accepted: save the weights with"
            " `torch.save(model.state_dict(), path)` or as safetensors. Detail: " + _short(exc),
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _fail(
            E_WEIGHTS_CORRUPT,
            f"weight file `{p}` cannot be read: it is truncated or not a PyTorch/safetensors"
            f" file ({_short(exc)})",
            help="download or save the file again",
        ) from None
    return _as_state_dict(obj, p)


def _as_state_dict(obj: Any, p: Path) -> dict[str, torch.Tensor]:
    # Training checkpoints often wrap the weights: {"state_dict": ...} or {"model": ...}.
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model", "weights"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise _fail(
            E_WEIGHTS_CORRUPT,
            f"weight file `{p}` does not hold a state dict (a mapping of names to tensors)",
            help="save the weights with `torch.save(model.state_dict(), path)`",
        )
    return {str(k): v for k, v in obj.items()}


def check_state_dict(
    module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, model_name: str
) -> None:
    """Raise E212 listing every missing, unexpected and mis-shaped key, all at once."""
    own = module.state_dict()
    # DataParallel / torch.compile prefixes are a common, harmless mismatch.
    for prefix in ("module.", "_orig_mod."):
        if (
            state
            and all(k.startswith(prefix) for k in state)
            and not any(k.startswith(prefix) for k in own)
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"`{k}` (file {list(state[k].shape)}, model {list(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    common = len(own) - len(missing)
    if unexpected and common < len(own) / 2:
        lead = f"`{source}` looks like the weights of another model, not `{model_name}`"
    else:
        lead = f"`{source}` does not fit `{model_name}`"
    if missing:
        parts.append(f"missing keys ({len(missing)}): {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {_names(unexpected)}")
    if shapes:
        shown = ", ".join(shapes[:_LIST_LIMIT])
        more = len(shapes) - _LIST_LIMIT
        parts.append(
            f"wrong shapes ({len(shapes)}): {shown}" + (f" and {more} more" if more > 0 else "")
        )
    raise _fail(
        E_WEIGHTS_MISMATCH,
        lead + "; " + "; ".join(parts) + ".",
        help=f"pass the weight file saved from `{model_name}` itself (its `state_dict()`),"
        " or choose the model these weights belong to with `--model`",
    )


def load_state_dict_into(
    module: nn.Module, path: str | Path, *, model_name: str, assign: bool = False
) -> None:
    """Read `path`, check it against `module`, and load it (strict).

    With `assign`, the file's tensors replace the module's (which may then live on
    the meta device: constructing a big model there skips its random initialisation).
    """
    state = read_state_dict(path)
    check_state_dict(module, state, source=str(path), model_name=model_name)
    own = module.state_dict()
    for prefix in ("module.", "_orig_mod."):
        if (
            state
            and all(k.startswith(prefix) for k in state)
            and not any(k.startswith(prefix) for k in own)
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=assign)
