"""Pathfinder-style images (after LRA's Pathfinder task): are the two dots joined by a path?

aira's own generator, not the Linsley et al. renderer LRA used, so scores are stand-in numbers.
An image is side x side (32 in LRA), flattened to one token per pixel (id = level + 1).

- A path is a thin random walk of 4-neighbour steps that keeps its heading with probability
  `straightness` and otherwise turns left or right; it never touches itself except at consecutive
  pixels, so it reads as a curve. Difficulty is its length in pixels (`path_len`).
- Positive: one path with a dot (3 x 3, level 255) at each end. Negative: two paths with one dot each.
- Distractors: undotted paths of the same length distribution, one more in positives, so path pixels
  and free path ends have the same expected count in both classes.
- Every object keeps at least one background pixel (8-neighbourhood) away from every other object,
  so pixel connectivity of the final image equals the label: a flood fill can check it.
Classes are exactly balanced in every split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from aira.data.lra.core import TOKEN_DTYPE, Split, stream_seed
from aira.errors import UsageError

PATH_LEVEL = 160
DOT_LEVEL = 255
DIRS = ((0, 1), (1, 0), (0, -1), (-1, 0))


@dataclass(frozen=True, kw_only=True)
class PathfinderConfig:
    side: int = 32
    path_len: tuple[int, int] = (14, 22)
    n_distractors: int = 3
    straightness: float = 0.7
    n_train: int = 160_000
    n_val: int = 20_000
    n_test: int = 20_000

    def __post_init__(self):
        lo, hi = self.path_len
        if self.side < 8 or not 4 <= lo <= hi or hi > self.side * self.side // 4:
            raise UsageError(f"pathfinder needs side >= 8 and 4 <= path_len min <= max <= side^2/4, "
                             f"got side={self.side}, path_len={self.path_len}")


def _neighbours8(p: tuple[int, int]):
    r, c = p
    return ((r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)


def _walk(rng: random.Random, cfg: PathfinderConfig, length: int, near: set) -> list | None:
    """A thin curve of `length` pixels avoiding `near` (pixels next to other objects), or None."""
    lo, hi = 1, cfg.side - 2  # keep one pixel of border so a dot fits around any endpoint
    start = (rng.randint(lo, hi), rng.randint(lo, hi))
    if start in near:
        return None
    path, on_path = [start], {start}
    heading = rng.randrange(4)
    while len(path) < length:
        turns = [(heading + 1) % 4, (heading + 3) % 4]
        rng.shuffle(turns)
        order = [heading, *turns] if rng.random() < cfg.straightness else [*turns, heading]
        for h in order:
            p = (path[-1][0] + DIRS[h][0], path[-1][1] + DIRS[h][1])
            if not (lo <= p[0] <= hi and lo <= p[1] <= hi) or p in near or p in on_path:
                continue
            recent = set(path[-2:])
            if any(q in on_path and q not in recent for q in _neighbours8(p)):
                continue
            path.append(p)
            on_path.add(p)
            heading = h
            break
        else:
            return None
    return path


def _dot(p: tuple[int, int]) -> set:
    return {p, *_neighbours8(p)}


def _place(rng, cfg, occupied: set, dots: int) -> tuple[set, set] | None:
    """Place one path with dots at `dots` of its ends (0, 1 or 2); (path pixels, dot pixels)."""
    near = set(occupied)
    for q in occupied:
        near.update(_neighbours8(q))
    for _ in range(30):
        path = _walk(rng, cfg, rng.randint(*cfg.path_len), near)
        if path is None:
            continue
        ends = [path[0], path[-1]][:dots]
        if dots == 2 and max(abs(path[0][0] - path[-1][0]), abs(path[0][1] - path[-1][1])) < 4:
            continue  # the two dots would merge into one blob
        dot_px = set().union(*(_dot(e) for e in ends)) if ends else set()
        pixels = set(path) | dot_px
        if pixels & near:
            continue
        return pixels, dot_px
    return None


def render(rng: random.Random, cfg: PathfinderConfig, connected: bool) -> torch.Tensor | None:
    """One (side, side) uint8 image with the given label, or None when the layout did not fit."""
    objects = [2] if connected else [1, 1]
    objects += [0] * (cfg.n_distractors + (1 if connected else 0))
    occupied: set = set()
    img = torch.zeros(cfg.side, cfg.side, dtype=torch.uint8)
    for dots in objects:
        placed = _place(rng, cfg, occupied, dots)
        if placed is None:
            return None
        pixels, dot_px = placed
        occupied |= pixels
        for r, c in pixels:
            img[r, c] = DOT_LEVEL if (r, c) in dot_px else PATH_LEVEL
    return img


def generate(cfg: PathfinderConfig, seed: int, hidden_seed: int | None = None) -> dict[str, Split]:
    splits = {}
    for i, (name, n) in enumerate((("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test))):
        rng = random.Random(f"pathfinder-{stream_seed(seed, hidden_seed, i)}-{i}")
        labels = [k % 2 for k in range(n)]
        rng.shuffle(labels)
        images = []
        for label in labels:
            for _ in range(1000):
                img = render(rng, cfg, bool(label))
                if img is not None:
                    break
            else:
                raise UsageError(f"pathfinder layout does not fit: side={cfg.side}, path_len={cfg.path_len}, "
                                 f"n_distractors={cfg.n_distractors}")
            images.append(img)
        x = (torch.stack(images).reshape(n, -1).to(TOKEN_DTYPE) + 1 if n
             else torch.zeros(0, cfg.side**2, dtype=TOKEN_DTYPE))
        splits[name] = Split(x=x, y=torch.tensor(labels, dtype=torch.long))
    return splits
