"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aira.data.tokenizer import ByteTokenizer, bytes_per_token_table
from aira.train.metrics import (
    bits_per_byte,
    count_target_bytes,
    mask_zero_byte_targets,
    masked_accuracy,
    masked_correct,
    token_nll_sum,
)


def test_masked_accuracy_counts_only_answer_positions():
    logits = torch.tensor([[[0.0, 5.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [9.0, 0.0, 0.0]]])
    targets = torch.tensor([[1, 2, 2, -100]])  # right, wrong, right, ignored (argmax 0 would be wrong)
    assert masked_correct(logits, targets) == (2, 3)
    assert masked_accuracy(logits, targets) == pytest.approx(2 / 3)
    assert masked_accuracy(logits, torch.full_like(targets, -100)) == 0.0


def test_token_nll_sum_matches_hand_softmax():
    logits = torch.tensor([[math.log(3.0), 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    targets = torch.tensor([0, 3, -100])
    # p = 3/6 at the first position, 1/4 at the second; the third is ignored
    assert token_nll_sum(logits, targets) == pytest.approx(math.log(2) + math.log(4), rel=1e-6)


def test_bits_per_byte_with_characters_split_across_tokens():
    """"é€" is 5 UTF-8 bytes: C3 A9 | E2 82 AC. A byte-level BPE might cut it into three tokens
    b"\\xc3", b"\\xa9\\xe2", b"\\x82\\xac", none of which decodes alone: decoded one by one, each
    stray byte becomes U+FFFD (3 bytes), 3 + 6 + 6 = 15 bytes. The metric must count 1 + 2 + 2 = 5."""
    token_bytes = [b"\xc3", b"\xa9\xe2", b"\x82\xac", b""]  # id 3 is a special token
    assert b"".join(token_bytes[:3]).decode("utf-8") == "é€"
    table = np.array([len(b) for b in token_bytes])
    targets = torch.tensor([[0, 1, 2, -100]])
    assert count_target_bytes(targets, table) == 5
    naive = sum(len(token_bytes[i].decode("utf-8", errors="replace").encode("utf-8")) for i in (0, 1, 2))
    assert naive == 15

    # logits by hand: p(target) = 1/2 at the first position (ln 3 vs three zeros), 1/4 at the others
    logits = torch.zeros(1, 4, 4)
    logits[0, 0, 0] = math.log(3.0)
    nats = token_nll_sum(logits, targets)
    assert nats == pytest.approx(math.log(2) + 2 * math.log(4), rel=1e-6)  # = 5 ln 2
    # bpb = 5 ln 2 / (ln 2 * 5 bytes) = 1.0 exactly
    assert bits_per_byte(nats, count_target_bytes(targets, table)) == pytest.approx(1.0, rel=1e-6)
    assert bits_per_byte(nats, naive) == pytest.approx(1 / 3, rel=1e-6)  # what over-counting reports


def test_byte_tokenizer_table_counts_utf8_bytes_of_accented_text():
    tok = ByteTokenizer()
    text = "é€ café"
    ids = torch.tensor(tok.encode(text))
    table = bytes_per_token_table(tok)
    assert count_target_bytes(ids, table) == len(text.encode("utf-8")) == 11
    assert count_target_bytes(ids, torch.from_numpy(table)) == 11  # a tensor table works too


def test_mask_zero_byte_targets_drops_specials_only():
    table = np.array([1, 2, 0])
    targets = torch.tensor([0, 2, 1, -100, 2])
    assert mask_zero_byte_targets(targets, table).tolist() == [0, -100, 1, -100, -100]


def test_bits_per_byte_needs_bytes():
    assert bits_per_byte(math.log(2) * 8, 8) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive byte count"):
        bits_per_byte(1.0, 0)
