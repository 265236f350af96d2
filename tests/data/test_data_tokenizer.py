"""Tokenizers: exact round trips and exact per-token bytes, including characters split across tokens."""

from __future__ import annotations

import numpy as np
import pytest

from aira.data.tokenizer import BPETokenizer, ByteTokenizer, Tokenizer, bytes_per_token_table, load_tokenizer
from aira.errors import UsageError

SAMPLES = [
    "plain ASCII, with  double spaces,\ttabs and\nnewlines.\n",
    "accents: naïve café, crème brûlée, Ångström, façade",
    "CJK and emoji: 日本語のテキスト, 中文, 한국어 🙂🚀👩‍👩‍👧 ¤ € ½",
    "  leading spaces and trailing \r\n",
]
TRAIN = ["the cat sat on the mat. " * 20, "café crème, naïve façade. " * 20, "日本語 日本 語 🙂🙂 " * 20,
         "def f(x):\n    return x * 2\n" * 20]


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(TRAIN, vocab_size=400, min_frequency=2)


@pytest.fixture(params=["bytes", "bpe"])
def tok(request, bpe) -> Tokenizer:
    return ByteTokenizer() if request.param == "bytes" else bpe


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_and_token_bytes_concatenate_to_utf8(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")
    table = bytes_per_token_table(tok)
    assert int(table[ids].sum()) == len(text.encode("utf-8"))


def test_bpe_learns_merges_and_splits_unseen_characters_into_bytes(bpe):
    # a tiny corpus runs out of merges before 400; the vocabulary is what was learnt
    assert isinstance(bpe, Tokenizer) and 257 < bpe.vocab_size <= 400
    assert len(bpe.encode("the cat sat on the mat.")) < 10  # merged far below the 23 bytes
    ids = bpe.encode("€")  # never seen in training: three byte tokens
    assert [bpe.token_bytes(i) for i in ids] == [b"\xe2", b"\x82", b"\xac"]
    assert bpe.decode(ids[:1]) == "\ufffd"  # a lone partial character cannot decode ...
    assert bytes_per_token_table(bpe)[ids[0]] == 1  # ... but counts exactly its one byte


def test_specials_have_no_bytes(tok):
    table = bytes_per_token_table(tok)
    eot = tok.vocab_size - 1 if isinstance(tok, ByteTokenizer) else 0
    assert tok.token_bytes(eot) == b"" and table[eot] == 0
    assert table.dtype == np.int32 and table.shape == (tok.vocab_size,)
    assert (table[table > 0] >= 1).all() and (table == 0).sum() == 1
    with pytest.raises(IndexError):
        tok.token_bytes(tok.vocab_size)


def test_byte_tokenizer_ids_are_bytes():
    t = ByteTokenizer()
    assert t.vocab_size == 257 and t.encode("é") == [0xC3, 0xA9]


def test_save_and_load(tmp_path, tok):
    path = tmp_path / "tok.json"
    tok.save(path)
    again = load_tokenizer(path)
    assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
    for text in SAMPLES:
        assert again.encode(text) == tok.encode(text)
    assert np.array_equal(bytes_per_token_table(again), bytes_per_token_table(tok))


def test_bad_vocab_and_bad_file(tmp_path):
    with pytest.raises(UsageError, match="vocab_size must be >= 257"):
        BPETokenizer.train(TRAIN, vocab_size=100)
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(UsageError, match="not a tokenizer saved by aira"):
        load_tokenizer(tmp_path / "x.json")
