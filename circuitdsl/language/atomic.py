"""Write files so that nothing is lost: a temporary file beside the target, fsync, rename.

Every file circuitdsl writes (`circ fmt` in place, `-o` outputs, rendered diagrams)
goes through `write_atomic`. A write that fails half-way -- a full disk, a read-only
folder, a killed process -- leaves the old file exactly as it was (or no file), never
a file cut mid-statement: the new bytes go to a temporary file in the same directory
(so the rename stays on one file system and is atomic), are flushed to the disk, and
only then replace the target with `os.replace`.

Failures are `DiagnosticError` E301 naming the path and the reason. `refuse_overwrite`
stops an output from replacing one of the command's own inputs (`circ check x.circ
-o x.circ` would otherwise overwrite the spec with its report). Torch-free.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError

__all__ = ["refuse_overwrite", "same_file", "write_atomic"]


def _fail(path: str | Path, reason: str, help: str | None = None) -> DiagnosticError:
    return DiagnosticError([Diagnostic(d.E_OUTPUT, f"cannot write `{path}`: {reason}", help=help)])


def write_atomic(path: str | Path, data: str | bytes, *, make_parents: bool = True) -> Path:
    """Replace `path` with `data` (text is written as UTF-8) all at once, or not at all.

    The target's permission bits are kept when it exists. Raises `DiagnosticError`
    E301 when the file cannot be written; the original file is then untouched and no
    temporary file is left behind.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        if target.is_dir():
            raise _fail(target, "it is a directory", help="give a file name")
        if make_parents:
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            bits = stat.S_IMODE(target.stat().st_mode)
            mode: int | None = bits
            if not os.access(target, os.W_OK) or not bits & 0o222:
                # Renaming over a read-only file would succeed (the folder is writable),
                # silently defeating the protection the user put on it; no write bit at
                # all counts as read-only even for root, who may write anything.
                raise _fail(
                    target,
                    "the file is read-only",
                    help="make it writable (`chmod u+w`) or write elsewhere",
                )
        except FileNotFoundError:
            mode = None
        # mkstemp makes its file 0600; a new file gets what open() would have given it
        chmod_to = mode if mode is not None else 0o666 & ~_umask()
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or Path(".")
        )
    except OSError as err:
        raise _fail(
            target,
            err.strerror or str(err),
            help="check that the folder exists and is writable",
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, chmod_to)
        os.replace(tmp, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        kept = " (the existing file is unchanged)" if mode is not None else ""
        raise _fail(
            target, f"{err.strerror or err}{kept}", help="free space or write elsewhere"
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)
    return target


def _umask() -> int:
    """The process's umask (read by setting it, so set it straight back)."""
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk; not every
    # platform can open a directory, and a failure here loses nothing already written.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder or Path("."), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` name the same file (through links and `..`), existing or not."""
    pa, pb = Path(a), Path(b)
    with contextlib.suppress(OSError, ValueError):
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    try:
        return pa.resolve() == pb.resolve()
    except (OSError, RuntimeError, ValueError):
        return os.path.abspath(pa) == os.path.abspath(pb)


def refuse_overwrite(output: str | Path | None, inputs: Iterable[str | Path | None]) -> None:
    """E301 when `output` is one of `inputs` (writing it would destroy that input)."""
    if output is None or str(output) == "-":
        return
    for given in inputs:
        if given is not None and str(given) != "-" and same_file(output, given):
            raise _fail(
                output,
                f"it is an input of this command (`{given}`); writing there would replace it",
                help="choose another output file",
            )
