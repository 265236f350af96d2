"""Put aira's tokenizer into an exported folder, so `AutoTokenizer.from_pretrained(folder)` works.

lm-evaluation-harness (and most Hugging Face tooling) loads the tokenizer from the model folder. aira's
tokenizers (aira/data/tokenizer.py) are already `tokenizers`-library objects or plain bytes, and any
Hugging Face tokenizer.json is taken as it is:
  - Hugging Face: a `tokenizers` file (a "model" key, no "aira_kind"), written unchanged; its special
    tokens are its added tokens marked special.
  - BPE: its saved JSON is a `tokenizers` file plus an "aira_kind" key; written back without that key.
  - bytes: rebuilt as a byte-level BPE with no merges whose 256 base tokens have ids 0..255 in byte
    order (the byte-level alphabet maps each byte to one printable character), so every UTF-8 byte
    encodes to its own value, then the special tokens at 256, ... as aira numbers them.
Both get a `tokenizer_config.json` naming PreTrainedTokenizerFast, with <|endoftext|> as eos token and
no BOS added, so ids equal aira's `encode` (tests/export checks it).
Vocabulary size: the largest id + 1 (added tokens included), which `aira export` takes as the model's
when neither --vocab-size nor a checkpoint sets it (bytes: 256 + specials, 257 with <|endoftext|>).
Eos token: <|endoftext|>, else another usual eos name (</s>, <|end_of_text|>, <eos>), else the first special.
Pad token: a special token named like one (<pad>, <|pad|>, [PAD], ...) if the tokenizer has it, else the
eos token, as GPT-2 and Llama exports do: aira trains on packed sequences without padding, and the
exported model needs right padding, where what the pad token is never reaches a real position. Its id
goes into config.json and generation_config.json beside eos_token_id, so `generate` and batching
tools agree on it without being told.
"""

from __future__ import annotations

import json
from pathlib import Path

from aira.errors import UsageError
from aira.userfiles import read_text

EOT = "<|endoftext|>"
EOS_NAMES = (EOT, "</s>", "<|end_of_text|>", "<eos>", "<|eos|>")
PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|padding|>", "<|finetune_right_pad_id|>")


def find_tokenizer_file(source: str | Path) -> Path:
    """A tokenizer.json, given the file or a folder holding it (a prepared data folder, a HF model folder)."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise UsageError(
            f"no aira tokenizer at {source}, nor a Hugging Face one (give a tokenizer.json or a folder holding one)"
        )
    return path


def _n_ids(tok) -> int:
    """Ids a model must cover: the largest id + 1 (a vocabulary may leave gaps)."""
    return max(tok.get_vocab(with_added_tokens=True).values(), default=-1) + 1


def _hf_tokenizer_json(saved: dict, path: Path) -> tuple[str, list[str], int]:
    """(tokenizers JSON text, special tokens, vocabulary size) from a saved tokenizer dict."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    kind = saved.get("aira_kind")
    if kind is None and "model" in saved:  # a Hugging Face tokenizer.json
        text = json.dumps(saved)
        try:
            tok = Tokenizer.from_str(text)
        except Exception as e:  # noqa: BLE001 - the library raises a bare Exception on a bad file
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UsageError(f"{path} is not a tokenizer the tokenizers library reads: {reason}") from None
        specials = [t.content for t in tok.get_added_tokens_decoder().values() if t.special]
        return text, specials, _n_ids(tok)
    if kind == "bpe":
        data = {k: v for k, v in saved.items() if k != "aira_kind"}
        tok = Tokenizer.from_str(json.dumps(data))
        specials = [t.content for t in tok.get_added_tokens_decoder().values()]
        return json.dumps(data), specials, _n_ids(tok)
    if kind == "bytes":
        from aira.data.tokenizer import _char_to_byte

        vocab = {char: byte for char, byte in _char_to_byte().items()}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        specials = list(saved.get("specials", []))
        tok.add_special_tokens(specials)
        return tok.to_str(), specials, _n_ids(tok)
    if kind is None:
        raise UsageError(f"{path} is not a tokenizer file: no 'model' (Hugging Face) or 'aira_kind' (aira) key")
    raise UsageError(f"{path}: unknown aira tokenizer kind {kind!r}")


def _read(source: str | Path) -> tuple[Path, str, list[str], int]:
    path = find_tokenizer_file(source)
    try:
        saved = json.loads(read_text(path, "tokenizer"))
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not a tokenizer file: {e}") from None
    if not isinstance(saved, dict):
        raise UsageError(f"{path} is not a tokenizer file: expected a JSON object")
    return path, *_hf_tokenizer_json(saved, path)


def tokenizer_vocab_size(source: str | Path) -> int:
    """The vocabulary a model needs for this tokenizer: its largest id + 1."""
    return _read(source)[3]


def read_tokenizer(source: str | Path, *, vocab_size: int) -> tuple[str, list[str]]:
    """(tokenizers JSON text, special tokens) of an aira or Hugging Face tokenizer; UsageError for one
    that is not, or that does not fit the vocabulary. Read before anything is exported."""
    path, text, specials, n = _read(source)
    if n > vocab_size:
        raise UsageError(f"tokenizer {path} has {n} tokens, more than the model's vocabulary of {vocab_size}")
    return text, specials


def write_tokenizer(
    source: str | Path, out: Path, *, vocab_size: int, max_len: int, read: tuple[str, list[str]] | None = None
) -> dict:
    """Write tokenizer.json and tokenizer_config.json into `out`; returns the eos and pad ids for
    config.json and generation_config.json (none without a special token).
    `read`: what `read_tokenizer` returned for `source`, if the caller checked it already."""
    text, specials = read or read_tokenizer(source, vocab_size=vocab_size)
    (out / "tokenizer.json").write_text(text, encoding="utf-8")
    eos = next((t for t in EOS_NAMES if t in specials), specials[0] if specials else None)
    pad = next((t for t in PAD_NAMES if t in specials), eos)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_len,
        "eos_token": eos,
        "pad_token": pad,
        "padding_side": "right",  # the exported model refuses left padding
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    if eos is None:
        return {}
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(text)
    return {"eos_token_id": tok.token_to_id(eos), "pad_token_id": tok.token_to_id(pad)}
