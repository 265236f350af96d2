"""LRA Text: byte-level binary document classification (LRA: IMDb reviews, truncated at 4K bytes).

Real data through `data_dir`, in either common release format:
- the aclImdb folder layout: `[aclImdb/]{train,test}/{pos,neg}/*.txt` (pos = 1, neg = 0);
- `train.csv` / `test.csv` (or `.tsv`), optional `val.*`, with a header naming `text` and `label`
  columns; labels 0/1 or neg/pos/negative/positive.
IMDb has no validation split, so val is a seeded hold-out from train (LRA itself reported on test).

Stand-in (no data_dir): Python standard-library source (label 0) vs English prose from the Python
reference's help topics (label 1), in byte windows, documents disjoint across splits. Learnable,
sentiment-free, labelled "stand-in" everywhere.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import torch

from aira.data.lra import standins
from aira.data.lra.core import Split, carve_val, encode_bytes, pad_rows, stream_seed, take
from aira.errors import UsageError

LABELS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1}


def _acl_root(data_dir: Path) -> Path | None:
    for root in (data_dir / "aclImdb", data_dir):
        if (root / "train" / "pos").is_dir() and (root / "train" / "neg").is_dir():
            return root
    return None


def _read_acl(root: Path, split: str, max_len: int) -> Split:
    rows, labels = [], []
    for name, label in (("neg", 0), ("pos", 1)):
        folder = root / split / name
        if not folder.is_dir():
            raise UsageError(f"{folder} is missing (aclImdb layout: {split}/pos and {split}/neg)")
        for p in sorted(folder.glob("*.txt")):
            rows.append(encode_bytes(p.read_bytes(), max_len))
            labels.append(label)
    if not rows:
        raise UsageError(f"{root / split}: no .txt reviews found")
    return Split(x=pad_rows(rows, max_len), y=torch.tensor(labels, dtype=torch.long))


def _table_file(data_dir: Path, split: str) -> Path | None:
    for ext in ("csv", "tsv"):
        if (data_dir / f"{split}.{ext}").is_file():
            return data_dir / f"{split}.{ext}"
    return None


def _read_table(path: Path, max_len: int) -> Split:
    csv.field_size_limit(sys.maxsize)
    delim = "\t" if path.suffix == ".tsv" else ","
    rows, labels = [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delim)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "text" not in fields or "label" not in fields:
            raise UsageError(f"{path}: header must name 'text' and 'label' columns, got {reader.fieldnames}")
        names = dict(zip(fields, reader.fieldnames or []))
        for lineno, rec in enumerate(reader, start=2):
            raw = (rec[names["label"]] or "").strip().lower()
            if raw not in LABELS:
                raise UsageError(f"{path}:{lineno}: label must be 0/1 or neg/pos, got {raw!r}")
            rows.append(encode_bytes(rec[names["text"]] or "", max_len))
            labels.append(LABELS[raw])
    if not rows:
        raise UsageError(f"{path}: no examples")
    return Split(x=pad_rows(rows, max_len), y=torch.tensor(labels, dtype=torch.long))


def load_dir(data_dir: Path, max_len: int, n_val: int, seed: int) -> tuple[dict[str, Split], str]:
    root = _acl_root(data_dir)
    if root is not None:
        train, test = _read_acl(root, "train", max_len), _read_acl(root, "test", max_len)
        val, fmt = None, f"aclImdb folders at {root}"
    else:
        tr, te = _table_file(data_dir, "train"), _table_file(data_dir, "test")
        if tr is None or te is None:
            raise UsageError(f"{data_dir}: no IMDb data found; expected aclImdb/{{train,test}}/{{pos,neg}}/"
                             "*.txt or train.csv + test.csv (text,label)")
        train, test = _read_table(tr, max_len), _read_table(te, max_len)
        va = _table_file(data_dir, "val")
        val, fmt = (_read_table(va, max_len) if va else None), f"{tr.name}/{te.name} at {data_dir}"
    if val is None:
        tr_idx, va_idx = carve_val(len(train), min(n_val, len(train) // 5 or 1), seed)
        train, val = take(train, tr_idx), take(train, va_idx)
    return {"train": train, "val": val, "test": test}, fmt


def standin(sizes: dict[str, int], max_len: int, seed: int, hidden_seed: int | None = None) -> dict[str, Split]:
    """Balanced windows of code (0) or prose (1), from documents disjoint across splits."""
    code = standins.partition(standins.code_documents(), seed)
    prose = standins.partition(standins.prose_documents(), seed + 1)
    splits = {}
    for i, (name, n) in enumerate(sizes.items()):
        rng = random.Random(f"text-standin-{stream_seed(seed, hidden_seed, i)}-{i}")
        rows, labels = [], []
        for j in range(n):
            label = j % 2
            _, doc = rng.choice((code if label == 0 else prose)[name])
            length = rng.randint(max(8, max_len // 2), max_len)
            rows.append(encode_bytes(standins.chunk(doc, length, rng), max_len))
            labels.append(label)
        order = list(range(n))
        rng.shuffle(order)
        splits[name] = Split(x=pad_rows([rows[k] for k in order], max_len),
                             y=torch.tensor([labels[k] for k in order], dtype=torch.long))
    return splits
