"""The published benchmark folder: assembled beside the old one, swapped in whole.

A build never writes into ``OUT`` itself. It assembles the new benchmark in a staging
folder beside it (``.OUT.staging-PID``, same file system) and, once every file is
written, swaps the two: on Linux with one ``renameat2(RENAME_EXCHANGE)`` (readers see the
old folder or the new one, never a mix), elsewhere with two renames (a crash between them
leaves the old folder at ``.OUT.previous``, which the next build puts back). A build that
gives no repository, or that fails, leaves ``OUT`` as it was. ``OUT`` must be absent,
empty or a benchmark (a folder whose files are those of its ``manifest.json``): anything
else is refused unless the caller asks to replace it.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
from pathlib import Path

from repopeftbench.errors import UserError

# Files a build writes that its manifest does not list (the manifest itself).
UNLISTED = {"manifest.json"}


class OutputDirError(UserError):
    """``--out`` is not a folder a build may replace."""


def _is_stray_temporary(rel: str) -> bool:
    return Path(rel).name.startswith(".") and rel.endswith(".tmp")


def check_replaceable(out: Path, overwrite: bool = False) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder that is not a benchmark
    (unless ``overwrite``)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputDirError(f"{out}: exists and is not a folder; give another --out")
    if not out.exists() or overwrite:
        return
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    if not present:
        return
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        listed = set(manifest["files"]) if manifest.get("tool") == "repopeftbench" else None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        listed = None
    if listed is None:
        raise OutputDirError(f"{out}: not empty and not a benchmark (no manifest.json written by "
                             f"repopeftbench); refusing to replace it: give an empty or new "
                             f"--out, or pass --overwrite to replace the folder whole")
    foreign = [p for p in present if p not in listed | UNLISTED and not _is_stray_temporary(p)]
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise OutputDirError(f"{out}: holds files that are not part of its benchmark "
                             f"({', '.join(foreign[:3])}{more}); a build replaces the folder "
                             f"whole: move them, or pass --overwrite")


def staging_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.staging-{os.getpid()}"


def previous_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.previous"


def remove_stray_temporaries(directory: Path) -> int:
    """Delete hidden ``*.tmp`` files that a killed process left in ``directory`` (call with
    the build lock held); returns how many."""
    n = 0
    for p in directory.rglob(".*.tmp") if directory.exists() else []:
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def recover(out: Path) -> None:
    """Undo what an interrupted build left: put back a folder a two-rename swap had moved
    aside, and remove stale staging folders (call with the build lock held)."""
    prev = previous_dir(out)
    if prev.exists():
        if out.exists():
            shutil.rmtree(prev, ignore_errors=True)
        else:
            os.replace(prev, out)
    for stale in out.parent.glob(f".{out.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


def new_staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = staging_dir(out)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    return stage


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def swap_in(stage: Path, out: Path) -> None:
    """Make the finished ``stage`` the folder ``out``; the old one is removed."""
    leftovers = [p for p in stage.rglob("*.tmp")]
    if leftovers:
        raise RuntimeError(f"{leftovers[0]}: temporary file left in a finished build")
    if not out.exists():
        os.replace(stage, out)
        return
    if _exchange(stage, out):
        shutil.rmtree(stage, ignore_errors=True)     # now the old benchmark
        return
    prev = previous_dir(out)
    os.replace(out, prev)
    os.replace(stage, out)
    shutil.rmtree(prev, ignore_errors=True)


def discard(stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)
