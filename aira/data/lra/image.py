"""LRA Image: sequential grayscale CIFAR-10, one token per pixel (1,024 at 32 x 32, 256 levels), 10 classes.

Real data through `data_dir`: CIFAR-10's python pickles `data_batch_1..5` and `test_batch` (directly in
data_dir or under `cifar-10-batches-py/`), each a dict with b"data" (N, 3072) uint8, channel-major
R, G, B planes of 32 x 32, and b"labels". Grayscale uses the ITU-R BT.601 luma weights (as
tf.image.rgb_to_grayscale, which LRA used), rounded to 0..255. Split 45K / 5K / 10K as LRA: val is a
seeded 5K hold-out of the 50K training images.

CPU presets may downsample to 16 x 16 (2 x 2 mean) to keep sequences short; that is a stand-in size.

Stand-in (no data_dir): synthetic 10-class images, class k = a grating at orientation k * 18 degrees,
with random spatial frequency, phase, contrast, brightness and pixel noise.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F

from aira.data.lra.core import TOKEN_DTYPE, Split, carve_val, stream_seed, take
from aira.errors import UsageError

N_CLASSES = 10
LUMA = (0.299, 0.587, 0.114)
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


def to_grayscale(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3072) uint8 channel-major RGB -> (N, 32, 32) uint8 gray."""
    planes = rgb.reshape(-1, 3, 32, 32).float()
    gray = sum(w * planes[:, c] for c, w in enumerate(LUMA))
    return gray.round().clamp(0, 255).to(torch.uint8)


def to_tokens(gray: torch.Tensor, side: int) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, side * side) ids = level + 1 (0 stays padding)."""
    if gray.shape[-1] != side:
        pooled = F.adaptive_avg_pool2d(gray.float().unsqueeze(1), side).squeeze(1)
        gray = pooled.round().clamp(0, 255).to(torch.uint8)
    return (gray.reshape(gray.shape[0], -1).to(TOKEN_DTYPE) + 1)


def _read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with path.open("rb") as f:
        d = pickle.load(f, encoding="bytes")
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise UsageError(f"{path}: not a CIFAR-10 python batch (dict with b'data' and b'labels')")
    data = torch.as_tensor(d[b"data"], dtype=torch.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise UsageError(f"{path}: b'data' must be (N, 3072) uint8, got {tuple(data.shape)}")
    return data, torch.as_tensor(list(d[b"labels"]), dtype=torch.long)


def load_dir(data_dir: Path, side: int, n_val: int, seed: int) -> dict[str, Split]:
    root = data_dir / "cifar-10-batches-py" if (data_dir / "cifar-10-batches-py").is_dir() else data_dir
    missing = [f for f in (*TRAIN_FILES, "test_batch") if not (root / f).is_file()]
    if missing:
        raise UsageError(f"{root}: missing CIFAR-10 batches {', '.join(missing)}")
    parts = [_read_batch(root / f) for f in TRAIN_FILES]
    train = Split(x=to_tokens(to_grayscale(torch.cat([p[0] for p in parts])), side),
                  y=torch.cat([p[1] for p in parts]))
    tx, ty = _read_batch(root / "test_batch")
    test = Split(x=to_tokens(to_grayscale(tx), side), y=ty)
    tr_idx, va_idx = carve_val(len(train), min(n_val, len(train) // 5 or 1), seed)
    return {"train": take(train, tr_idx), "val": take(train, va_idx), "test": test}


def gratings(n: int, side: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n synthetic gray images (n, side, side) uint8 and their classes (orientation bins)."""
    labels = torch.arange(n) % N_CLASSES
    labels = labels[torch.randperm(n, generator=gen)]
    theta = labels.float() * math.pi / N_CLASSES
    theta = theta + (torch.rand(n, generator=gen) - 0.5) * (math.pi / N_CLASSES) * 0.5
    freq = 2 * math.pi * (1.5 + 2.5 * torch.rand(n, generator=gen)) / side
    phase = 2 * math.pi * torch.rand(n, generator=gen)
    contrast = 40 + 60 * torch.rand(n, generator=gen)
    base = 80 + 90 * torch.rand(n, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    proj = xx[None] * torch.cos(theta)[:, None, None] + yy[None] * torch.sin(theta)[:, None, None]
    img = base[:, None, None] + contrast[:, None, None] * torch.sin(freq[:, None, None] * proj
                                                                    + phase[:, None, None])
    img = img + 25 * torch.randn(n, side, side, generator=gen)
    return img.round().clamp(0, 255).to(torch.uint8), labels


def standin(sizes: dict[str, int], side: int, seed: int, hidden_seed: int | None = None) -> dict[str, Split]:
    splits = {}
    for i, (name, n) in enumerate(sizes.items()):
        gen = torch.Generator().manual_seed(stream_seed(seed, hidden_seed, i) * 1000 + 101 + i)
        gray, labels = gratings(n, side, gen)
        splits[name] = Split(x=to_tokens(gray, side), y=labels)
    return splits
