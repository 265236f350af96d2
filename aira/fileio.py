"""One way to write a file that a reader sees whole or not at all (journal side files, results, caches,
reports, checkpoints): write a unique temporary file beside it, flush (and fsync where a crash must not
lose it), then rename over the target. A failed write leaves the target as it was and no temporary file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomic(path: str | Path, data: str | bytes | Callable[[IO[bytes]], None], *, fsync: bool = False) -> None:
    """Write `data` (text, bytes, or a function that writes into a binary file) to `path` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
