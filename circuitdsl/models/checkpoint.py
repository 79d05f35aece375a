"""Reading weight files, the one place that does: safe loading and precise errors.

Input: a path (PyTorch `.pt`/`.pth` or safetensors). Output: a state dict of tensors,
or a `DiagnosticError` that says what is wrong and what to do -- never a traceback.

* PyTorch files load with ``torch.load(..., weights_only=True)``: a pickle that would
  run code is refused (E213) and nothing in it is executed.
* A missing file is E210, an unreadable or truncated one E211, and a state dict that
  does not fit the model E212, listing missing, unexpected and mis-shaped keys by
  name in one paragraph, the way `load_state_dict` does.
* "Would run code" (E213) is said only of a pickle that names a real Python object
  outside torch's allow-list; a damaged file whose bytes merely decode to nonsense
  (a truncated name, an unknown opcode) is E211.
* Floating weights of another precision (float16, bfloat16, float64) are converted to
  float32 with a note (a `WeightsNote` warning); integer or bool tensors where the model
  has floating parameters are E221; NaN or Inf values are E222, naming the tensors.
* BatchNorm's `num_batches_tracked` counters may be absent (torchvision's published
  files lack them; torch's own strict loading accepts that).
"""

from __future__ import annotations

import importlib.util
import pickle
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from circuitdsl.language.diagnostics import (
    E_WEIGHTS_CORRUPT,
    E_WEIGHTS_DTYPE,
    E_WEIGHTS_MISMATCH,
    E_WEIGHTS_MISSING,
    E_WEIGHTS_NONFINITE,
    E_WEIGHTS_UNSAFE,
    Diagnostic,
    DiagnosticError,
)

_LIST_LIMIT = 12


class WeightsNote(UserWarning):
    """Something about a weight file the user should know, though it loaded (a dtype
    conversion). The CLI prints these as `note:` lines."""


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
    return _checked(_read_any(p, head), p)


def _read_any(p: Path, head: bytes) -> dict[str, torch.Tensor]:
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


def _checked(state: dict[str, torch.Tensor], p: Path) -> dict[str, torch.Tensor]:
    """Floating tensors as float32 (with a note), and none holding NaN or Inf (E222)."""
    converted: dict[str, list[str]] = {}
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if v.is_floating_point() and v.dtype != torch.float32:
            converted.setdefault(str(v.dtype).removeprefix("torch."), []).append(k)
            v = v.float()
        out[k] = v
    bad = [k for k, v in out.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise _fail(
            E_WEIGHTS_NONFINITE,
            f"weight file `{p}` holds NaN or infinite values in {len(bad)} tensor(s):"
            f" {_names(bad)}",
            help="the training run diverged or the file is damaged; claims measured on"
            " these weights would mean nothing. Use a checkpoint from before the divergence",
        )
    if converted:
        kinds = ", ".join(f"{len(keys)} {dtype}" for dtype, keys in sorted(converted.items()))
        warnings.warn(
            f"weight file `{p}`: converted {kinds} tensor(s) to float32 for measuring",
            WeightsNote,
            stacklevel=3,
        )
    return out


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


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _read_torch(p: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            # A damaged file can look like an odd pickle protocol; torch warns, then fails.
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global outside its allow-list before calling it, but
        # it also refuses bytes that are no valid pickle at all: tell the two apart.
        name = _refused_global(exc)
        if name is not None and _names_real_code(name):
            raise _fail(
                E_WEIGHTS_UNSAFE,
                f"weight file `{p}` contains Python objects that would run code when loaded"
                f" (`{name}`); it was not loaded",
                help="only plain tensors are accepted: save the weights with"
                " `torch.save(model.state_dict(), path)` or as safetensors",
            ) from None
        raise _damaged(p, exc) from None
    except Exception as exc:  # a damaged pickle fails in many ways
        # (RuntimeError, EOFError, BadZipFile, KeyError, IndexError, struct.error, ...)
        raise _damaged(p, exc) from None
    return _as_state_dict(obj, p)


def _damaged(p: Path, exc: BaseException) -> DiagnosticError:
    return _fail(
        E_WEIGHTS_CORRUPT,
        f"weight file `{p}` cannot be read: it is truncated, damaged or not a"
        f" PyTorch/safetensors file ({_detail(exc)})",
        help="download or save the file again",
    )


def _detail(exc: BaseException) -> str:
    if isinstance(exc, pickle.UnpicklingError):
        # torch's message is a page of advice about weights_only; keep the error itself.
        found: list[str] = re.findall(r"WeightsUnpickler error: (.*)", str(exc))
        if found:
            return found[-1].strip()[:200]
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        for ln in lines:
            if ln.startswith("Unsupported operand"):
                return ln[:200]
    return f"{type(exc).__name__}: {_short(exc)}"


_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+?)(?: |$)")


def _refused_global(exc: BaseException) -> str | None:
    """The `module.name` torch's weights_only unpickler refused, if it refused a global."""
    found = _GLOBAL.findall(str(exc))
    return found[-1] if found else None


def _names_real_code(name: str) -> bool:
    """Whether `module.attr` could be a real object (not bytes damaged into a name).

    Looked up without importing anything: a module already imported must have the
    attribute; otherwise its top-level package must at least be installed. A name cut
    short by truncation (`torch.`, `collections.OrderedDic`) is damage, not code.
    """
    module, _, attr = name.rpartition(".")
    if (
        not module
        or not attr
        or not all(part.isidentifier() for part in [*module.split("."), attr])
    ):
        return False
    loaded = sys.modules.get(module)
    if loaded is not None:
        return hasattr(loaded, attr)
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


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


_COUNTER = "num_batches_tracked"


def _strip_prefix(
    module: nn.Module, state: Mapping[str, torch.Tensor]
) -> Mapping[str, torch.Tensor]:
    own = module.state_dict()
    # DataParallel / torch.compile prefixes are a common, harmless mismatch.
    for prefix in ("module.", "_orig_mod."):
        if (
            state
            and all(k.startswith(prefix) for k in state)
            and not any(k.startswith(prefix) for k in own)
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def check_state_dict(
    module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, model_name: str
) -> None:
    """Raise E212 listing every missing, unexpected and mis-shaped key, all at once;
    E221 when tensors that should be floating weights hold integers or bools."""
    own = module.state_dict()
    state = _strip_prefix(module, state)
    # BatchNorm's step counter is not a weight: torch's strict loading fills it in.
    missing = [k for k in own if k not in state and not k.endswith(_COUNTER)]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"`{k}` (file {list(state[k].shape)}, model {list(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        integral = [
            f"`{k}` ({str(state[k].dtype).removeprefix('torch.')})"
            for k in own
            if k in state and own[k].is_floating_point() and not state[k].is_floating_point()
        ]
        if integral:
            shown = ", ".join(integral[:_LIST_LIMIT])
            more = len(integral) - _LIST_LIMIT
            raise _fail(
                E_WEIGHTS_DTYPE,
                f"`{source}` holds {len(integral)} non-floating tensor(s) where"
                f" `{model_name}` has floating weights: {shown}"
                + (f" and {more} more" if more > 0 else ""),
                help="integer or bool weights are quantised or not weights at all; save the"
                " float state dict (`model.float().state_dict()`)",
            )
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
    state = dict(_strip_prefix(module, state))
    for k, v in module.state_dict().items():
        if k.endswith(_COUNTER) and k not in state:
            state[k] = torch.zeros((), dtype=v.dtype)  # a real tensor, even on meta
        elif k in state and state[k].dtype != v.dtype:
            state[k] = state[k].to(v.dtype)  # an int64 counter saved as float, etc.
    module.load_state_dict(state, strict=True, assign=assign)
