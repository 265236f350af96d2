"""The MAD synthetic task suite (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures").

Six token-manipulation tasks in two families of generators, picked by the settings:

  - `MadSettings` (presets `default`, `cpu`, `cpu32`, `copy16`, `tiny`): aira's causal, teacher-forced
    variants, below. They keep the task names but not MAD-lab's rules, so their scores are not MAD scores.
  - `MadLabSettings` (preset `madlab`): the tasks as MAD-lab defines them, each at its own baseline
    settings (`aira.data.madlab`, whose docstring says where a causal LM must differ from MAD-lab).

aira's variants, and how each differs from MAD-lab (vocabulary V content tokens, length L):

  in_context_recall        [key, value] pairs over V/2 keys, one key->value bijection per sequence; the
                           answer at every repeated key. MAD-lab: values drawn per key (not a bijection),
                           a final probe, and training on every next token rather than on answers only.
  fuzzy_in_context_recall  keys and values are spans of 1..3 tokens; `fuzzy_n_keys` (4) prefix-free keys
                           per sequence, repeated. MAD-lab: keys drawn from every ordering of 1-3 distinct
                           key tokens (test keys always 3), left padding, a final probe.
  noisy_in_context_recall  recall with 40% of positions single noise tokens scattered between pairs.
                           MAD-lab: 20% of the pair slots replaced by 2-token noise blocks, V 32 with noise.
  selective_copying        content among blanks, a separator, then the copy teacher-forced (the copy so
                           far is in the input). MAD-lab: blank inputs over the copy, L 256.
  compression              a sequence, a compression token, then the sequence again teacher-forced, so
                           each answer is visible in context: it measures copying. MAD-lab: an auto-
                           encoder decoding 32 tokens from the state at the compression token.
  memorization             [key, value] pairs from one fixed table (`memory_keys` keys, values drawn with
                           replacement); the value is in the input, so a key repeated in a row is answered
                           from context. MAD-lab: [key, insert] pairs, 127 keys one-to-one onto 128 values,
                           V 256, 256 training examples.

Every example is an input row `x` (L,) and a target row `y` (L,) aligned to it: `y[t]` is what a causal
model must output at position `t`, and -100 where nothing can be known (a key seen for the first time,
noise, the prompt of a copy); aira's variants train and test on those answers only. The suite score is the
mean masked accuracy over tasks.

Notable choices:
  - Fuzzy keys are drawn prefix-free within a sequence (no key starts another), so a causal model can
    tell where a key ends; values need no such care, as keys and values use disjoint tokens.
  - Splits come from disjoint seed streams (`SeedSequence([seed, task, split])`); memorization's table
    comes from its own stream, the same for all splits, since it must be learnt from train.
  - No split shares an input row with another: a val row equal to a train row, or a select row equal to
    either, is replaced from the split's own redraw stream. Splits without such a row are unchanged.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from aira.data.madlab import GENERATORS as MADLAB_GENERATORS
from aira.data.madlab import MadLabSettings, row_length
from aira.data.madlab import memorization_table as madlab_memorization_table
from aira.errors import UsageError

IGNORE = -100

MAD_TASKS: tuple[str, ...] = (
    "in_context_recall",
    "fuzzy_in_context_recall",
    "noisy_in_context_recall",
    "selective_copying",
    "compression",
    "memorization",
)

_SPLITS = {"train": 0, "val": 1, "select": 2, "table": 3, "val-redraw": 4, "select-redraw": 5}


@dataclass(frozen=True, kw_only=True)
class MadSettings:
    """One difficulty level of aira's variants of the suite (not MAD-lab's rules: see the module docstring). `vocab_size` counts content tokens (keys + values for recall);
    noise, separator and compression tokens are added after them, so `MadData.vocab_size` is larger."""

    vocab_size: int = 16
    seq_len: int = 128
    n_train: int = 12_800
    n_val: int = 1_280
    n_select: int = 1_280
    noise_vocab_size: int = 16  # noisy recall: distinct noise tokens
    frac_noise: float = 0.4  # noisy recall: share of positions that are noise
    max_key_len: int = 3  # fuzzy recall: key spans are 1..max_key_len tokens
    max_value_len: int = 3  # fuzzy recall: value spans are 1..max_value_len tokens
    fuzzy_n_keys: int = 4  # fuzzy recall: distinct key spans per sequence
    n_copy: int = 16  # selective copying: content tokens to copy
    memory_keys: int = 256  # memorization: size of the fixed key table

    def __post_init__(self) -> None:
        if self.vocab_size < 4 or self.vocab_size % 2:
            raise UsageError(f"MAD vocab_size must be even and >= 4, got {self.vocab_size}")
        if self.seq_len < 8 or self.seq_len % 2:
            raise UsageError(f"MAD seq_len must be even and >= 8, got {self.seq_len}")
        if min(self.n_train, self.n_val, self.n_select) < 1:
            raise UsageError("MAD split sizes must be >= 1")
        if not 0.0 <= self.frac_noise < 0.9:
            raise UsageError(f"MAD frac_noise must be in [0, 0.9), got {self.frac_noise}")
        if not 1 <= self.n_copy <= self.seq_len // 2:
            raise UsageError(f"MAD n_copy must be in [1, seq_len/2], got {self.n_copy}")
        if self.max_key_len < 1 or self.max_value_len < 1 or self.fuzzy_n_keys < 1:
            raise UsageError("MAD fuzzy span lengths and key count must be >= 1")
        if self.fuzzy_n_keys > (self.vocab_size // 2) ** self.max_key_len:
            raise UsageError(f"MAD fuzzy_n_keys={self.fuzzy_n_keys} exceeds the distinct key spans")
        if self.memory_keys < 2:
            raise UsageError("MAD memory_keys must be >= 2")


MAD_PRESETS: dict[str, MadSettings | MadLabSettings] = {
    # aira's variants at the sizes the MAD paper quotes as its defaults (V 16, L 128, 12,800 / 1,280
    # examples); not MAD-lab's rules or per-task settings, which are `madlab`
    "default": MadSettings(),
    # a few seconds per task on a CPU core with a small model
    "cpu": MadSettings(seq_len=64, n_train=2_560, n_val=256, n_select=256, n_copy=8, memory_keys=64),
    # the mad-cpu proxy: short sequences so a 16-layer width-64 model learns in a few hundred steps,
    # 4,096 training examples so it learns the task rather than the examples, 1,024 evaluation examples
    # so the sampling error of an accuracy stays below ~0.01 (copying has 4 answers per row), and a
    # 4,096-key memorization table, which a width-64 model learns only partly in ~100 steps, by how many
    # MLP layers it has (1,024 keys: every pattern with 8+ MLP layers reaches 1.0)
    "cpu32": MadSettings(seq_len=32, n_train=4_096, n_val=1_024, n_select=1_024, n_copy=4, memory_keys=4_096),
    # the easy rung of mad-cpu's selective-copying ladder: 2 tokens to copy out of 14 positions, which a
    # width-64 model learns gradually over a few hundred steps (cpu32's 4 out of 28 is the hard rung)
    "copy16": MadSettings(seq_len=16, n_train=4_096, n_val=1_024, n_select=1_024, n_copy=2, memory_keys=4_096),
    # for tests and smoke runs
    "tiny": MadSettings(seq_len=32, n_train=256, n_val=64, n_select=64, n_copy=4, memory_keys=16),
    # the six tasks as MAD-lab defines them, each at its baseline settings (aira.data.madlab)
    "madlab": MadLabSettings(),
}

# Presets whose rows changed while their settings did not: the revision joins the settings fingerprint and
# the evaluation cache key (aira.train.cache.resolved_settings), so figures and cached scores measured on
# the old rows no longer count. copy16 1: val / select rows equal to a training row are redrawn (2026-12-04).
DATA_REVISIONS: dict[str, int] = {"copy16": 1}


@dataclass(frozen=True)
class MadData:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    select_x: torch.Tensor
    select_y: torch.Tensor
    vocab_size: int
    settings: MadSettings | MadLabSettings
    task: str


def resolve_settings(settings: MadSettings | MadLabSettings | str) -> MadSettings | MadLabSettings:
    if isinstance(settings, (MadSettings, MadLabSettings)):
        return settings
    if settings in MAD_PRESETS:
        return MAD_PRESETS[settings]
    raise UsageError(f"unknown MAD settings {settings!r}; valid: {', '.join(MAD_PRESETS)}")


def mad_settings_with(base: MadSettings | MadLabSettings | str, **changes) -> MadSettings | MadLabSettings:
    """A preset with some knobs changed, e.g. `mad_settings_with("cpu", frac_noise=0.6)`, or
    `mad_settings_with("madlab", n_val=64, memorization=MadLabTask(vocab_size=512, seq_len=32, n_train=256))`."""
    s = resolve_settings(base)
    names = {f.name for f in fields(s)}
    bad = sorted(set(changes) - names)
    if bad:
        raise UsageError(f"unknown MAD setting {bad[0]!r}; valid: {', '.join(sorted(names))}")
    return replace(s, **changes)


def make_mad(task: str, settings: MadSettings | MadLabSettings | str = "cpu", seed: int = 0,
             hidden_seed: int | None = None) -> MadData:
    """Generate the train / val (search) / select (hidden) splits of one MAD task. `hidden_seed`: the select
    rows (and their redraws) come from this seed's streams instead, so code that knows the package and the
    public `seed` cannot regenerate them; the train and val rows and memorization's table stay on `seed`
    (`hidden_seed=seed` is the public data)."""
    if task not in MAD_TASKS:
        raise UsageError(f"unknown MAD task {task!r}; valid: {', '.join(MAD_TASKS)}")
    s = resolve_settings(settings)
    if isinstance(s, MadLabSettings):
        t = s.task(task)
        vocab, length, sizes = t.vocab_size, row_length(task, t), (t.n_train, s.n_val, s.n_select)
        extra = {"table": madlab_memorization_table(_rng(seed, task, "table"), t)} if task == "memorization" else {}

        def gen(rng, n, split):  # train by MAD-lab's training rule, val and select by its test rule
            return MADLAB_GENERATORS[task](rng, n, t, split == "train", **extra)
    else:
        vocab, length, sizes = task_vocab_size(task, s), s.seq_len, (s.n_train, s.n_val, s.n_select)
        extra = {"table": memorization_table(s, seed)} if task == "memorization" else {}

        def gen(rng, n, split):
            return _GENERATORS[task](rng, n, s, **extra)
    out = {}
    taken: set[bytes] = set()  # the input rows of the splits made so far
    for split, n in zip(("train", "val", "select"), sizes):
        stream = hidden_seed if split == "select" and hidden_seed is not None else seed
        x, y = gen(_rng(stream, task, split), n, split)
        x, y = x.astype(np.int64), y.astype(np.int64)
        if taken:
            redraw = _rng(stream, task, f"{split}-redraw")
            x, y = _redraw_taken(x, y, taken, lambda k, split=split, redraw=redraw: gen(redraw, k, split))
        assert x.shape == y.shape == (n, length) and x.max() < vocab
        taken |= {r.tobytes() for r in x}
        out[f"{split}_x"] = torch.from_numpy(x)
        out[f"{split}_y"] = torch.from_numpy(y)
    return MadData(**out, vocab_size=vocab, settings=s, task=task)


def _redraw_taken(x: np.ndarray, y: np.ndarray, taken: set[bytes], draw) -> tuple[np.ndarray, np.ndarray]:
    """Replace the rows of x (and their y) whose input is in `taken` by rows from `draw(k)`."""
    for _ in range(100):
        repeat = np.fromiter((r.tobytes() in taken for r in x), bool, len(x))
        if not repeat.any():
            return x, y
        x[repeat], y[repeat] = draw(int(repeat.sum()))
    raise UsageError("MAD settings leave too few distinct rows to keep the splits apart; make the task larger")


def task_vocab_size(task: str, s: MadSettings | MadLabSettings) -> int:
    """Content tokens plus the task's special tokens (noise, separator, compression)."""
    if isinstance(s, MadLabSettings):
        return s.task(task).vocab_size  # MAD-lab counts its special tokens in
    return {
        "in_context_recall": s.vocab_size,
        "fuzzy_in_context_recall": s.vocab_size,
        "noisy_in_context_recall": s.vocab_size + s.noise_vocab_size,
        "selective_copying": s.vocab_size + 2,  # + blank, + separator
        "compression": s.vocab_size + 1,  # + compression token
        "memorization": s.memory_keys + s.vocab_size,  # keys, then values
    }[task]


def _rng(seed: int, task: str, split: str) -> np.random.Generator:
    # crc32, not hash(): the stream must be the same in every process
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(task.encode()), _SPLITS[split]]))


def _key_value_maps(rng: np.random.Generator, n: int, n_keys: int) -> np.ndarray:
    """(n, n_keys) value ids: one random key->value bijection per sequence (values after the keys)."""
    return np.argsort(rng.random((n, n_keys)), axis=1) + n_keys


def _recall_targets(x: np.ndarray, key_pos: np.ndarray, n_keys: int) -> np.ndarray:
    """y[t] = x[t+1] (the value) at key positions `key_pos` (n, P) whose key appeared earlier in the row."""
    keys = np.take_along_axis(x, key_pos, axis=1)
    onehot = np.eye(n_keys, dtype=np.int32)[keys]  # (n, P, n_keys)
    earlier = np.cumsum(onehot, axis=1) - onehot
    seen = np.take_along_axis(earlier, keys[..., None], axis=2)[..., 0] > 0
    y = np.full_like(x, IGNORE)
    values = np.take_along_axis(x, key_pos + 1, axis=1)
    np.put_along_axis(y, key_pos, np.where(seen, values, IGNORE), axis=1)
    return y


def _in_context_recall(rng: np.random.Generator, n: int, s: MadSettings):
    n_keys, n_pairs = s.vocab_size // 2, s.seq_len // 2
    maps = _key_value_maps(rng, n, n_keys)
    keys = rng.integers(0, n_keys, (n, n_pairs))
    x = np.empty((n, s.seq_len), dtype=np.int64)
    x[:, 0::2] = keys
    x[:, 1::2] = np.take_along_axis(maps, keys, axis=1)
    key_pos = np.broadcast_to(np.arange(0, s.seq_len, 2), (n, n_pairs))
    return x, _recall_targets(x, key_pos, n_keys)


def _noisy_in_context_recall(rng: np.random.Generator, n: int, s: MadSettings):
    n_keys = s.vocab_size // 2
    n_pairs = max(1, round(s.seq_len * (1 - s.frac_noise)) // 2)
    n_noise = s.seq_len - 2 * n_pairs
    maps = _key_value_maps(rng, n, n_keys)
    keys = rng.integers(0, n_keys, (n, n_pairs))
    x = rng.integers(s.vocab_size, s.vocab_size + s.noise_vocab_size, (n, s.seq_len))
    # noise goes only between pairs: how many noise tokens precede each pair (the rest trail)
    gaps = rng.multinomial(n_noise, np.full(n_pairs + 1, 1 / (n_pairs + 1)), size=n)
    key_pos = 2 * np.arange(n_pairs) + np.cumsum(gaps[:, :-1], axis=1)
    np.put_along_axis(x, key_pos, keys, axis=1)
    np.put_along_axis(x, key_pos + 1, np.take_along_axis(maps, keys, axis=1), axis=1)
    return x, _recall_targets(x, key_pos, n_keys)


def _prefix_free_spans(rng: np.random.Generator, n_spans: int, lo: int, hi: int, max_len: int):
    """`n_spans` distinct spans of 1..max_len tokens over [lo, hi), none a prefix of another, so a
    causal reader knows a key has ended the moment it matches one."""
    spans: list[tuple[int, ...]] = []
    for _ in range(100):
        # candidates in bulk: one generator call per batch rather than per span keeps this fast
        lengths = rng.integers(1, max_len + 1, 8 * n_spans)
        tokens = rng.integers(lo, hi, (8 * n_spans, max_len)).tolist()
        for length, row in zip(lengths.tolist(), tokens):
            cand = tuple(row[:length])
            if all(cand[: len(o)] != o and o[: len(cand)] != cand for o in spans):
                spans.append(cand)
                if len(spans) == n_spans:
                    return spans
    raise UsageError(f"cannot draw {n_spans} prefix-free keys of length <= {max_len} from {hi - lo} tokens")


def _fuzzy_in_context_recall(rng: np.random.Generator, n: int, s: MadSettings):
    half, n_keys = s.vocab_size // 2, s.fuzzy_n_keys
    x = np.empty((n, s.seq_len), dtype=np.int64)
    y = np.full_like(x, IGNORE)
    for i in range(n):
        keys = _prefix_free_spans(rng, n_keys, 0, half, s.max_key_len)
        value_len = rng.integers(1, s.max_value_len + 1, n_keys).tolist()
        value_tok = rng.integers(half, s.vocab_size, (n_keys, s.max_value_len)).tolist()
        values = [tuple(value_tok[j][: value_len[j]]) for j in range(n_keys)]
        row: list[int] = []
        tgt: list[int] = []
        seen: set[int] = set()
        # a pair is >= 2 tokens, so seq_len // 2 + 1 pairs always run one token past the end, which
        # defines the target at the last position
        for j in rng.integers(0, n_keys, s.seq_len // 2 + 1).tolist():
            row += keys[j] + values[j]
            # the output at each position is the next token, from the key's last token on
            tgt += [IGNORE] * (len(keys[j]) - 1)
            tgt += list(values[j]) if j in seen else [IGNORE] * len(values[j])
            tgt.append(IGNORE)  # at the value's last token the next key is unknowable
            seen.add(j)
            if len(row) > s.seq_len:
                break
        x[i] = row[: s.seq_len]
        y[i] = tgt[: s.seq_len]
    return x, y


def _selective_copying(rng: np.random.Generator, n: int, s: MadSettings):
    blank, sep = s.vocab_size, s.vocab_size + 1
    prompt = s.seq_len - s.n_copy  # blanks with content scattered, then the separator and the copy
    content = rng.integers(0, s.vocab_size, (n, s.n_copy))
    pos = np.sort(np.argsort(rng.random((n, prompt)), axis=1)[:, : s.n_copy], axis=1)
    x = np.full((n, s.seq_len), blank, dtype=np.int64)
    np.put_along_axis(x, pos, content, axis=1)
    x[:, prompt] = sep
    x[:, prompt + 1 :] = content[:, :-1]  # teacher forcing: the copy so far
    y = np.full_like(x, IGNORE)
    y[:, prompt:] = content
    return x, y


def _compression(rng: np.random.Generator, n: int, s: MadSettings):
    half, token = s.seq_len // 2, s.vocab_size
    seq = rng.integers(0, s.vocab_size, (n, half))
    x = np.concatenate([seq, np.full((n, 1), token), seq[:, :-1]], axis=1)
    y = np.full_like(x, IGNORE)
    y[:, half:] = seq
    return x, y


def memorization_table(s: MadSettings, seed: int = 0) -> np.ndarray:
    """The fixed key -> value table (value ids, offset by `memory_keys`) shared by every split."""
    rng = _rng(seed, "memorization", "table")
    return rng.integers(0, s.vocab_size, s.memory_keys) + s.memory_keys


def _memorization(rng: np.random.Generator, n: int, s: MadSettings, table: np.ndarray):
    keys = rng.integers(0, s.memory_keys, (n, s.seq_len // 2))
    x = np.empty((n, s.seq_len), dtype=np.int64)
    x[:, 0::2] = keys
    x[:, 1::2] = table[keys]
    y = np.full_like(x, IGNORE)
    y[:, 0::2] = table[keys]  # no context needed: every key is answerable from the table
    return x, y


_GENERATORS = {
    "in_context_recall": _in_context_recall,
    "fuzzy_in_context_recall": _fuzzy_in_context_recall,
    "noisy_in_context_recall": _noisy_in_context_recall,
    "selective_copying": _selective_copying,
    "compression": _compression,
    "memorization": _memorization,
}
