"""LRA ListOps: nested MAX / MIN / MED / SM expressions over digits, 10 classes.

Generator after LRA's recipe (Tay et al. 2020, built on Nangia & Bowman 2018): an operator node draws
2..max_args arguments, each a digit with probability `leaf_p` or else a nested operator, down to
`max_depth`; expressions outside [min_len, max_len] tokens are rejected and redrawn. The label is the
value of the expression: MAX, MIN, MED = int(median) (the mean of the middle two, truncated, for an
even count), SM = sum mod 10.

Strings use LRA's released form, where each argument closes a parenthesised prefix:
`[MAX 2 9 ]` is written `( ( ( [MAX 2 ) 9 ) ] )`. Lengths here count every token the model sees,
parentheses included (LRA's own generator counted only operators, digits and "]"), so the configured
range is the true input length. The root is always an operator: a lone digit is too short anyway,
so this saves rejections without changing the accepted distribution.

Loader: LRA's `basic_{train,val,test}.tsv`, header "Source\tTarget", space-separated tokens.
"""

from __future__ import annotations

import csv
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from aira.data.lra.core import Split, pad_rows, stream_seed
from aira.errors import UsageError

OPS = ("[MAX", "[MIN", "[MED", "[SM")
VOCAB = ("<pad>", *"0123456789", *OPS, "]", "(", ")")
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
N_CLASSES = 10
FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}


@dataclass(frozen=True, kw_only=True)
class ListOpsConfig:
    min_len: int = 500
    max_len: int = 2000
    max_depth: int = 10
    max_args: int = 10
    leaf_p: float = 0.75       # LRA's generator: a non-root node is a digit 3 times in 4
    n_train: int = 96_000
    n_val: int = 2_000
    n_test: int = 2_000

    def __post_init__(self):
        if not 5 <= self.min_len <= self.max_len:
            raise UsageError(f"ListOps length range must satisfy 5 <= min <= max, got "
                             f"[{self.min_len}, {self.max_len}]")
        if self.max_args < 2 or self.max_depth < 1:
            raise UsageError("ListOps needs max_args >= 2 and max_depth >= 1")


class _TooLong(Exception):
    pass


def apply_op(op: str, values: list[int]) -> int:
    if op == "[MAX":
        return max(values)
    if op == "[MIN":
        return min(values)
    if op == "[MED":
        return int(statistics.median(values))
    if op == "[SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {op!r}")


def _node(rng: random.Random, depth: int, cfg: ListOpsConfig, out: list[str]) -> int:
    if depth > 1 and (depth >= cfg.max_depth or rng.random() < cfg.leaf_p):
        digit = rng.randrange(10)
        out.append(str(digit))
        return digit
    k = rng.randint(2, cfg.max_args)
    op = rng.choice(OPS)
    out.extend(["("] * (k + 1))
    out.append(op)
    values = []
    for _ in range(k):
        values.append(_node(rng, depth + 1, cfg, out))
        out.append(")")
        if len(out) > cfg.max_len:  # give up early: the tree can only grow
            raise _TooLong
    out.extend(["]", ")"])
    return apply_op(op, values)


def sample(rng: random.Random, cfg: ListOpsConfig) -> tuple[list[str], int]:
    """One expression (tokens) with its value, its length within [min_len, max_len]."""
    while True:
        out: list[str] = []
        try:
            value = _node(rng, 1, cfg, out)
        except _TooLong:
            continue
        if cfg.min_len <= len(out) <= cfg.max_len:
            return out, value


def encode(tokens: list[str], where: str = "") -> list[int]:
    try:
        return [TOKEN_ID[t] for t in tokens]
    except KeyError as e:
        valid = " ".join(VOCAB[1:])
        raise UsageError(f"{where}unknown ListOps token {e.args[0]!r}; valid: {valid}") from None


def generate(cfg: ListOpsConfig, seed: int, hidden_seed: int | None = None) -> dict[str, Split]:
    """Seeded train / val / test splits; each split has its own stream so sizes do not interact.
    `hidden_seed`: the val and test streams' seed instead of `seed` (see `load_lra`)."""
    splits = {}
    for i, (name, n) in enumerate((("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test))):
        rng = random.Random(f"listops-{stream_seed(seed, hidden_seed, i)}-{i}")
        rows, labels = [], []
        for _ in range(n):
            toks, value = sample(rng, cfg)
            rows.append(encode(toks))
            labels.append(value)
        splits[name] = Split(x=pad_rows(rows, cfg.max_len), y=torch.tensor(labels, dtype=torch.long))
    return splits


def read_tsv(path: Path, max_len: int) -> Split:
    """LRA's ListOps TSV: header "Source\tTarget"; truncated to max_len tokens as LRA does."""
    rows, labels = [], []
    with path.open(newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["Source", "Target"]:
            raise UsageError(f"{path}: expected the header 'Source<TAB>Target', got {header!r}")
        for lineno, rec in enumerate(reader, start=2):
            if not rec:
                continue
            if len(rec) < 2:
                raise UsageError(f"{path}:{lineno}: expected 2 tab-separated columns, got {len(rec)}")
            label = rec[1].strip()
            if label not in {str(d) for d in range(10)}:
                raise UsageError(f"{path}:{lineno}: label must be a digit 0-9, got {label!r}")
            rows.append(encode(rec[0].split(), where=f"{path}:{lineno}: "))
            labels.append(int(label))
    if not rows:
        raise UsageError(f"{path}: no examples")
    return Split(x=pad_rows(rows, max_len), y=torch.tensor(labels, dtype=torch.long))


def load_dir(data_dir: Path, max_len: int) -> dict[str, Split]:
    missing = [f for f in FILES.values() if not (data_dir / f).is_file()]
    if missing:
        raise UsageError(f"{data_dir}: missing ListOps files {', '.join(missing)} (LRA's release names)")
    return {name: read_tsv(data_dir / f, max_len) for name, f in FILES.items()}
