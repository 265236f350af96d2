"""MAD's six tasks as MAD-lab defines them (github.com/athms/mad-lab, the reference code of Poli et al. 2024).

The rules below follow MAD-lab's `mad/data/instances.py` (one `generate_*_instance` per task), the baseline
settings of its `configs/tasks/*.yml` over the defaults of `mad/configs.py`'s `MADConfig` (`multi_query`
on, 1,280 test examples), and how `train.py` and `benchmark.py` train on them. Written here from those
rules, not copied. `aira.data.mad` builds the splits: train by MAD-lab's training rule, val (search) and
select (hidden) each by its test rule.

Per task (V: MAD-lab's vocabulary size, special tokens included; L: its sequence length):

  in_context_recall        V 16, L 128, 12,800 train. Keys [0, V/2), values [V/2, V). 63 key-value pairs
                           (a key's value is drawn at its first occurrence, so two keys may share a value),
                           then a probe: a key already presented, and its value. The row is the first 127
                           tokens. Answers: at a key seen in an earlier pair, its value (every repeat and
                           the final probe).
  noisy_in_context_recall  V 32 (16 of them noise, [16, 32)), L 128, 12,800 train, frac_noise 0.2: each of
                           the 63 pair slots but one is, with probability 0.2, two noise tokens instead.
  fuzzy_in_context_recall  V 16, L 128, 12,800 train. Pad V-1, keys [0, (V-1)//2), values up to V-1. Keys
                           and values are 1-3 distinct tokens (train: key length 1-3; test: always 3);
                           one probe pair sits in the body and is repeated at the end; rows are padded on
                           the left to L. Answers: from a repeated key's last token, its value's tokens.
  selective_copying        V 16, L 256, 16 tokens to copy, 12,800 train. Content [0, V-2), blank V-2, copy
                           token V-1. Each of the L-33 blanks goes before a uniformly chosen content token
                           (so none follows the last), then the copy token and 16 blanks; at those blanks
                           the answers are the content tokens in order. No answer is in the input.
  compression              V 16, L 32, 12,800 train. L-1 tokens of [0, V-1), then the compression token
                           V-1; every one of the L positions is an answer (see below).
  memorization             V 256, L 32, 256 train. One fixed table maps keys [0, 127) one-to-one onto values
                           [127, 255) (one value unused); a row is 16 pairs [key, insert token V-1] whose
                           answer, at the insert token, is the key's value. The value is never in the input.

Targets follow aira's convention: `y[t]` is what a causal model outputs at position `t` (MAD-lab's test
targets shifted to the position before the token they name), -100 elsewhere.

Where aira's version differs from MAD-lab, and why:
  - Training targets of the three recall tasks: MAD-lab trains them on every next token (its training
    instances return `inputs[1:]` as targets) and tests on the answers only; so do these splits (train_y
    is the next token everywhere, val_y / select_y the answers). The other three tasks train and test on
    their answers, as in MAD-lab.
  - Compression: MAD-lab trains it with an auto-encoder (`mad/model/auto_encoder.py`): the causal encoder's
    state at the compression token is the only thing an MLP decoder sees, with a position embedding, to
    output all L tokens. aira's trainer is a causal LM, which would score `y = x` as a copy of its own
    input. Its analogue: the L tokens, then L decode slots, each the compression token again; at decode
    slot i the answer is token i (row 2L long, every input position answered once, none teacher-forced).
    The decode slots can still attend back to the input, so attention can copy rather than compress;
    only a model without that access (a recurrence) must squeeze the sequence through its state.
  - Fuzzy recall's probe: MAD-lab inserts the probe pair once the body reaches a random index, but its
    loop can end before that index, leaving the final probe unanswerable in a few percent of rows. Here
    the probe takes the body's last pair slot in that case, so every probe has been presented.
  - Splits: MAD-lab draws test examples from the train stream's continuation and only warns when more
    than 0.1% repeat a training row; aira draws each split from its own stream and redraws a repeat
    (`aira.data.mad.make_mad`).
  - Score: MAD-lab's accuracy is torchmetrics' `MulticlassAccuracy`, by default the mean over classes of
    per-class accuracy; aira scores the share of answer tokens right. The full MAD score also averages
    each task over its harder variants (the `changes` of each task config) and the best of a learning
    rate / weight decay sweep; this module gives the baseline setting of each task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100


@dataclass(frozen=True, kw_only=True)
class MadLabTask:
    """One task's settings, named as MAD-lab's `MADConfig` names them; `vocab_size` counts every token."""

    vocab_size: int
    seq_len: int
    n_train: int = 12_800
    noise_vocab_size: int = 0
    frac_noise: float = 0.0
    k_motif_size: int = 1
    v_motif_size: int = 1
    num_tokens_to_copy: int = 0


@dataclass(frozen=True, kw_only=True)
class MadLabSettings:
    """The suite at MAD-lab's baseline settings (`configs/tasks/*.yml`); val and select are each MAD-lab's
    1,280 test examples."""

    in_context_recall: MadLabTask = MadLabTask(vocab_size=16, seq_len=128)
    fuzzy_in_context_recall: MadLabTask = MadLabTask(vocab_size=16, seq_len=128, k_motif_size=3, v_motif_size=3)
    noisy_in_context_recall: MadLabTask = MadLabTask(vocab_size=32, seq_len=128, noise_vocab_size=16,
                                                     frac_noise=0.2)
    selective_copying: MadLabTask = MadLabTask(vocab_size=16, seq_len=256, num_tokens_to_copy=16)
    compression: MadLabTask = MadLabTask(vocab_size=16, seq_len=32)
    memorization: MadLabTask = MadLabTask(vocab_size=256, seq_len=32, n_train=256)
    n_val: int = 1_280
    n_select: int = 1_280

    def task(self, name: str) -> MadLabTask:
        return getattr(self, name)


def answer_alphabet(task: str, t: MadLabTask) -> int:
    """How many distinct tokens an answer can be: 1 / this is a uniform guess's accuracy."""
    if task in ("in_context_recall", "noisy_in_context_recall"):
        return (t.vocab_size - t.noise_vocab_size) // 2
    if task == "fuzzy_in_context_recall":
        return (t.vocab_size - 1) - (t.vocab_size - 1) // 2
    if task == "selective_copying":
        return t.vocab_size - 2
    if task == "compression":
        return t.vocab_size - 1
    return (t.vocab_size - 1) - (t.vocab_size - 1) // 2  # memorization: the values


def row_length(task: str, t: MadLabTask) -> int:
    return {"in_context_recall": t.seq_len - 1, "noisy_in_context_recall": t.seq_len - 1,
            "compression": 2 * t.seq_len}.get(task, t.seq_len)


# ---------------------------------------------------------------- recall and noisy recall


def recall(rng: np.random.Generator, n: int, t: MadLabTask, training: bool):
    """MAD-lab's `generate_in_context_recall_instance` with `multi_query` (noisy recall: the same with noise)."""
    content = t.vocab_size - t.noise_vocab_size
    n_keys, n_slots = content // 2, t.seq_len // 2 - 1
    values = rng.integers(n_keys, content, (n, n_keys))  # a key's value, drawn independently per key
    keys = rng.integers(0, n_keys, (n, n_slots))
    noise = rng.random((n, n_slots)) < t.frac_noise if t.frac_noise > 0 else np.zeros((n, n_slots), bool)
    noise[np.arange(n), rng.integers(0, n_slots, n)] = False  # at least one pair
    full = np.empty((n, t.seq_len), dtype=np.int64)
    full[:, 0:-2:2] = keys
    full[:, 1:-2:2] = np.take_along_axis(values, keys, axis=1)
    if t.frac_noise > 0:  # a noise slot holds two noise tokens
        body = full[:, :-2].reshape(n, n_slots, 2)
        body[noise] = rng.integers(content, t.vocab_size, (int(noise.sum()), 2))
    # the probe: a key presented in the body, uniformly among the distinct ones
    slot_keys = np.where(noise, n_keys, keys)  # n_keys: a noise slot, which presents no key
    presented = np.zeros((n, n_keys + 1), bool)
    np.put_along_axis(presented, slot_keys, True, axis=1)
    probe = np.argmax(rng.random((n, n_keys)) * presented[:, :n_keys], axis=1)
    full[:, -2] = probe
    full[:, -1] = values[np.arange(n), probe]
    x = full[:, :-1]
    if training:
        return x, full[:, 1:].copy()
    # the answer at a key position: its value, if the key is in an earlier pair
    slot_keys = np.concatenate([slot_keys, probe[:, None]], axis=1)  # (n, n_slots + 1)
    onehot = (slot_keys[..., None] == np.arange(n_keys + 1)).astype(np.int32)
    earlier = np.take_along_axis(np.cumsum(onehot, axis=1) - onehot, slot_keys[..., None], axis=2)[..., 0]
    seen = (earlier > 0) & (slot_keys < n_keys)
    y = np.full_like(x, IGNORE)
    y[:, 0::2] = np.where(seen, full[:, 1::2], IGNORE)
    return x, y


# ---------------------------------------------------------------- fuzzy recall


def fuzzy_recall(rng: np.random.Generator, n: int, t: MadLabTask, training: bool):
    """MAD-lab's `generate_fuzzy_in_context_recall_instance` with `multi_query` and no noise."""
    pad = t.vocab_size - 1
    n_keys = pad // 2  # keys [0, n_keys), values [n_keys, pad)
    span = t.k_motif_size + t.v_motif_size
    slots = t.seq_len // 2 + 2  # more pairs than a row can hold (each is >= 2 tokens); slot 0 is the probe
    x = np.empty((n, t.seq_len), dtype=np.int64)
    y = np.empty_like(x)
    for i in range(n):
        # drawn in bulk per row: a key (value) is an ordered tuple of distinct tokens, uniform among them
        k_size = rng.integers(1, t.k_motif_size + 1, slots) if training else np.full(slots, t.k_motif_size)
        v_size = rng.integers(1, t.v_motif_size + 1, slots)
        k_tok = np.argsort(rng.random((slots, n_keys)), axis=1).tolist()
        v_tok = (np.argsort(rng.random((slots, pad - n_keys)), axis=1) + n_keys).tolist()
        k_size, v_size = k_size.tolist(), v_size.tolist()
        k_probe, v_probe = tuple(k_tok[0][: k_size[0]]), tuple(v_tok[0][: v_size[0]])
        probe_len = len(k_probe) + len(v_probe)
        probe_at = int(rng.integers(0, t.seq_len - 2 * probe_len))
        end = t.seq_len - probe_len - span  # the body stops growing once it reaches this length
        tokens: list[int] = []
        answers: list[int] = []  # aligned with tokens: the token where it is an answer, else -100
        table: dict[tuple[int, ...], tuple[int, ...]] = {}
        probe_in = False
        for j in range(1, slots):
            if len(tokens) >= end:
                break
            # the probe goes in at the first pair slot at or after probe_at, or in the body's last slot
            if not probe_in and (len(tokens) >= probe_at or len(tokens) + k_size[j] + v_size[j] >= end):
                k, v = k_probe, v_probe
                answers += [IGNORE] * probe_len
            else:
                k = tuple(k_tok[j][: k_size[j]])
                v = table.get(k) or (v_probe if k == k_probe else tuple(v_tok[j][: v_size[j]]))
                answers += [IGNORE] * len(k) + (list(v) if k in table else [IGNORE] * len(v))
            probe_in |= k == k_probe
            tokens += k + v
            table[k] = v
        tokens += k_probe + v_probe
        answers += [IGNORE] * len(k_probe) + list(v_probe)
        n_pad = t.seq_len + 1 - len(tokens)
        full = [pad] * n_pad + tokens
        x[i] = full[:-1]
        y[i] = full[1:] if training else ([IGNORE] * n_pad + answers)[1:]
    return x, y


# ---------------------------------------------------------------- selective copying, compression, memorization


def selective_copying(rng: np.random.Generator, n: int, t: MadLabTask, training: bool):
    """MAD-lab's `generate_selective_copying_instance`."""
    blank, copy, m = t.vocab_size - 2, t.vocab_size - 1, t.num_tokens_to_copy
    n_blank = t.seq_len - 2 * m - 1
    content = rng.integers(0, blank, (n, m))
    gaps = rng.multinomial(n_blank, np.full(m, 1 / m), size=n)  # blanks before each content token
    x = np.full((n, t.seq_len), blank, dtype=np.int64)
    np.put_along_axis(x, np.cumsum(gaps, axis=1) + np.arange(m), content, axis=1)
    x[:, t.seq_len - m - 1] = copy
    y = np.full_like(x, IGNORE)
    y[:, t.seq_len - m:] = content
    return x, y


def compression(rng: np.random.Generator, n: int, t: MadLabTask, training: bool):
    """MAD-lab's `generate_compression_instance`, decoded by a causal model (module docstring)."""
    token = t.vocab_size - 1
    seq = np.concatenate([rng.integers(0, token, (n, t.seq_len - 1)), np.full((n, 1), token)], axis=1)
    x = np.concatenate([seq, np.full_like(seq, token)], axis=1)
    y = np.full_like(x, IGNORE)
    y[:, t.seq_len:] = seq
    return x, y


def memorization_table(rng: np.random.Generator, t: MadLabTask) -> np.ndarray:
    """MAD-lab's `generate_kv_map`: the keys [0, K) and the values [K, V-1) each shuffled, then paired."""
    n_keys = (t.vocab_size - 1) // 2
    keys = rng.permutation(n_keys)
    values = rng.permutation(np.arange(n_keys, t.vocab_size - 1))[:n_keys]
    table = np.empty(n_keys, dtype=np.int64)
    table[keys] = values
    return table


def memorization(rng: np.random.Generator, n: int, t: MadLabTask, training: bool, table: np.ndarray):
    """MAD-lab's `generate_memorization_instance`."""
    keys = rng.integers(0, len(table), (n, t.seq_len // 2))
    x = np.full((n, t.seq_len), t.vocab_size - 1, dtype=np.int64)  # the insert token
    x[:, 0::2] = keys
    y = np.full_like(x, IGNORE)
    y[:, 1::2] = table[keys]
    return x, y


GENERATORS = {
    "in_context_recall": recall,
    "fuzzy_in_context_recall": fuzzy_recall,
    "noisy_in_context_recall": recall,
    "selective_copying": selective_copying,
    "compression": compression,
    "memorization": memorization,
}
