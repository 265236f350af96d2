"""Token shards: exact split bookkeeping, caching by content and settings, batch and eval windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aira.data import shards
from aira.data.shards import prepare_text_data, split_blocks
from aira.data.text import Corpus
from aira.errors import UsageError

WORDS = ["the", "king", "café", "naïve", "€", "日本", "🙂", "sword", "crown", "is", "of", "and"]


def make_corpus(n_lines: int = 1500, seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, rng.integers(3, 12))) + "." for _ in range(n_lines)]
    text = "\n".join(lines) + "\n"
    return Corpus(name="fab", text=text, description="fabricated", source="test", documents=(text,))


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus()


@pytest.fixture(scope="module")
def byte_data(corpus, tmp_path_factory):
    return prepare_text_data(corpus, tokenizer="bytes", cache_dir=tmp_path_factory.mktemp("cache"))


def test_blocks_partition_the_text_in_order(corpus):
    parts = split_blocks(corpus.text, 200, 0.1, 0.05)
    blocks = sorted((corpus.text.index(b), b) for p in parts.values() for b in p)
    assert "".join(b for _, b in blocks) == corpus.text
    n = sum(len(p) for p in parts.values())
    assert len(parts["val"]) == round(0.1 * n) and len(parts["heldout"]) == round(0.05 * n)
    assert all(b.endswith("\n") for _, b in blocks)  # cut at line ends
    assert split_blocks(corpus.text, 200, 0.1, 0.05) == parts


def test_splits_hold_exactly_their_bytes(corpus, byte_data):
    meta = byte_data.meta["splits"]
    assert sum(m["bytes"] for m in meta.values()) == len(corpus.text.encode("utf-8"))
    for name in shards.SPLITS:
        tokens = byte_data.tokens(name)
        assert tokens.dtype == np.uint16 and len(tokens) == meta[name]["tokens"] > 0
        assert int(byte_data.bytes_per_token[tokens].sum()) == meta[name]["bytes"]
        # and the text decodes back to lines of the corpus
        text = byte_data.tokenizer.decode(tokens.tolist())
        assert set(text.splitlines()) <= set(corpus.text.splitlines())
    assert byte_data.vocab_size == 257


def test_bpe_shards_count_bytes_exactly(corpus, tmp_path):
    data = prepare_text_data(corpus, tokenizer="bpe", vocab_size=320, cache_dir=tmp_path)
    assert 257 < data.vocab_size <= 320 and data.meta["tokenizer"] == "bpe"
    for name, m in data.meta["splits"].items():
        tokens = data.tokens(name)
        assert len(tokens) < m["bytes"]  # merges compress
        assert int(data.bytes_per_token[tokens].sum()) == m["bytes"]


def test_cache_is_reused_and_keyed_by_content_and_settings(corpus, tmp_path, monkeypatch):
    first = prepare_text_data(corpus, tokenizer="bytes", cache_dir=tmp_path)
    assert (first.root / "meta.json").exists() and (first.root / "train.bin").stat().st_size == \
        2 * first.meta["splits"]["train"]["tokens"]

    def no_rebuild(*a, **k):
        raise AssertionError("rebuilt a cached dataset")

    monkeypatch.setattr(shards, "_build", no_rebuild)
    assert prepare_text_data(corpus, tokenizer="bytes", cache_dir=tmp_path).root == first.root
    monkeypatch.undo()
    other = prepare_text_data(corpus, tokenizer="bytes", cache_dir=tmp_path, val_frac=0.1)
    changed = prepare_text_data(make_corpus(seed=1), tokenizer="bytes", cache_dir=tmp_path)
    assert len({first.root, other.root, changed.root}) == 3
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind


def test_a_concurrent_twin_build_keeps_the_first(corpus, tmp_path):
    data = prepare_text_data(corpus, tokenizer="bytes", cache_dir=tmp_path)
    before = (data.root / "train.bin").stat().st_mtime_ns
    settings = {k: data.meta[k] for k in ("format", "corpus_sha256", "tokenizer", "val_frac", "heldout_frac",
                                          "n_blocks")}
    shards._build(data.root, corpus, {**settings, "vocab_size": None})  # loses the rename race
    assert (data.root / "train.bin").stat().st_mtime_ns == before
    assert not list(tmp_path.glob(".*"))


def test_get_batch_windows(byte_data):
    g = torch.Generator().manual_seed(0)
    x, y = byte_data.get_batch("train", 8, 32, g)
    assert x.shape == y.shape == (8, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    windows = np.lib.stride_tricks.sliding_window_view(byte_data.tokens("train"), 33)
    for row_x, row_y in zip(x, y):
        chunk = torch.cat([row_x, row_y[-1:]]).numpy()
        assert (windows == chunk).all(axis=1).any()  # a real window of the train split
    x2, _ = byte_data.get_batch("train", 8, 32, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_iter_eval_covers_the_split_once(byte_data):
    tokens = byte_data.tokens("val").astype(np.int64)
    seq = 50
    batches = list(byte_data.iter_eval("val", 4, seq))
    xs, ys = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    n_windows = (len(tokens) - 1) // seq
    assert xs.shape == (n_windows, seq) and all(b[0].shape[0] <= 4 for b in batches)
    assert np.array_equal(xs.reshape(-1).numpy(), tokens[: n_windows * seq])
    assert np.array_equal(ys.reshape(-1).numpy(), tokens[1: n_windows * seq + 1])
    capped = list(byte_data.iter_eval("val", 4, seq, max_tokens=120))
    assert sum(b[0].shape[0] for b in capped) == 2
    assert torch.equal(capped[0][0], batches[0][0][:2])


def test_errors(byte_data, corpus, tmp_path):
    with pytest.raises(UsageError, match="fewer than seq_len"):
        byte_data.get_batch("val", 2, 10**7)
    with pytest.raises(UsageError, match="unknown split 'test'"):
        byte_data.get_batch("test", 2, 8)
    with pytest.raises(UsageError, match="unknown tokenizer 'wordpiece'"):
        prepare_text_data(corpus, tokenizer="wordpiece", cache_dir=tmp_path)
    with pytest.raises(UsageError, match="must be < 1"):
        prepare_text_data(corpus, val_frac=0.6, heldout_frac=0.5, cache_dir=tmp_path)
    assert list(byte_data.iter_eval("val", 2, 10**7)) == []


def test_text_path_spec_and_tiny_corpus(tmp_path):
    p = tmp_path / "small.txt"
    p.write_text("one line only, no cut points", encoding="utf-8")
    data = prepare_text_data(str(p), tokenizer="bytes", cache_dir=tmp_path / "c")
    sizes = [data.meta["splits"][s]["bytes"] for s in shards.SPLITS]
    assert sum(sizes) == len(p.read_bytes()) and all(s > 0 for s in sizes)
