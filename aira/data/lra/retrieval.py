"""LRA Retrieval: do two documents cite-link? Byte-level, two-tower (LRA: ACL Anthology, 2 x 4K bytes).

Real data through `data_dir`: LRA's `new_aan_pairs.{train,eval,test}.tsv`, tab-separated columns
label, id1, id2, text1, text2 (a header row, if present, is skipped); eval is the val split. Each text
is truncated at max_len bytes.

Stand-in (no data_dir): pairs of byte windows from documents of two kinds, Python standard-library
modules and the English help topics of the Python reference; label 1 when both windows come from the
same document, 0 otherwise; balanced, documents disjoint across splits. Half the negatives mix kinds
(easy: style differs), half do not (hard: only content tells), so a model has something to learn early
and more to find later.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import torch

from aira.data.lra import standins
from aira.data.lra.core import Split, encode_bytes, pad_rows, stream_seed
from aira.errors import UsageError

FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv",
         "test": "new_aan_pairs.test.tsv"}


def _label(raw: str) -> int | None:
    try:
        v = float(raw)
    except ValueError:
        return None
    return int(v) if v in (0.0, 1.0) else None


def read_tsv(path: Path, max_len: int) -> Split:
    csv.field_size_limit(sys.maxsize)
    a, b, labels = [], [], []
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, rec in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not rec:
                continue
            label = _label(rec[0].strip())
            if label is None and lineno == 1:
                continue  # header row
            if len(rec) != 5:
                raise UsageError(f"{path}:{lineno}: expected 5 columns (label, id1, id2, text1, text2), "
                                 f"got {len(rec)}")
            if label is None:
                raise UsageError(f"{path}:{lineno}: label must be 0 or 1, got {rec[0]!r}")
            a.append(encode_bytes(rec[3], max_len))
            b.append(encode_bytes(rec[4], max_len))
            labels.append(label)
    if not labels:
        raise UsageError(f"{path}: no examples")
    width = max(pad_rows(a, max_len).shape[1], pad_rows(b, max_len).shape[1])
    # Both towers share one width so that x and x2 stack into the same batch shape.
    return Split(x=pad_rows(a + [[0] * width], max_len)[:-1], y=torch.tensor(labels, dtype=torch.long),
                 x2=pad_rows(b + [[0] * width], max_len)[:-1])


def load_dir(data_dir: Path, max_len: int) -> dict[str, Split]:
    missing = [f for f in FILES.values() if not (data_dir / f).is_file()]
    if missing:
        raise UsageError(f"{data_dir}: missing retrieval files {', '.join(missing)} (LRA's release names)")
    return {name: read_tsv(data_dir / f, max_len) for name, f in FILES.items()}


def standin(sizes: dict[str, int], max_len: int, seed: int, hidden_seed: int | None = None) -> dict[str, Split]:
    """Balanced same-module / different-module window pairs."""
    code = standins.partition(standins.code_documents(min_bytes=2 * max_len), seed)
    prose = standins.partition(standins.prose_documents(min_bytes=2 * max_len), seed + 1)
    splits = {}
    for i, (name, n) in enumerate(sizes.items()):
        kinds = [code[name], prose[name]]
        if min(len(k) for k in kinds) < 2:
            raise UsageError(f"too few documents for the retrieval stand-in's {name} split")
        rng = random.Random(f"retrieval-standin-{stream_seed(seed, hidden_seed, i)}-{i}")
        a, b, labels = [], [], []
        for j in range(n):
            label = (j + i) % 2
            kind = rng.randrange(2)
            first = rng.choice(kinds[kind])[1]
            if label == 1:
                second = first
            else:  # a different document, of the other kind half of the time
                other = kinds[kind] if rng.random() < 0.5 else kinds[1 - kind]
                second = first
                while second is first:
                    second = rng.choice(other)[1]
            a.append(encode_bytes(standins.chunk(first, max_len, rng), max_len))
            b.append(encode_bytes(standins.chunk(second, max_len, rng), max_len))
            labels.append(label)
        order = list(range(n))
        rng.shuffle(order)
        splits[name] = Split(x=pad_rows([a[k] for k in order] + [[0] * max_len], max_len)[:-1],
                             x2=pad_rows([b[k] for k in order] + [[0] * max_len], max_len)[:-1],
                             y=torch.tensor([labels[k] for k in order], dtype=torch.long))
    return splits
