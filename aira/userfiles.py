"""Paths a user names on the command line: read one as text, or check a folder to write into, with one
`UsageError` line (exit code 2, before any work) when the path is not what the flag expects: missing, a
folder where a file is expected or the other way round, a binary file, a place that cannot be written.

Checks run before the work they guard, so a bad `--out` never costs a finished training run.
"""

from __future__ import annotations

import os
from pathlib import Path

from aira.errors import UsageError


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of the file `path`; `what` names it in the message (e.g. "--proxy")."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {path} is a folder, not a file")
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not a text file (it is not UTF-8)") from None
    except OSError as e:
        raise UsageError(f"{what} {path} cannot be read: {e.strerror or e}") from None


def check_out_file(path: str | Path, what: str) -> None:
    """A file to be written later (after training): refuse now what would fail then."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {path} is a folder; give a file name")
    parent = p.parent
    if not parent.exists():
        raise UsageError(f"{what} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: folder {parent} is not writable")


def check_out_dir(path: str | Path, what: str) -> None:
    """A folder to be created or written into: refuse a file in its place or in the place of a folder above
    it, and a folder that cannot be created (it is made and removed again: nothing is left behind)."""
    p = Path(path).absolute()
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder")
    missing = None  # the highest folder that does not exist yet
    for up in [p, *p.parents]:
        if up.exists():
            if not up.is_dir():
                raise UsageError(f"{what} {path}: {up} is a file, not a folder")
            break
        missing = up
    if missing is None:
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"{what} {path}: the folder is not writable")
        return
    try:
        missing.mkdir()
    except FileExistsError:  # made meanwhile by someone else: theirs, not ours to remove
        return
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot create the folder ({e.strerror or e})") from None
    missing.rmdir()


def make_out_dir(path: str | Path, what: str) -> Path:
    """Create the folder `path` (and those above it) or raise UsageError saying why it cannot be."""
    check_out_dir(path, what)
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot create the folder ({e.strerror or e})") from None
    return p
