"""Offline text for the stand-ins: documents that ship with every Python install.

No dataset can be downloaded in CI, so the byte-level tasks fall back to text that is already on disk:
- code: the standard library's own `.py` files;
- prose: the English help topics in `pydoc_data.topics` (the text of Python's reference manual).
Both depend only on the interpreter version, so a given Python gives the same stand-in everywhere.
Scores on stand-ins test the plumbing and rank mechanisms roughly; they are never LRA numbers.
"""

from __future__ import annotations

import functools
import random
import sysconfig
from pathlib import Path


@functools.cache
def code_documents(min_bytes: int = 2048) -> tuple[tuple[str, bytes], ...]:
    """(name, bytes) of top-level stdlib modules at least min_bytes long, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for p in sorted(root.glob("*.py")):
        data = p.read_bytes()
        if len(data) >= min_bytes:
            docs.append((p.stem, data))
    if len(docs) < 20:
        raise RuntimeError(f"too few standard-library modules under {root} to build a stand-in")
    return tuple(docs)


@functools.cache
def prose_documents(min_bytes: int = 1024) -> tuple[tuple[str, bytes], ...]:
    """(topic, bytes) of the English help topics of the Python reference, sorted by topic."""
    from pydoc_data.topics import topics

    docs = [(k, v.encode("utf-8")) for k, v in sorted(topics.items())]
    return tuple(d for d in docs if len(d[1]) >= min_bytes)


def chunk(doc: bytes, length: int, rng: random.Random) -> bytes:
    """A random window of `length` bytes (the whole document when it is shorter)."""
    if len(doc) <= length:
        return doc
    start = rng.randrange(len(doc) - length + 1)
    return doc[start : start + length]


def partition(docs: tuple, seed: int, fractions=(0.7, 0.15, 0.15)) -> dict[str, list]:
    """Disjoint train / val / test document sets, so held-out scores are not memorisation."""
    order = list(docs)
    random.Random(f"partition-{seed}").shuffle(order)
    n = len(order)
    a = max(1, int(n * fractions[0]))
    b = max(a + 1, int(n * (fractions[0] + fractions[1])))
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}
