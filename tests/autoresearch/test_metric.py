"""val_bpb as the harness computes it, against a hand-computed example with multi-byte characters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aira.data.shards import TokenData
from aira.data.tokenizer import ByteTokenizer
from aira.tasks.autoresearch.evaluate import InterfaceError, script_keys, split_bpb, summary_lines


def _bytes_data(text: str, seq_len: int) -> TokenData:
    """Byte tokens of `text` as the val split: ids 0..255 are bytes (1 byte each), 256 is a special."""
    tok = ByteTokenizer()
    ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    table = np.array([1] * 256 + [0], dtype=np.int32)
    return TokenData(root=None, tokenizer=tok, meta={}, splits={"val": ids}, bytes_per_token=table)


def test_val_bpb_hand_computed_with_multibyte_characters():
    # "é€a" is 2 + 3 + 1 = 6 UTF-8 bytes; each byte is a token that holds part of a character. Decoding
    # tokens one by one would count U+FFFD (3 bytes) for the 5 partial ones and over-count the bytes.
    text = "é€aé€a"  # 12 bytes -> windows of 11: targets are bytes 1..11 (11 targets, 11 bytes)
    data = _bytes_data(text, 11)
    V = data.vocab_size  # 257
    # A model that puts probability 1/2 on the right next byte and spreads the rest uniformly.
    ids = list(text.encode("utf-8"))
    nxt = {i: ids[i + 1] for i in range(len(ids) - 1)}

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        out = torch.full((*x.shape, V), math.log(0.5 / (V - 1)))
        for t in range(x.shape[1]):
            out[0, t, nxt[t]] = math.log(0.5)
        return out

    bpb, n_tokens, n_bytes = split_bpb(logits_fn, data, "val", seq_len=11, batch=1)
    assert (n_tokens, n_bytes) == (11, 11)
    # Each target costs -ln(1/2) nats = 1 bit, over 11 targets and 11 bytes: exactly 1 bit per byte.
    assert bpb == pytest.approx(1.0, abs=1e-5)
    # And with a uniform model: log2(257) bits per target, 11 targets over 11 bytes.
    uni, _, _ = split_bpb(lambda x: torch.zeros(*x.shape, V), data, "val", seq_len=11, batch=1)
    assert uni == pytest.approx(math.log2(V), rel=1e-6)


def test_multi_byte_tokens_count_their_own_bytes_and_specials_count_nothing():
    # A hand-made vocabulary: 0 special (0 bytes), 1 'a' (1 byte), 2 'é' (2 bytes), 3 '€' (3 bytes),
    # 4 the first byte of '€' alone (1 byte: a partial character).
    table = np.array([0, 1, 2, 3, 1], dtype=np.int32)
    seq = np.array([1, 2, 3, 0, 4, 1, 2], dtype=np.uint16)  # targets: 2 3 0 4 1 2
    data = TokenData(root=None, tokenizer=type("T", (), {"vocab_size": 5})(), meta={},
                     splits={"val": seq}, bytes_per_token=table)
    bpb, n_tokens, n_bytes = split_bpb(lambda x: torch.zeros(*x.shape, 5), data, "val", seq_len=6)
    assert n_bytes == 2 + 3 + 1 + 1 + 2  # the special target is left out; the partial token is 1 byte
    assert n_tokens == 5
    assert bpb == pytest.approx(5 * math.log(5) / (math.log(2) * 9))


def test_wrong_logits_shape_is_an_interface_error():
    data = _bytes_data("abcdefgh", 4)
    with pytest.raises(InterfaceError, match=r"logits of shape \(1, 4, 10\)"):
        split_bpb(lambda x: torch.zeros(*x.shape, 10), data, "val", seq_len=4)


def test_summary_lines_reads_the_final_block():
    text = "step 1\nloss: 3\n---\npeak_memory_mb: 120.5\nnum_steps: 7\nnote: fine\nnot a pair\n"
    assert summary_lines(text) == {"peak_memory_mb": 120.5, "num_steps": 7.0, "note": "fine"}


def test_reserved_summary_keys_cannot_be_spoofed():
    spoofs = ["Val_BPB", "VAL_BPB", "val__bpb", "valbpb", "Metric", "METRIC", "Selection_Metric",
              "selectionmetric", "True_val_bpb", "Status", "Device", "sandbox", "Seconds", "Log_Path",
              "val_bpb\u200b", "\uff56al_bpb", "v\u0430l_bpb", "val_bp\u0299"]  # invisible, full-width, Cyrillic
    text = "---\n" + "".join(f"{k}: 0.001\n" for k in spoofs) + "mfu: 0.4\nval_bpb_hint: 1.5\n"
    summary = summary_lines(text)
    assert len(summary) == len(spoofs) + 2
    assert script_keys(summary, taken={"device", "sandbox", "preset"}) == {"mfu": 0.4, "val_bpb_hint": 1.5}
