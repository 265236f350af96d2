"""The `madlab` MAD settings: rows follow MAD-lab's own rules (github.com/athms/mad-lab).

Each rule below was written from MAD-lab's `mad/data/instances.py` (the function named in the comment),
its `configs/tasks/*.yml` baselines and `mad/configs.py`'s `MADConfig` defaults (`multi_query=True`,
`num_test_examples=1_280`), not from aira's generator: the vocabulary layout, which positions carry an
answer, and that no answer is visible in the input before it is due.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from aira.data.mad import MAD_PRESETS, MAD_TASKS, mad_settings_with, make_mad
from aira.data.madlab import MadLabSettings

MADLAB = MAD_PRESETS["madlab"]
IGNORE = -100


def small(n: int = 96) -> MadLabSettings:
    """MAD-lab's baselines with fewer examples, so the tests run in seconds."""
    tasks = {task: replace(MADLAB.task(task), n_train=n) for task in MAD_TASKS}
    return mad_settings_with(MADLAB, n_val=n, n_select=n, **tasks)


@pytest.fixture(scope="module")
def data():
    return {task: make_mad(task, small(), seed=2) for task in MAD_TASKS}


def splits(d):
    return {"train": (d.train_x, d.train_y), "val": (d.val_x, d.val_y), "select": (d.select_x, d.select_y)}


def test_settings_are_madlabs_baselines():
    # configs/tasks/*.yml `baseline` over MADConfig's defaults (num_test_examples 1,280)
    expect = {  # task: (vocab_size, seq_len, num_train_examples)
        "in_context_recall": (16, 128, 12_800), "fuzzy_in_context_recall": (16, 128, 12_800),
        "noisy_in_context_recall": (32, 128, 12_800), "selective_copying": (16, 256, 12_800),
        "compression": (16, 32, 12_800), "memorization": (256, 32, 256),
    }
    for task, (vocab, seq_len, n_train) in expect.items():
        t = MADLAB.task(task)
        assert (t.vocab_size, t.seq_len, t.n_train) == (vocab, seq_len, n_train), task
    assert (MADLAB.n_val, MADLAB.n_select) == (1_280, 1_280)
    noisy, fuzzy = MADLAB.noisy_in_context_recall, MADLAB.fuzzy_in_context_recall
    assert (noisy.noise_vocab_size, noisy.frac_noise) == (16, 0.2)
    assert (fuzzy.k_motif_size, fuzzy.v_motif_size) == (3, 3)
    assert MADLAB.selective_copying.num_tokens_to_copy == 16


def recall_answers(row: list[int], n_keys: int) -> list[int]:
    """generate_in_context_recall_instance, multi_query, test targets shifted by one: pair slots are (2i, 2i+1);
    at a key (< n_keys) presented in an earlier slot, the answer is the next token, its value (the row ends
    on the final probe's key, whose value is only in the targets)."""
    out, memory = [IGNORE] * len(row), {}
    for t in range(0, len(row), 2):
        if row[t] < n_keys:
            out[t] = memory.get(row[t], IGNORE)
            if t + 1 < len(row):
                memory[row[t]] = row[t + 1]
    return out


@pytest.mark.parametrize("task", ["in_context_recall", "noisy_in_context_recall"])
def test_recall_rules(data, task):
    d, t = data[task], MADLAB.task(task)
    content = t.vocab_size - t.noise_vocab_size  # keys [0, content/2), values [content/2, content), then noise
    n_keys = content // 2
    assert d.vocab_size == t.vocab_size
    noise_slots = total_slots = 0
    for split, (x, y) in splits(d).items():
        assert x.shape[1] == t.seq_len - 1  # the seq_len-token instance minus its last token
        for row, tgt in zip(x.tolist(), y.tolist()):
            table = {}
            for a, b in zip(row[0::2], row[1::2]):
                if a < n_keys:  # a pair: key, then its value, the same value for the key all row long
                    assert n_keys <= b < content and table.setdefault(a, b) == b
                else:  # a noise slot: two noise tokens
                    assert a >= content and b >= content
                    noise_slots += 1
                total_slots += 1
            probe = row[-1]  # the final probe: a key of an earlier pair, answered with its value
            assert probe < n_keys and probe in table
            if split == "train":  # training instances: the next token everywhere
                assert tgt[:-1] == row[1:] and tgt[-1] == table[probe]
            else:
                assert tgt == recall_answers(row, n_keys) and tgt[-1] == table[probe]
    assert abs(noise_slots / total_slots - t.frac_noise) < 0.03


def test_fuzzy_recall_rules(data):
    d, t = data["fuzzy_in_context_recall"], MADLAB.fuzzy_in_context_recall
    # generate_fuzzy_in_context_recall_instance, multi_query: pad V-1, keys [0, (V-1)//2), values up to V-1;
    # key and value motifs are permutations (distinct tokens); test keys are always k_motif_size long;
    # rows are padded on the left to seq_len + 1 before the autoregressive shift
    pad = t.vocab_size - 1
    n_keys = pad // 2
    assert d.vocab_size == t.vocab_size
    key_lengths = {"train": set(), "val": set(), "select": set()}
    for split, (x, y) in splits(d).items():
        assert x.shape[1] == t.seq_len
        for row, tgt in zip(x.tolist(), y.tolist()):
            start = next(i for i, tok in enumerate(row) if tok != pad)
            assert start >= 1 and pad not in row[start:]
            body = row[start:]
            runs, cur = [], [body[0]]  # maximal runs of key tokens and of value tokens, alternating
            for a, b in itertools.pairwise(body):
                if (a < n_keys) == (b < n_keys):
                    cur.append(b)
                else:
                    runs.append(cur)
                    cur = [b]
            runs.append(cur)
            assert runs[0][0] < n_keys
            keys, values = runs[0::2], runs[1::2]
            assert all(len(set(r)) == len(r) for r in runs)
            key_lengths[split] |= {len(k) for k in keys}
            assert all(1 <= len(v) <= t.v_motif_size for v in values)
            table, answers, pos = {}, [IGNORE] * len(row), start
            for i, k in enumerate(keys):
                v = values[i] if i < len(values) else []
                full = table.get(tuple(k))
                if full is not None:  # a repeated key: from its last token, each next value token
                    for m in range(len(v) + 1):
                        if m < len(full) and pos + len(k) - 1 + m < len(row):
                            answers[pos + len(k) - 1 + m] = full[m]
                elif pos + len(k) + len(v) < len(row):  # a complete pair: a key follows its value
                    table[tuple(k)] = v
                pos += len(k) + len(v)
            if split == "train":
                assert tgt[:-1] == row[1:]
            else:
                assert tgt == answers
                assert tgt[-1] != IGNORE  # the final probe repeats a key of the body
    assert key_lengths["train"] == {1, 2, 3}
    assert key_lengths["val"] == key_lengths["select"] == {t.k_motif_size}


def test_selective_copying_rules(data):
    d, t = data["selective_copying"], MADLAB.selective_copying
    # generate_copying_instance(selective=True): content [0, V-2), blank V-2, copy token V-1; the blanks are
    # inserted before content tokens, so the last content token is right before the copy token; after it,
    # num_tokens_to_copy blanks whose targets are the content tokens in order
    blank, copy, m, length = t.vocab_size - 2, t.vocab_size - 1, t.num_tokens_to_copy, t.seq_len
    assert d.vocab_size == t.vocab_size
    for x, y in splits(d).values():
        assert x.shape[1] == length
        for row, tgt in zip(x.tolist(), y.tolist()):
            head, after = row[: length - m - 1], row[length - m:]
            content = [tok for tok in head if tok != blank]
            assert len(content) == m and all(tok < blank for tok in content) and head[-1] != blank
            assert row[length - m - 1] == copy and after == [blank] * m  # no answer in the input
            assert tgt == [IGNORE] * (length - m) + content


def test_compression_rules(data):
    d, t = data["compression"], MADLAB.compression
    # generate_compression_instance: seq_len - 1 tokens of [0, V-1), then the compression token V-1, and
    # every position is a target; aira's causal analogue decodes them after the input, one per decode slot
    token, length = t.vocab_size - 1, t.seq_len
    assert d.vocab_size == t.vocab_size
    for x, y in splits(d).values():
        assert x.shape[1] == 2 * length
        assert bool((x[:, : length - 1] < token).all()) and bool((x[:, length - 1 :] == token).all())
        assert bool((y[:, :length] == IGNORE).all()) and torch.equal(y[:, length:], x[:, :length])


def test_memorization_rules(data):
    d, t = data["memorization"], MADLAB.memorization
    # generate_memorization_instance with generate_kv_map(vocab_size - 1): keys [0, (V-1)//2) map one-to-one
    # onto values [(V-1)//2, V-1), one fixed map; a row is seq_len/2 pairs [key, insert token V-1] and the
    # target at the insert token is the key's value (never in the input)
    insert, n_keys = t.vocab_size - 1, (t.vocab_size - 1) // 2
    assert d.vocab_size == t.vocab_size
    table = {}
    for x, y in splits(d).values():
        assert x.shape[1] == t.seq_len
        assert bool((x[:, 0::2] < n_keys).all()) and bool((x[:, 1::2] == insert).all())
        assert bool((y[:, 0::2] == IGNORE).all())
        for k, v in zip(x[:, 0::2].flatten().tolist(), y[:, 1::2].flatten().tolist()):
            assert n_keys <= v < insert and table.setdefault(k, v) == v
    assert len(set(table.values())) == len(table)  # one-to-one
    full = make_mad("memorization", mad_settings_with(small(), memorization=MADLAB.memorization), seed=2)
    assert len({*full.train_x[:, 0::2].flatten().tolist()}) == n_keys  # 256 training rows show every key


def test_madlab_splits_are_deterministic_and_seeded():
    a = make_mad("fuzzy_in_context_recall", small(16), seed=0)
    b = make_mad("fuzzy_in_context_recall", small(16), seed=0)
    c = make_mad("fuzzy_in_context_recall", small(16), seed=1)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.val_x, c.val_x)
