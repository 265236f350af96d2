"""Token shards: a corpus tokenized once into memory-mapped train / val / heldout files, then sampled.

`prepare_text_data(spec)` splits the corpus text into ~200 contiguous blocks (cut at line ends), deals
the blocks to train / val / heldout with a fixed permutation (so every split samples the whole corpus,
and no text is in two splits), trains the BPE tokenizer on the train blocks only, and writes

    <cache_dir>/<key>/{train,val,heldout}.bin   uint16 (uint32 above 65,536 tokens), tokens in block order
                      tokenizer.json, meta.json

The key hashes the corpus content and every setting that changes the tokens, so a cache is reused only
when it is exactly what would be rebuilt. The folder is written under a temporary name and renamed, so
concurrent jobs preparing the same data never read half a cache.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aira.data.text import Corpus, load_corpus
from aira.data.tokenizer import BPETokenizer, ByteTokenizer, Tokenizer, bytes_per_token_table, load_tokenizer
from aira.errors import UsageError

FORMAT_VERSION = 1
SPLITS = ("train", "val", "heldout")
MIN_BLOCK_CHARS = 2_000


def default_cache_dir() -> Path:
    return Path(os.environ.get("AIRA_DATA_CACHE", Path.home() / ".cache" / "aira" / "data"))


@dataclass
class TokenData:
    root: Path
    tokenizer: Tokenizer
    meta: dict
    splits: dict[str, np.ndarray] = field(repr=False)
    bytes_per_token: np.ndarray = field(repr=False)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def tokens(self, split: str) -> np.ndarray:
        if split not in self.splits:
            raise UsageError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return self.splits[split]

    def get_batch(self, split: str, batch: int, seq_len: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: x (batch, seq_len) and y = x shifted by one, as LongTensors."""
        tokens = self.tokens(split)
        if len(tokens) < seq_len + 1:
            raise UsageError(f"the {split} split has {len(tokens)} tokens, fewer than seq_len + 1 = "
                             f"{seq_len + 1}")
        starts = torch.randint(0, len(tokens) - seq_len, (batch,), generator=generator).numpy()
        return _windows(tokens, starts, seq_len)

    def iter_eval(self, split: str, batch: int, seq_len: int,
                  max_tokens: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Non-overlapping windows from the start of the split, in order (the same every time); each
        target token is predicted exactly once. `max_tokens` caps the targets (at least one window)."""
        tokens = self.tokens(split)
        n_windows = (len(tokens) - 1) // seq_len
        if max_tokens is not None:
            n_windows = min(n_windows, max(1, max_tokens // seq_len))
        for first in range(0, n_windows, batch):
            starts = np.arange(first, min(first + batch, n_windows)) * seq_len
            yield _windows(tokens, starts, seq_len)


def _windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    chunk = torch.from_numpy(tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64))
    return chunk[:, :-1], chunk[:, 1:]


def prepare_text_data(corpus_spec: str | Corpus, *, tokenizer: str = "bpe", vocab_size: int = 8192,
                      cache_dir: str | Path | None = None, val_frac: float = 0.05,
                      heldout_frac: float = 0.05, n_blocks: int = 200) -> TokenData:
    if tokenizer not in ("bpe", "bytes"):
        raise UsageError(f"unknown tokenizer {tokenizer!r}; use bpe or bytes")
    if not (0 <= val_frac < 1 and 0 <= heldout_frac < 1 and val_frac + heldout_frac < 1):
        raise UsageError(f"val_frac + heldout_frac must be < 1, got {val_frac} + {heldout_frac}")
    corpus = corpus_spec if isinstance(corpus_spec, Corpus) else load_corpus(corpus_spec)
    settings = {"format": FORMAT_VERSION, "corpus_sha256": corpus.sha256, "tokenizer": tokenizer,
                "vocab_size": vocab_size if tokenizer == "bpe" else None, "val_frac": val_frac,
                "heldout_frac": heldout_frac, "n_blocks": n_blocks}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / key
    if not (folder / "meta.json").exists():
        _build(folder, corpus, settings)
    return _open(folder)


def split_blocks(text: str, n_blocks: int, val_frac: float, heldout_frac: float) -> dict[str, list[str]]:
    """Contiguous blocks cut at line ends, dealt to the splits by a fixed permutation (kept in order)."""
    need = 1 + (val_frac > 0) + (heldout_frac > 0)
    n = max(need, min(n_blocks, len(text) // MIN_BLOCK_CHARS))
    cuts = [0]
    for i in range(1, n):
        at = text.find("\n", i * len(text) // n)
        cuts.append(len(text) if at < 0 else at + 1)
    cuts.append(len(text))
    blocks = [text[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    if len(blocks) < need:
        # too few line ends to cut at: fall back to cutting anywhere
        step = -(-len(text) // need)
        blocks = [text[i:i + step] for i in range(0, len(text), step)]
    if len(blocks) < need:
        raise UsageError(f"the corpus is too small ({len(text)} characters) to split into {need} parts")
    order = np.random.default_rng(0).permutation(len(blocks))
    n_val = max(1, round(val_frac * len(blocks))) if val_frac > 0 else 0
    n_held = max(1, round(heldout_frac * len(blocks))) if heldout_frac > 0 else 0
    n_val = min(n_val, len(blocks) - 1)  # train keeps at least one block
    n_held = min(n_held, len(blocks) - 1 - n_val)
    picked = {"val": order[:n_val], "heldout": order[n_val:n_val + n_held], "train": order[n_val + n_held:]}
    return {name: [blocks[i] for i in sorted(idx)] for name, idx in picked.items()}


def encode_to_array(tok: Tokenizer, texts: list[str]) -> np.ndarray:
    """Concatenated ids of `texts` as uint16 / uint32 (smallest that holds the vocabulary)."""
    dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32
    if isinstance(tok, ByteTokenizer):
        return np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8).astype(dtype)
    if isinstance(tok, BPETokenizer):
        ids = tok.encode_batch(texts)
    else:
        ids = [tok.encode(t) for t in texts]
    return np.concatenate([np.asarray(i, dtype=dtype) for i in ids] or [np.zeros(0, dtype)])


def _build(folder: Path, corpus: Corpus, settings: dict) -> None:
    parts = split_blocks(corpus.text, settings["n_blocks"], settings["val_frac"], settings["heldout_frac"])
    if settings["tokenizer"] == "bpe":
        tok: Tokenizer = BPETokenizer.train(parts["train"], vocab_size=settings["vocab_size"])
    else:
        tok = ByteTokenizer()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        meta = {**settings, "corpus": corpus.name, "source": corpus.source,
                "description": corpus.description, "vocab_size": tok.vocab_size, "splits": {}}
        for name in SPLITS:
            ids = encode_to_array(tok, parts[name])
            ids.tofile(tmp / f"{name}.bin")
            meta["splits"][name] = {"tokens": len(ids), "dtype": ids.dtype.name, "blocks": len(parts[name]),
                                    "bytes": sum(len(b.encode("utf-8")) for b in parts[name])}
        tok.save(tmp / "tokenizer.json")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / "meta.json").exists():  # not a concurrent twin: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open(folder: Path) -> TokenData:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    splits = {}
    for name, info in meta["splits"].items():
        path = folder / f"{name}.bin"
        # np.memmap refuses empty files; an empty split is just an empty array
        splits[name] = (np.memmap(path, dtype=info["dtype"], mode="r") if info["tokens"]
                        else np.zeros(0, dtype=info["dtype"]))
    tok = load_tokenizer(folder / "tokenizer.json")
    return TokenData(root=folder, tokenizer=tok, meta=meta, splits=splits,
                     bytes_per_token=bytes_per_token_table(tok))
