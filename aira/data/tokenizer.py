"""Tokenizers whose every token maps to exact UTF-8 bytes, so bits per byte can be counted exactly.

  ByteTokenizer   ids 0..255 are the bytes themselves, then the special tokens
  BPETokenizer    byte-level BPE trained locally with the `tokenizers` library (GPT-2 style: each byte
                  is first mapped to a printable character, so a token's string maps back to raw bytes)

`bytes_per_token_table(tok)` gives, for each id, how many UTF-8 bytes it contributes (0 for specials).
A token may hold part of a multi-byte character (e.g. the first byte of "€"); its bytes are still exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from aira.errors import UsageError

EOT = "<|endoftext|>"


@runtime_checkable
class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_bytes(self, token_id: int) -> bytes: ...

    def save(self, path: str | Path) -> None: ...


def bytes_per_token_table(tok: Tokenizer) -> np.ndarray:
    """(vocab_size,) int32: the raw UTF-8 bytes each token id stands for; 0 for special tokens."""
    return np.array([len(tok.token_bytes(i)) for i in range(tok.vocab_size)], dtype=np.int32)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load whichever tokenizer `save` wrote to `path` (a JSON file)."""
    kind = json.loads(Path(path).read_text(encoding="utf-8")).get("aira_kind")
    if kind == "bytes":
        return ByteTokenizer.load(path)
    if kind == "bpe":
        return BPETokenizer.load(path)
    raise UsageError(f"{path} is not a tokenizer saved by aira")


class ByteTokenizer:
    """UTF-8 bytes as tokens: no training, no unknowns; specials follow the 256 byte ids."""

    def __init__(self, specials: Sequence[str] = (EOT,)):
        self.specials = tuple(specials)
        self.vocab_size = 256 + len(self.specials)

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        if not 0 <= token_id < self.vocab_size:
            raise IndexError(f"token id {token_id} outside 0..{self.vocab_size - 1}")
        return bytes([token_id]) if token_id < 256 else b""

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"aira_kind": "bytes", "specials": list(self.specials)}))

    @classmethod
    def load(cls, path: str | Path) -> ByteTokenizer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["specials"])


@cache
def _char_to_byte() -> dict[str, int]:
    """Inverse of the byte-level alphabet: printable Latin-1 bytes stand for themselves, the other
    bytes (controls, space, 0x7F-0xA0, 0xAD) are shifted to code points 256, 257, ... in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    mapping, shift = {chr(b): b for b in printable}, 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + shift)] = b
            shift += 1
    return mapping


class BPETokenizer:
    """Byte-level BPE from the `tokenizers` library: ByteLevel pre-tokenizer (GPT-2 regex split, no
    added prefix space) and decoder, so decode(encode(s)) == s for any string."""

    def __init__(self, hf_tokenizer):
        self._tok = hf_tokenizer
        self.vocab_size = hf_tokenizer.get_vocab_size(with_added_tokens=True)
        specials = {t.content for t in hf_tokenizer.get_added_tokens_decoder().values()}
        to_byte = _char_to_byte()
        self._bytes: list[bytes] = []
        for i in range(self.vocab_size):
            piece = hf_tokenizer.id_to_token(i)
            self._bytes.append(b"" if piece in specials else bytes(to_byte[c] for c in piece))

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8192, *, min_frequency: int = 2,
              specials: Sequence[str] = (EOT,), show_progress: bool = False) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size < len(alphabet) + len(specials):
            raise UsageError(f"BPE vocab_size must be >= {len(alphabet) + len(specials)} "
                             f"(256 bytes + specials), got {vocab_size}")
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(specials), initial_alphabet=alphabet,
                                      show_progress=show_progress)
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        # through the exact bytes rather than the library decoder, so specials and split characters
        # behave as in ByteTokenizer
        return b"".join(self._bytes[int(i)] for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        if not 0 <= token_id < self.vocab_size:
            raise IndexError(f"token id {token_id} outside 0..{self.vocab_size - 1}")
        return self._bytes[token_id]

    def save(self, path: str | Path) -> None:
        data = json.loads(self._tok.to_str())
        data["aira_kind"] = "bpe"
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data.pop("aira_kind", None)
        return cls(HFTokenizer.from_str(json.dumps(data)))
