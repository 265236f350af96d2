"""Long Range Arena tasks (Tay et al. 2020): generators, loaders for LRA's release formats, stand-ins.

    data = load_lra("lra-listops", preset="cpu", seed=0)
    data.train.x, data.train.y        # (N, L) int16 ids (0 = pad), (N,) int64 labels
    data.save_split("sandbox/data", include_labels=False)   # what an agent may read

Tasks: lra-listops, lra-text, lra-retrieval (pairs: x and x2), lra-image, lra-pathfinder.
Data presets (sizes and lengths, see docs/lra.md):
- "gpu": LRA's sizes and lengths (ListOps 501-1999 tokens, 96K / 2K / 2K; Text 4,096 bytes;
  Retrieval 2 x 4,000 bytes; Image 32 x 32; Pathfinder 32 x 32, 160K / 20K / 20K);
- "cpu": short sequences (ListOps 100-300, Text 512 bytes, Retrieval 2 x 256, 16 x 16 images) and
  a few thousand examples, for a training run of about a minute on one core;
- "smoke": tiny, for tests.
Without a data_dir, Text / Retrieval / Image use offline stand-ins and ListOps / Pathfinder are
generated. Only data read from LRA's released files (a data_dir) at the gpu preset is LRA's data:
everything else, generated ListOps included whatever the preset, has `standin` True and a source that
says STAND-IN, and its scores must never be compared to published numbers. Loaded data is cached per (task, data_dir, preset, seed); treat its
tensors as read-only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from aira.data.lra import image, listops, pathfinder, retrieval, text
from aira.data.lra.core import PAD, SPLITS, LraData, Split, load_saved, take
from aira.errors import UsageError

__all__ = ["TASKS", "PRESETS", "LraData", "Split", "load_lra", "load_saved", "PAD", "SPLITS"]

TASKS = ("lra-listops", "lra-text", "lra-retrieval", "lra-image", "lra-pathfinder")
PRESETS = ("smoke", "cpu", "gpu")

# Per task and preset: sequence length (per document for retrieval, image side for image tasks) and
# split sizes of generated data and stand-ins; for real data they cap how many examples are kept
# (gpu keeps all). The retrieval stand-in draws from a few hundred modules, so it stays smaller.
_SIZES = {"smoke": (600, 150, 150), "cpu": (4000, 500, 500)}
_GPU_SIZES = {"lra-listops": (96_000, 2_000, 2_000), "lra-text": (22_500, 2_500, 25_000),
              "lra-retrieval": (40_000, 4_000, 4_000), "lra-image": (45_000, 5_000, 10_000),
              "lra-pathfinder": (160_000, 20_000, 20_000)}
_LENGTH = {
    # ListOps: generated lengths, inclusive, in the tokens the model sees (LRA's 500 < length < 2000)
    "lra-listops": {"smoke": (20, 60), "cpu": (100, 300), "gpu": (501, 1999)},
    "lra-text": {"smoke": 128, "cpu": 512, "gpu": 4096},
    "lra-retrieval": {"smoke": 64, "cpu": 256, "gpu": 4000},
    "lra-image": {"smoke": 8, "cpu": 16, "gpu": 32},
    "lra-pathfinder": {"smoke": 12, "cpu": 16, "gpu": 32},
}
_PATH_LEN = {"smoke": (4, 6), "cpu": (6, 10), "gpu": (14, 22)}
_DISTRACTORS = {"smoke": 1, "cpu": 2, "gpu": 3}


def sizes(task: str, preset: str) -> dict[str, int]:
    n = _GPU_SIZES[task] if preset == "gpu" else _SIZES[preset]
    return dict(zip(SPLITS, n))


def load_lra(task: str, *, data_dir: str | Path | None = None, preset: str = "cpu", seed: int = 0,
             hidden_seed: int | None = None) -> LraData:
    """Train / val / test splits of one LRA task; see the module docstring for presets and stand-ins.

    `hidden_seed`: generated data and stand-ins draw val and test from this seed's streams (the training
    split and document partitions stay on `seed`). The harness keeps it secret, so code that knows
    `seed` and this package cannot regenerate the held-out rows; `hidden_seed=seed` is the public data.
    Real data (`data_dir`) ignores it: its val and test are the release's."""
    if task not in TASKS:
        raise UsageError(f"unknown LRA task {task!r}; valid: {', '.join(TASKS)}")
    if preset not in PRESETS:
        raise UsageError(f"unknown LRA data preset {preset!r}; valid: {', '.join(PRESETS)}")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"LRA data_dir {data_dir} is not a folder")
    return _load(task, None if data_dir is None else str(Path(data_dir).resolve()), preset, seed, hidden_seed)


@functools.lru_cache(maxsize=4)
def _load(task: str, data_dir: str | None, preset: str, seed: int, hidden_seed: int | None) -> LraData:
    loader = {"lra-listops": _listops, "lra-text": _text, "lra-retrieval": _retrieval,
              "lra-image": _image, "lra-pathfinder": _pathfinder}[task]
    d = Path(data_dir) if data_dir else None
    data = loader(d, preset, seed, hidden_seed)
    if d is None:
        # Generated data is never LRA's data, even from LRA's recipe at LRA's sizes (issue #19): only
        # LRA's released files may be compared with published numbers.
        data.standin = True
    elif preset != "gpu":
        data.standin = True
        data.source += f" (capped to the {preset} preset's sizes: not comparable to LRA)"
        for name, n in sizes(task, preset).items():
            s = data.split(name)
            if len(s) > n:
                idx = torch.randperm(len(s), generator=torch.Generator().manual_seed(seed))[:n].sort().values
                setattr(data, name, take(s, idx))
    return data


def _listops(d: Path | None, preset: str, seed: int, hidden_seed: int | None) -> LraData:
    lo, hi = _LENGTH["lra-listops"][preset]
    max_len = listops.MAX_LEN if preset == "gpu" else hi
    if d is not None:
        splits, standin = listops.load_dir(d, max_len), False
        source = f"LRA ListOps TSV files at {d}, parentheses dropped, truncated at {max_len} tokens"
    else:
        n = sizes("lra-listops", preset)
        cfg = listops.ListOpsConfig(min_len=lo, max_len=hi, n_train=n["train"], n_val=n["val"],
                                    n_test=n["test"])
        splits, standin = listops.generate(cfg, seed, hidden_seed), True
        source = f"STAND-IN: ListOps generated with LRA's recipe, {lo}-{hi} tokens, seed {seed}"
    return LraData(task="lra-listops", **splits, vocab_size=len(listops.VOCAB), max_len=max_len,
                   n_classes=listops.N_CLASSES, standin=standin, source=source)


def _text(d: Path | None, preset: str, seed: int, hidden_seed: int | None) -> LraData:
    max_len = _LENGTH["lra-text"][preset]
    if d is not None:
        splits, fmt = text.load_dir(d, max_len, n_val=sizes("lra-text", "gpu")["val"], seed=seed)
        source, standin = f"IMDb ({fmt}), bytes truncated at {max_len}", False
    else:
        splits = text.standin(sizes("lra-text", preset), max_len, seed, hidden_seed)
        source, standin = f"STAND-IN: Python stdlib source vs Python reference prose, {max_len} bytes", True
    return LraData(task="lra-text", **splits, vocab_size=257, max_len=max_len, n_classes=2,
                   standin=standin, source=source)


def _retrieval(d: Path | None, preset: str, seed: int, hidden_seed: int | None) -> LraData:
    max_len = _LENGTH["lra-retrieval"][preset]
    if d is not None:
        splits = retrieval.load_dir(d, max_len)
        source, standin = f"ACL Anthology pairs (LRA TSV at {d}), 2 x {max_len} bytes", False
    else:
        splits = retrieval.standin(sizes("lra-retrieval", preset), max_len, seed, hidden_seed)
        source, standin = (f"STAND-IN: same-document windows of Python stdlib source and reference prose, "
                           f"2 x {max_len} bytes", True)
    return LraData(task="lra-retrieval", **splits, vocab_size=257, max_len=max_len, n_classes=2,
                   standin=standin, source=source, pair=True)


def _image(d: Path | None, preset: str, seed: int, hidden_seed: int | None) -> LraData:
    side = _LENGTH["lra-image"][preset]
    if d is not None:
        splits = image.load_dir(d, side, n_val=5_000, seed=seed)
        source, standin = f"CIFAR-10 grayscale {side}x{side} (pickles at {d})", side != 32
    else:
        splits = image.standin(sizes("lra-image", preset), side, seed, hidden_seed)
        source, standin = f"STAND-IN: synthetic oriented gratings, {side}x{side}, 10 classes", True
    return LraData(task="lra-image", **splits, vocab_size=257, max_len=side * side,
                   n_classes=image.N_CLASSES, standin=standin, source=source)


def _pathfinder(d: Path | None, preset: str, seed: int, hidden_seed: int | None) -> LraData:
    if d is not None:
        raise UsageError("lra-pathfinder has no loader for LRA's released images yet; omit data_dir to "
                         "use aira's generator")
    side = _LENGTH["lra-pathfinder"][preset]
    n = sizes("lra-pathfinder", preset)
    cfg = pathfinder.PathfinderConfig(side=side, path_len=_PATH_LEN[preset],
                                      n_distractors=_DISTRACTORS[preset], n_train=n["train"],
                                      n_val=n["val"], n_test=n["test"])
    return LraData(task="lra-pathfinder", **pathfinder.generate(cfg, seed, hidden_seed), vocab_size=257,
                   max_len=side * side, n_classes=2, standin=True,
                   source=f"STAND-IN: Pathfinder-style images from aira's generator, {side}x{side}, "
                          f"paths of {cfg.path_len[0]}-{cfg.path_len[1]} px")
