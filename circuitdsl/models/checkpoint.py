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
* Checkpoints as saved load too: nested under `state_dict`/`model`/`module`
  (`unwrap_checkpoint`), keys prefixed `module.`/`model.` or saved from a submodule
  (`normalise_keys`), and backbones without their head (`missing_head`): the missing
  parameters are returned, and adapters refuse claims that need them (E217).
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import re
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
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


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex (weights files are named by it in reports and caches)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    return _keep_metadata(out, state)  # module versions some modules need to load


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


#: Where training checkpoints keep the weights: Lightning `state_dict`, many
#: repositories `model`/`model_state_dict`, some `module`/`weights`/`net`.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "weights", "net")


def unwrap_checkpoint(obj: Any) -> Any:
    """The state dict inside a training checkpoint (``{"state_dict": ..., "epoch": 3}``).

    Unwraps repeatedly (``{"model": {"state_dict": ...}}``); a mapping whose values are
    all tensors is the state dict itself.
    """
    for _ in range(4):
        if not isinstance(obj, Mapping) or all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
        else:
            return obj
    return obj


def _as_state_dict(obj: Any, p: Path) -> dict[str, torch.Tensor]:
    obj = unwrap_checkpoint(obj)
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise _fail(
            E_WEIGHTS_CORRUPT,
            f"weight file `{p}` does not hold a state dict (a mapping of names to tensors)",
            help="save the weights with `torch.save(model.state_dict(), path)`",
        )
    return _keep_metadata({str(k): v for k, v in obj.items()}, obj)


# ---- keys as saved: wrappers, prefixes, backbones without their head ---------------

#: Prefixes that training code adds to every key: DataParallel/DDP (`module.`),
#: Lightning and many repositories (`model.`), torch.compile (`_orig_mod.`).
KEY_PREFIXES = ("module.", "model.", "_orig_mod.")


def _keep_metadata(
    state: dict[str, torch.Tensor],
    source: Any,
    rename: Callable[[str], str | None] = lambda k: k,
) -> dict[str, torch.Tensor]:
    """`state` carrying `source`'s `_metadata` (per-module versions), keys renamed.

    `state_dict()` records each module's version there and some modules need it to
    load (torchvision's MNASNet refuses a state dict without it).
    """
    meta = getattr(source, "_metadata", None)  # what `state_dict()` attaches
    if not isinstance(meta, Mapping):
        return state
    out: OrderedDict[str, torch.Tensor] = OrderedDict(state)
    renamed = {}
    for k, v in meta.items():
        new = rename(str(k))
        if new is not None:
            renamed[new] = v
    out._metadata = renamed  # type: ignore[attr-defined]
    return out


def _matches(keys: Mapping[str, Any] | list[str], own: Mapping[str, Any]) -> int:
    return sum(1 for k in keys if k in own)


def normalise_keys(
    state: Mapping[str, torch.Tensor], own: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """`state` with its keys renamed to the model's where the file's naming differs.

    Strips wrapper prefixes shared by every key (`module.`, `model.`, `_orig_mod.`,
    repeatedly: `module.model.`) when that makes more keys match, and adds the name of
    a top-level submodule when the file holds only that submodule (a backbone saved as
    `model.features.state_dict()` has keys `0.weight`, the model `features.0.weight`).
    """
    out = _keep_metadata(dict(state), state)
    for _ in range(4):  # wrappers nest at most a few deep
        for prefix in KEY_PREFIXES:
            if (
                out
                and all(k.startswith(prefix) for k in out)
                and not any(k.startswith(prefix) for k in own)
            ):
                stripped = {k[len(prefix) :]: v for k, v in out.items()}
                if _matches(stripped, own) >= _matches(out, own):
                    out = _keep_metadata(stripped, out, _strip_module(prefix))
                    break
        else:
            break
    if out and _matches(out, own) == 0:
        tops = sorted({k.split(".", 1)[0] for k in own if "." in k})
        fits = [t for t in tops if all(f"{t}.{k}" in own for k in out)]
        if len(fits) == 1:
            top = fits[0]
            added = {f"{top}.{k}": v for k, v in out.items()}
            out = _keep_metadata(added, out, lambda m: f"{top}.{m}" if m else top)
    return out


def _strip_module(prefix: str) -> Callable[[str], str | None]:
    """Rename a metadata key (a module path) when `prefix` is stripped from every key."""
    wrapper = prefix[:-1]

    def rename(path: str) -> str | None:
        if path == wrapper:
            return ""
        if path.startswith(prefix):
            return path[len(prefix) :]
        return None  # the wrapper's parents: not part of the model

    return rename


def _harmless(key: str) -> bool:
    # BatchNorm's step counter: absent from old checkpoints, never used in eval mode
    return key.endswith("num_batches_tracked")


def missing_head(own: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
    """The model's keys `state` lacks, when they are all the model's last ones (its head).

    A backbone checkpoint covers the network from the input on and stops; what it lacks
    comes after everything it has, in the model's own order. Returns [] when nothing is
    missing; raises nothing: `check_state_dict` decides what is an error.
    """
    order = [k for k in own if not _harmless(k)]
    present = [i for i, k in enumerate(order) if k in state]
    if not present or present != list(range(len(present))):
        return []  # nothing, or a gap before the last present key: not a backbone
    return order[len(present) :]


def summarise_keys(keys: list[str]) -> str:
    """`classifier.*` (6 tensors): keys grouped by their top-level module, for one line."""
    groups: dict[str, int] = {}
    for k in keys:
        top = k.split(".", 1)[0]
        groups[top] = groups.get(top, 0) + 1
    parts = [f"`{g}.*` ({n})" if n > 1 or "." in g else f"`{g}`" for g, n in groups.items()]
    return ", ".join(parts[:_LIST_LIMIT]) + (
        f" and {len(parts) - _LIST_LIMIT} more" if len(parts) > _LIST_LIMIT else ""
    )


def check_state_dict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    model_name: str,
    allow_missing_head: bool = False,
) -> list[str]:
    """Raise E212 listing every missing, unexpected and mis-shaped key, all at once.

    `state` is taken as it is (see `normalise_keys`). With `allow_missing_head`, keys
    missing only at the end of the network (a backbone without its classifier) are
    not an error: they are returned, so that the caller can say what was skipped and
    refuse claims that need them. An empty file and a file without the network's first
    layers (a head-only checkpoint) are always errors.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not _harmless(k)]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"`{k}` (file {list(state[k].shape)}, model {list(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not state:
        raise _fail(
            E_WEIGHTS_MISMATCH,
            f"`{source}` holds no tensors at all, so it has no weights for `{model_name}`",
            help=f"pass the weight file saved from `{model_name}` (its `state_dict()`)",
        )
    head = missing_head(own, state) if allow_missing_head and not (unexpected or shapes) else []
    if head and len(head) == len(missing):
        return head
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
        return []
    parts = []
    common = len(own) - len(missing)
    if unexpected and common < len(own) / 2:
        lead = f"`{source}` looks like the weights of another model, not `{model_name}`"
    elif missing and not unexpected and not shapes and missing[0] == next(iter(own), None):
        lead = (
            f"`{source}` lacks the first layers of `{model_name}` (a head-only checkpoint?);"
            " a file may leave out the last layers, never the first"
        )
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
    module: nn.Module,
    path: str | Path,
    *,
    model_name: str,
    assign: bool = False,
    allow_missing_head: bool = True,
) -> frozenset[str]:
    """Read `path`, normalise its keys, check it against `module`, and load it.

    Returns the parameters the file did not have (a backbone checkpoint without the
    classifier; see `check_state_dict`): they are zero if the module was built on the
    meta device, and adapters refuse claims that need them (E217). With `assign`, the
    file's tensors replace the module's (which may then live on the meta device:
    constructing a big model there skips its random initialisation).
    """
    state = read_state_dict(path)
    own = module.state_dict()
    state = normalise_keys(state, own)
    missing = check_state_dict(
        module,
        state,
        source=str(path),
        model_name=model_name,
        allow_missing_head=allow_missing_head,
    )
    if missing or any(_harmless(k) and k not in state for k in own):
        # what the file lacks: zeros, where the module has no real storage (meta) yet
        state = _keep_metadata(dict(state), state)
        for k in own:
            if k not in state and own[k].is_meta:
                state[k] = torch.zeros(own[k].shape, dtype=own[k].dtype)
    for key, tensor in own.items():
        if key in state and state[key].dtype != tensor.dtype:
            state[key] = state[key].to(tensor.dtype)  # an int64 counter saved as float, etc.
    # every key was checked above; the ones left out are the head and BN step counters
    try:
        module.load_state_dict(state, strict=False, assign=assign)
    except (RuntimeError, ValueError, KeyError) as exc:  # a module's own loading hook
        raise _fail(
            E_WEIGHTS_MISMATCH,
            f"`{path}` does not load into `{model_name}`: {_short(exc)}",
            help=f"pass the weight file saved from `{model_name}` itself (its `state_dict()`)",
        ) from None
    return frozenset(missing)
