"""Loaders on fabricated files in LRA's release formats, stand-ins, and the label-free saved split."""

import pickle

import pytest
import torch

from aira.data.lra import image, listops, load_lra, load_saved, pathfinder, retrieval, text
from aira.data.lra.core import Split
from aira.errors import UsageError


def _ids_to_bytes(row: torch.Tensor) -> bytes:
    return bytes(i - 1 for i in row.tolist() if i)


def test_text_aclimdb_layout(tmp_path):
    root = tmp_path / "aclImdb"
    reviews = {("train", "pos"): ["great film", "loved it"], ("train", "neg"): ["awful", "bad", "dull"],
               ("test", "pos"): ["superb"], ("test", "neg"): ["boring and long"]}
    for (split, label), docs in reviews.items():
        (root / split / label).mkdir(parents=True)
        for i, d in enumerate(docs):
            (root / split / label / f"{i}_7.txt").write_text(d)
    splits, fmt = text.load_dir(tmp_path, max_len=8, n_val=1, seed=0)
    assert "aclImdb" in fmt
    assert len(splits["train"]) + len(splits["val"]) == 5 and len(splits["val"]) == 1
    test = splits["test"]
    got = {(_ids_to_bytes(x), int(y)) for x, y in zip(test.x, test.y)}
    assert got == {(b"superb", 1), (b"boring a", 0)}  # truncated at max_len bytes


def test_text_csv_with_word_labels(tmp_path):
    (tmp_path / "train.csv").write_text('label,text\npos,"good, really"\nneg,bad\nneg,meh\npos,yes\nneg,no\n')
    (tmp_path / "test.csv").write_text("text,label\nfine,1\n")
    splits, _ = text.load_dir(tmp_path, max_len=64, n_val=1, seed=0)
    assert splits["test"].y.tolist() == [1]
    labels = {(_ids_to_bytes(x), int(y)) for s in ("train", "val") for x, y in zip(splits[s].x, splits[s].y)}
    assert (b"good, really", 1) in labels and (b"meh", 0) in labels
    (tmp_path / "test.csv").write_text("text,label\nfine,maybe\n")
    with pytest.raises(UsageError, match=r"test.csv:2: label must be"):
        text.load_dir(tmp_path, max_len=64, n_val=1, seed=0)


def test_retrieval_tsv(tmp_path):
    rows = ["1\tp1\tp2\tattention is all\tall you need", "0\tp3\tp4\tgraphs\tproteins fold"]
    for name in retrieval.FILES.values():
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    s = retrieval.load_dir(tmp_path, max_len=10)["val"]
    assert s.y.tolist() == [1, 0]
    assert s.x.shape == s.x2.shape
    assert _ids_to_bytes(s.x[0]) == b"attention " and _ids_to_bytes(s.x2[1]) == b"proteins f"
    (tmp_path / retrieval.FILES["test"]).write_text("1\tonly\tthree\n")
    with pytest.raises(UsageError, match="expected 5 columns"):
        retrieval.load_dir(tmp_path, max_len=10)


def test_retrieval_tsv_reads_quotes_tabs_and_bytes_as_lra_does(tmp_path):
    # LRA's reader (lra_benchmarks/matching/input_pipeline.py): make_csv_dataset(field_delim="\t",
    # use_quote_delim=False, header=False), so a quote is an ordinary byte, every tab separates fields
    # and a record ends at \n, \r\n or \r; ByteTextEncoder then encodes the field's raw bytes as byte + 1
    # and keeps the first max_length (after the first 10,000). Python's csv module did none of this: it
    # took the unclosed quote below as the start of a field running into the next lines.
    rows = [b'1\tp1\tp2\t"Attention\tis "all" you need',
            b'0\tp3\tp4\tna\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\t\xe9t\xe9 "quoted"',  # UTF-8; Latin-1 bytes
            b'1.0\tp5\tp6\t""\t"']
    for name in retrieval.FILES.values():
        (tmp_path / name).write_bytes(rows[0] + b"\r\n" + rows[1] + b"\n" + rows[2] + b"\n")
    s = retrieval.load_dir(tmp_path, max_len=12)["train"]
    assert s.y.tolist() == [1, 0, 1]
    # Written out by hand from those rules, cut at 12 bytes (mid-character for the CJK text, as LRA does).
    assert [_ids_to_bytes(r) for r in s.x] == [b'"Attention', b"na\xc3\xafve \xe6\x97\xa5\xe6\x9c", b'""']
    assert [_ids_to_bytes(r) for r in s.x2] == [b'is "all" you', b'\xe9t\xe9 "quoted"', b'"']
    # A tab inside quotes still separates fields (LRA: "Expect 5 fields"); LRA's files have no header.
    (tmp_path / "bad.tsv").write_bytes(b'1\tp1\tp2\t"a\tb"\tc\n')
    with pytest.raises(UsageError, match=r"bad.tsv:1: expected 5 columns .* got 6"):
        retrieval.read_tsv(tmp_path / "bad.tsv", 12)
    (tmp_path / "bad.tsv").write_bytes(b"label\tid1\tid2\ttext1\ttext2\n")
    with pytest.raises(UsageError, match=r"bad.tsv:1: label must be 0 or 1"):
        retrieval.read_tsv(tmp_path / "bad.tsv", 12)


def test_cifar_pickles_to_grayscale_tokens(tmp_path):
    gen = torch.Generator().manual_seed(0)
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 3)]:
        data = torch.randint(0, 256, (n, 3072), generator=gen, dtype=torch.uint8).numpy()
        with (tmp_path / name).open("wb") as f:
            pickle.dump({b"data": data, b"labels": list(range(n))}, f)
    splits = image.load_dir(tmp_path, side=32, n_val=2, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [18, 2, 3]
    with (tmp_path / "test_batch").open("rb") as f:
        raw = pickle.load(f)[b"data"][1].astype(float)
    r, g, b = raw[:1024], raw[1024:2048], raw[2048:]
    expected = [round(0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]) + 1 for i in (0, 500, 1023)]
    got = splits["test"].x[1]
    assert [got[i].item() for i in (0, 500, 1023)] == pytest.approx(expected, abs=1)
    assert splits["test"].y.tolist() == [0, 1, 2]
    assert image.load_dir(tmp_path, side=16, n_val=2, seed=0)["test"].x.shape == (3, 256)


def test_cifar_wrong_format_is_one_clear_error(tmp_path):
    for name in (*image.TRAIN_FILES, "test_batch"):
        with (tmp_path / name).open("wb") as f:
            pickle.dump([1, 2, 3], f)
    with pytest.raises(UsageError, match="not a CIFAR-10 python batch"):
        image.load_dir(tmp_path, side=32, n_val=1, seed=0)


@pytest.mark.parametrize("task", ["lra-text", "lra-retrieval", "lra-image"])
def test_standins_are_labelled_balanced_and_in_vocab(task):
    data = load_lra(task, preset="smoke", seed=0)
    assert data.standin and "STAND-IN" in data.source
    counts = torch.bincount(data.train.y, minlength=data.n_classes)
    assert counts.min() >= 0.8 * counts.max()
    assert data.train.x.max() < data.vocab_size and data.train.x.shape[1] <= data.max_len
    assert (data.train.x2 is not None) == data.pair


def test_save_split_can_hold_back_test_labels(tmp_path):
    data = load_lra("lra-listops", preset="smoke", seed=0)
    data.save_split(tmp_path / "sandbox", include_labels=False)
    seen = load_saved(tmp_path / "sandbox")
    assert seen.test.y is None and torch.equal(seen.test.x, data.test.x)
    assert torch.equal(seen.val.y, data.val.y) and seen.vocab_size == data.vocab_size
    assert load_saved(data.save_split(tmp_path / "harness", include_labels=True)).test.y is not None


def test_bad_task_preset_and_dir_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown LRA task"):
        load_lra("lra-music")
    with pytest.raises(UsageError, match="unknown LRA data preset"):
        load_lra("lra-text", preset="huge")
    with pytest.raises(UsageError, match="no IMDb data found"):
        load_lra("lra-text", data_dir=tmp_path)


def _tiny_splits(*args, **kwargs) -> dict:
    x = torch.ones(4, 3, dtype=torch.int16)
    return {s: Split(x=x, y=torch.tensor([0, 1, 0, 1]), x2=x) for s in ("train", "val", "test")}


@pytest.mark.parametrize("preset", ["smoke", "cpu", "gpu"])
@pytest.mark.parametrize("task", ["lra-listops", "lra-text", "lra-retrieval", "lra-image", "lra-pathfinder"])
def test_generated_data_is_a_standin_at_every_preset(monkeypatch, task, preset):
    # Issue #19: the gpu preset's generated ListOps claimed to be LRA's data. Only LRA's released files
    # may be compared with published numbers; the generators are replaced by tiny splits so that the
    # gpu preset's sizes cost nothing here.
    from aira.data import lra

    for mod, fn in ((listops, "generate"), (pathfinder, "generate"), (text, "standin"),
                    (retrieval, "standin"), (image, "standin")):
        monkeypatch.setattr(mod, fn, _tiny_splits)
    lra._load.cache_clear()
    try:
        data = load_lra(task, preset=preset, seed=0)
    finally:
        lra._load.cache_clear()
    assert data.standin is True
    assert "STAND-IN" in data.source


def _write_listops(d, rows):
    for name in listops.FILES.values():
        (d / name).write_text("Source\tTarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows))


def test_only_lra_files_at_lra_sizes_are_comparable(tmp_path):
    _write_listops(tmp_path, [("( ( ( [MAX 2 ) 9 ) ] )", 9), ("( ( ( [SM 7 ) 5 ) ] )", 2)])
    assert load_lra("lra-listops", data_dir=tmp_path, preset="gpu").standin is False
    capped = load_lra("lra-listops", data_dir=tmp_path, preset="cpu")
    assert capped.standin is True and "not comparable" in capped.source
