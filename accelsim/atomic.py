"""Atomic writes: a file or folder appears complete or not at all, so a killed process never leaves half a result.

Everything accelsim writes goes through here: the content is written to a hidden temporary file (or folder) beside
its destination and renamed into place.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accelsim.errors import ConfigError


def write_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` to fill a temporary file beside `path` (what it returns is ignored), then rename it into
    place; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); a result file is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return write_file(path, write)


def write_bytes(path: str | Path, data: bytes) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write_file(path, write)


def write_json(path: str | Path, doc: Any) -> Path:
    return write_text(path, json.dumps(doc, indent=2) + "\n")


def write_folder(out: str | Path, fill: Callable[[Path], None], *, overwrite: bool = False,
                 unique: bool = False) -> Path:
    """Fill a temporary folder beside `out` with `fill(tmp)`, then rename it to `out`; returns the folder written.

    An existing non-empty `out` is replaced with `overwrite`, and is an error otherwise; with `unique` (a default
    name) the first free name of `out`, `out-2`, `out-3`, ... is taken instead, safely against a concurrent writer
    of the same name (the rename fails on a non-empty folder, and the next name is tried).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private (0700)
        fill(tmp)
        if overwrite and out.exists():
            shutil.rmtree(out)
        for n in range(1, 1000):
            target = out if n == 1 else out.with_name(f"{out.name}-{n}")
            try:
                os.rename(tmp, target)  # succeeds onto a missing or empty folder only
                return target
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                if not unique:
                    raise ConfigError(f"output folder {out} already exists and is not empty; choose another "
                                      "--out or pass --overwrite") from None
        raise ConfigError(f"no free folder name next to {out} (tried 999)")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def out_dir_problems(out: str | Path, overwrite: bool = False, what: str = "--out") -> list[str]:
    """What stops a result from being written to folder `out` (checked before any work starts)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        return [f"{what} {out} is a file, not a folder"]
    if out.is_dir() and not overwrite and any(out.iterdir()):
        return [f"{what} {out} already exists and is not empty; choose another {what} or pass --overwrite"]
    return _writable(out, what)


def out_file_problems(path: str | Path, what: str = "--out") -> list[str]:
    """What stops a result file from being written to `path`."""
    path = Path(path)
    if path.is_dir():
        return [f"{what} {path} is a folder; expected a file name"]
    return _writable(path, what)


def _writable(path: Path, what: str) -> list[str]:
    """The nearest existing ancestor must be a folder we can create entries in."""
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return [f"{what} {path}: {parent} is a file, so nothing can be created under it"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"{what} {path}: cannot write in {parent} (permission denied)"]
    return []
