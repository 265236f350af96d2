"""Pathfinder labels against a flood fill of the rendered image, balance and determinism."""

import random
from collections import deque

import torch

from aira.data.lra import pathfinder


def components(img: torch.Tensor, min_level: int) -> list[set]:
    """8-connected components of pixels >= min_level, by breadth-first flood fill."""
    side = img.shape[0]
    todo = {(r, c) for r in range(side) for c in range(side) if img[r, c] >= min_level}
    comps = []
    while todo:
        comp, queue = set(), deque([todo.pop()])
        while queue:
            r, c = queue.popleft()
            comp.add((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    q = (r + dr, c + dc)
                    if q in todo:
                        todo.remove(q)
                        queue.append(q)
        comps.append(comp)
    return comps


def test_label_equals_pixel_connectivity_of_the_two_dots():
    cfg = pathfinder.PathfinderConfig(side=16, path_len=(6, 10), n_distractors=2, n_train=120, n_val=0,
                                      n_test=0)
    split = pathfinder.generate(cfg, seed=5)["train"]
    for x, y in zip(split.x, split.y):
        img = (x - 1).reshape(16, 16)
        dots = components(img, pathfinder.DOT_LEVEL)
        assert len(dots) == 2
        ink = components(img, 1)
        joined = any(dots[0] <= comp and dots[1] <= comp for comp in ink)
        assert joined == bool(y)
        assert len(ink) == cfg.n_distractors + 2  # every object stands apart
    assert split.y.sum().item() == 60  # exactly balanced


def test_render_respects_path_length_and_is_seeded():
    cfg = pathfinder.PathfinderConfig(side=32, path_len=(14, 22), n_distractors=0, n_train=0, n_val=0,
                                      n_test=0)
    rng = random.Random(0)
    for connected in (True, False):
        img = None
        while img is None:
            img = pathfinder.render(rng, cfg, connected=connected)
        for comp in components(img, 1):
            path_px = sum(1 for r, c in comp if img[r, c] == pathfinder.PATH_LEVEL)
            if all(img[r, c] == pathfinder.PATH_LEVEL for r, c in comp):
                assert 14 <= path_px <= 22  # a distractor: its length exactly
            else:
                assert path_px <= 22  # dots cover a few pixels at the ends
    a = pathfinder.generate(pathfinder.PathfinderConfig(side=12, path_len=(4, 6), n_distractors=1,
                                                        n_train=10, n_val=2, n_test=2), seed=1)
    b = pathfinder.generate(pathfinder.PathfinderConfig(side=12, path_len=(4, 6), n_distractors=1,
                                                        n_train=10, n_val=2, n_test=2), seed=1)
    assert torch.equal(a["train"].x, b["train"].x) and a["train"].x.shape == (10, 144)
