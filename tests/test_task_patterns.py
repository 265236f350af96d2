"""The one pattern search space every pattern task uses, at every length (1 layer included)."""

import random

import pytest

from aira.tasks.patterns import PatternSpace


@pytest.mark.parametrize("length", [1, 2, 3, 4, 16])
def test_moves_keep_length_and_alphabet(length):
    space, rng = PatternSpace(length, "AMS"), random.Random(0)
    for _ in range(200):
        a, _ = space.sample(rng)
        b, _ = space.mutate(a, rng)
        c, _ = space.crossover(a, b, rng)
        d, _ = space.repair("xx" + a.lower(), "bad", rng)
        for p in (a, b, c, d):
            assert len(p) == length and set(p) <= set("AMS")
        assert b != a  # a mutation always changes something (no wasted evaluation)
    assert space.decode({name: "M" for name, _ in space.dimensions()}) == "M" * length
