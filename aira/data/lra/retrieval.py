"""LRA Retrieval: do two documents cite-link? Byte-level, two-tower (LRA: ACL Anthology, 2 x 4K bytes).

Real data through `data_dir`: LRA's `new_aan_pairs.{train,eval,test}.tsv`, read as LRA's pipeline reads
them (lra_benchmarks/matching/input_pipeline.py: make_csv_dataset with field_delim="\t",
use_quote_delim=False, header=False, then ByteTextEncoder): no header; a record ends at \n, \r\n or
\r; every tab separates fields and a quote is an ordinary byte; exactly 5 fields label, id1, id2,
text1, text2, the label a number (0 or 1 here) and the texts non-empty (LRA requires every field); the
texts' raw bytes, never decoded, become ids byte + 1, the first max_len kept (LRA keeps the first
10,000 bytes, then max_length = 4,000 ids). eval is the val split. A blank line is skipped.

Stand-in (no data_dir): pairs of byte windows from documents of two kinds, Python standard-library
modules and the English help topics of the Python reference; label 1 when both windows come from the
same document, 0 otherwise; balanced, documents disjoint across splits. Half the negatives mix kinds
(easy: style differs), half do not (hard: only content tells), so a model has something to learn early
and more to find later.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from aira.data.lra import standins
from aira.data.lra.core import Split, encode_bytes, pad_rows, stream_seed
from aira.errors import UsageError

FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv",
         "test": "new_aan_pairs.test.tsv"}


def _label(raw: bytes) -> int | None:
    try:
        v = float(raw)
    except ValueError:
        return None
    return int(v) if v in (0.0, 1.0) else None


def _records(path: Path):
    """(line number, fields) as LRA's reader splits them: records end at \n, \r\n or \r (TensorFlow's
    CSV reader), fields at every tab, quotes are kept as bytes (use_quote_delim=False)."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            for rec in line.rstrip(b"\n").split(b"\r"):
                if rec:
                    yield lineno, rec.split(b"\t")


def read_tsv(path: Path, max_len: int) -> Split:
    a, b, labels = [], [], []
    for lineno, rec in _records(path):
        if len(rec) != 5:
            raise UsageError(f"{path}:{lineno}: expected 5 columns (label, id1, id2, text1, text2), "
                             f"got {len(rec)}")
        label = _label(rec[0])
        if label is None:
            raise UsageError(f"{path}:{lineno}: label must be 0 or 1, got {rec[0][:40]!r} (LRA's files "
                             "have no header)")
        if not rec[3] or not rec[4]:
            raise UsageError(f"{path}:{lineno}: empty text field (LRA's reader requires both texts)")
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
