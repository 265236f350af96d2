"""Containers shared by the LRA tasks: one `Split` per train / val / test, one `LraData` per task.

Token convention for every task: id 0 is padding and nothing else, so a key-padding mask is always
`x == 0`. Byte tasks shift bytes by one (id = byte + 1) and pixel tasks shift grey levels by one
(id = level + 1); ListOps has its own small vocabulary with "<pad>" at 0.

The test labels are separable from the inputs: `LraData.save_split(dir, include_labels=False)` writes
what a sandboxed agent may read, and the harness keeps `data.test.y` to score predictions itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aira.errors import UsageError

PAD = 0
SPLITS = ("train", "val", "test")
# Ids are stored as int16 (every vocabulary here is < 300): LRA's retrieval split alone would take
# 9 GB as int64. The evaluator widens each batch to int64 for the embedding.
TOKEN_DTYPE = torch.int16


@dataclass(kw_only=True)
class Split:
    x: torch.Tensor                  # (N, L) int16 ids, 0 = pad
    y: torch.Tensor | None           # (N,) int64; None where the labels are held back
    x2: torch.Tensor | None = None   # (N, L) second document of a pair (retrieval only)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def without_labels(self) -> Split:
        return Split(x=self.x, y=None, x2=self.x2)


@dataclass(kw_only=True)
class LraData:
    task: str
    train: Split
    val: Split
    test: Split
    vocab_size: int
    max_len: int
    n_classes: int
    standin: bool       # True: not LRA's data at LRA's sizes; never compare to published numbers
    source: str         # one line for reports: where the data came from
    pair: bool = False  # two-tower task (retrieval): every split has x2
    extra: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise UsageError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, name)

    def meta(self) -> dict:
        return {"task": self.task, "vocab_size": self.vocab_size, "max_len": self.max_len,
                "n_classes": self.n_classes, "standin": self.standin, "source": self.source,
                "pair": self.pair, "sizes": {s: len(self.split(s)) for s in SPLITS}}

    def save_split(self, dir: str | Path, include_labels: bool) -> Path:
        """Write train / val / test tensors and meta.json into `dir`.

        With include_labels=False the test labels are left out: that folder is what a sandbox gets.
        """
        out = Path(dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in SPLITS:
            s = self.split(name)
            keep_y = include_labels or name != "test"
            blob = {"x": s.x, "y": s.y if keep_y else None, "x2": s.x2}
            torch.save(blob, out / f"{name}.pt")
        meta = self.meta() | {"test_labels_included": include_labels}
        (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return out


def load_saved(dir: str | Path) -> LraData:
    """Read a folder written by `LraData.save_split` (test.y is None when it was held back)."""
    src = Path(dir)
    if not (src / "meta.json").is_file():
        raise UsageError(f"{src} holds no saved LRA split (meta.json missing)")
    meta = json.loads((src / "meta.json").read_text())
    splits = {}
    for name in SPLITS:
        blob = torch.load(src / f"{name}.pt", weights_only=True)
        splits[name] = Split(x=blob["x"], y=blob["y"], x2=blob["x2"])
    return LraData(task=meta["task"], vocab_size=meta["vocab_size"], max_len=meta["max_len"],
                   n_classes=meta["n_classes"], standin=meta["standin"], source=meta["source"],
                   pair=meta["pair"], **splits)


def pad_rows(rows: list[list[int] | torch.Tensor], max_len: int) -> torch.Tensor:
    """Right-pad (and truncate) id lists to the longest row, at most max_len: (N, L) int16."""
    width = min(max_len, max((len(r) for r in rows), default=1)) or 1
    out = torch.zeros(len(rows), width, dtype=TOKEN_DTYPE)
    for i, r in enumerate(rows):
        r = r[:width]
        if len(r):
            out[i, : len(r)] = r if isinstance(r, torch.Tensor) else torch.tensor(r, dtype=TOKEN_DTYPE)
    return out


def encode_bytes(text: str | bytes, max_len: int) -> torch.Tensor:
    """Byte-level ids: byte + 1 (0 is padding), truncated to max_len bytes as LRA does. A tensor, not a
    list: LRA-sized text splits hold hundreds of millions of bytes."""
    raw = text.encode("utf-8", errors="replace") if isinstance(text, str) else text
    raw = raw[:max_len]
    if not raw:
        return torch.zeros(0, dtype=TOKEN_DTYPE)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(TOKEN_DTYPE) + 1


def carve_val(n: int, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, val) index split of range(n) for tasks whose release has no val split."""
    if not 0 < n_val < n:
        raise UsageError(f"cannot hold out {n_val} validation examples from {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def stream_seed(seed: int, hidden_seed: int | None, split_index: int) -> int:
    """The seed of split `split_index`'s random stream: the training split (0) always draws from `seed`;
    validation and test draw from `hidden_seed` when there is one. Document partitions stay on `seed`, so
    held-out documents stay disjoint from the training documents."""
    return seed if split_index == 0 or hidden_seed is None else hidden_seed


def take(s: Split, idx: torch.Tensor) -> Split:
    return Split(x=s.x[idx], y=None if s.y is None else s.y[idx], x2=None if s.x2 is None else s.x2[idx])
