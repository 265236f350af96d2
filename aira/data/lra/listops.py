"""LRA ListOps: nested MAX / MIN / MED / SM expressions over digits, 10 classes.

What the model sees follows LRA's ListOps input pipeline (lra_benchmarks/listops/input_pipeline.py in
google-research/long-range-arena): it deletes every "(" and ")" from the released string, keeps "]"
(renamed "X" there, because its tokenizer would drop it), splits on whitespace, then truncates at
max_length = 2000 tokens and pads with 0. So `( ( ( [MAX 2 ) 9 ) ] )` is the 4 tokens `[MAX 2 9 ]`.
Token ids are ours (LRA numbers a Python set, so its order is arbitrary); a token LRA would send to its
out-of-vocabulary id is an error here.

Generator after LRA's own (lra_benchmarks/data/listops.py, `generate_tree`), rule for rule and draw
for draw, so that the same random draws give the same tree (tests/lra/test_listops.py checks this
against a restatement of LRA's rules): a node below `max_depth` draws r = random(); r > 1 - leaf_p
(LRA: 0.25) makes a digit, anything else an operator with randint(2, max_args) arguments, drawn before
its operator; at `max_depth` every node is a digit. The length is LRA's: operators, digits and "]",
the very tokens the model sees; LRA keeps 500 < length < 2000, i.e. 501-1999 inclusive here. The label
is the value: MAX, MIN, MED = int(median) (mean of the middle two, truncated), SM = sum mod 10.
Differences from LRA's generator, none of which changes the distribution of an accepted tree: each
attempt draws from its own random.Random seeded from the split's stream (LRA shares one global stream),
so an attempt abandoned once it passes max_len (LRA builds every tree in full) does not shift the next;
and LRA collects a set (no repeated expression across its splits), which aira does not (a repeat is
vanishingly rare at LRA's lengths, not at the smoke preset's 20-60).

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

OPS = ("[MIN", "[MAX", "[MED", "[SM")   # LRA's OPERATORS order: random.choice draws from it
END = "]"
VOCAB = ("<pad>", *"0123456789", *OPS, END)
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
N_CLASSES = 10
MAX_LEN = 2000  # LRA's max_length for ListOps (lra_benchmarks/listops/configs/base_listops_config.py)
FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}


@dataclass(frozen=True, kw_only=True)
class ListOpsConfig:
    """Defaults are LRA's generator flags: max_depth 10, max_args 10, 500 < length < 2000, 96K / 2K / 2K."""

    min_len: int = 501         # inclusive bounds on the length in model tokens (parentheses dropped)
    max_len: int = 1999
    max_depth: int = 10
    max_args: int = 10
    leaf_p: float = 0.75       # LRA's generator: a node above max_depth is a digit 3 times in 4
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
    # The draws and their order are LRA's generate_tree's: r, then a digit or (k, the k subtrees, the op).
    r = rng.random() if depth < cfg.max_depth else 1.0
    if r > 1.0 - cfg.leaf_p:
        digit = rng.randrange(10)
        out.append(str(digit))
        return digit
    k = rng.randint(2, cfg.max_args)
    at = len(out)
    out.append("")  # the operator's slot: LRA draws the operator after its arguments
    values = []
    for _ in range(k):
        values.append(_node(rng, depth + 1, cfg, out))
        if len(out) >= cfg.max_len:  # give up early: the tree can only grow, and "]" is still to come
            raise _TooLong
    out[at] = rng.choice(OPS)
    out.append(END)
    return apply_op(out[at], values)


def sample(rng: random.Random, cfg: ListOpsConfig) -> tuple[list[str], int]:
    """One expression as the model sees it (LRA's tokens without parentheses), with its value, its
    length within [min_len, max_len]. Each attempt draws from its own generator seeded from `rng`."""
    while True:
        attempt = random.Random(rng.getrandbits(64))
        out: list[str] = []
        try:
            value = _node(attempt, 1, cfg, out)
        except _TooLong:
            continue
        if cfg.min_len <= len(out) <= cfg.max_len:
            return out, value


def tokens(source: str) -> list[str]:
    """LRA's ListOps pipeline on a released string: every "(" and ")" deleted, split on whitespace."""
    return source.replace("(", "").replace(")", "").split()


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
    """LRA's ListOps TSV: header "Source\tTarget"; tokens as LRA's pipeline makes them (`tokens`), then
    truncated to max_len (LRA: 2000) as LRA does."""
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
            rows.append(encode(tokens(rec[0]), where=f"{path}:{lineno}: "))
            labels.append(int(label))
    if not rows:
        raise UsageError(f"{path}: no examples")
    return Split(x=pad_rows(rows, max_len), y=torch.tensor(labels, dtype=torch.long))


def load_dir(data_dir: Path, max_len: int) -> dict[str, Split]:
    missing = [f for f in FILES.values() if not (data_dir / f).is_file()]
    if missing:
        raise UsageError(f"{data_dir}: missing ListOps files {', '.join(missing)} (LRA's release names)")
    return {name: read_tsv(data_dir / f, max_len) for name, f in FILES.items()}
