"""Shared fixtures: a small fabricated corpus with multi-byte characters, tokenized once per session."""

from __future__ import annotations

import random

import pytest

WORDS = ["the", "king", "é", "café", "naïve", "€uro", "data", "model", "train", "über", "señor",
         "日本", "loss", "byte", "token", "rotary", "muon"]


def fabricated_text(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n_lines))


@pytest.fixture(scope="session")
def make_text():
    return fabricated_text


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(fabricated_text(6000), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tokens(corpus, cache_dir):
    from aira.tasks.autoresearch.data import open_data

    return open_data(corpus, cache_dir=cache_dir)
