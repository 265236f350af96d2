"""The frozen data of the autoresearch task: corpus, BPE tokenizer (vocabulary 8192) and splits.

`open_data(data)` tokenizes a corpus once (aira.data.shards: blocks dealt to train / val / heldout, BPE
trained on the train blocks only, a content-keyed cache). `data` is a built-in corpus name
("shakespeare", "pycode") or a path: a text file, a folder of text, or parquet shards with a `text`
column (the shape autoresearch's data takes; `--data-dir`).

`stage_train(tokens)` writes the only thing the training sandbox may read: the training split's tokens
and the vocabulary size, next to the cache (`<cache>/<key>/autoresearch-train/`). Validation and the
held-out split stay out of the sandbox; the harness scores them itself.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from aira.data.shards import TokenData, prepare_text_data
from aira.tasks.autoresearch.prepare import TRAIN_DIR

DEFAULT_DATA = "shakespeare"


def open_data(data: str = DEFAULT_DATA, *, vocab_size: int = 8192,
              cache_dir: str | Path | None = None) -> TokenData:
    return prepare_text_data(str(data), tokenizer="bpe", vocab_size=vocab_size, cache_dir=cache_dir)


def stage_train(tokens: TokenData) -> Path:
    """The training split as a folder for the sandbox (train.bin + meta.json), built once per cache."""
    folder = tokens.root / TRAIN_DIR
    if (folder / "meta.json").exists():
        return folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{TRAIN_DIR}-", dir=tokens.root))
    try:
        src = tokens.root / "train.bin"
        try:
            os.link(src, tmp / "train.bin")  # same file system: no copy of a large split
        except OSError:
            shutil.copyfile(src, tmp / "train.bin")
        info = tokens.meta["splits"]["train"]
        meta = {"vocab_size": tokens.vocab_size, "dtype": info["dtype"], "tokens": info["tokens"]}
        (tmp / "meta.json").write_text(json.dumps(meta))
        for p in (tmp, tmp / "train.bin", tmp / "meta.json"):
            os.chmod(p, 0o755 if p.is_dir() else 0o444)
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / "meta.json").exists():  # not a concurrent twin: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
