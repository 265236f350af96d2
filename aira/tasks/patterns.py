"""Search moves over fixed-length layer patterns, shared by every pattern task (Compose, the synthetic
test task, pattern task folders): random drafts, point and segment mutations, one- and two-point
crossover, and a repair that keeps the usable letters. `dimensions()` / `decode()` give the per-layer
categorical encoding that Bayesian optimisation searches.
"""

from __future__ import annotations

import random
from typing import Any

from aira.agents.base import ProposalSpace


class PatternSpace(ProposalSpace):
    """Search moves over fixed-length patterns: point / segment mutations, one / two-point crossover."""

    def __init__(self, length: int, alphabet: str):
        self.length, self.alphabet = length, alphabet

    def sample(self, rng: random.Random) -> tuple[str, str]:
        p = "".join(rng.choice(self.alphabet) for _ in range(self.length))
        return p, "random pattern"

    def _other(self, c: str, rng: random.Random) -> str:
        return rng.choice([a for a in self.alphabet if a != c] or [c])

    def mutate(self, proposal: str, rng: random.Random) -> tuple[str, str]:
        p = list(proposal)
        if rng.random() < 0.6 or self.length < 2:
            i = rng.randrange(self.length)
            old, p[i] = p[i], self._other(p[i], rng)
            return "".join(p), f"point mutation: layer {i} {old}->{p[i]}"
        # A segment move rewrites a short run at once, which can cross the pair-bonus valleys that
        # single point mutations cannot.
        n = rng.randint(2, min(4, self.length))
        i = rng.randrange(self.length - n + 1)
        c = rng.choice(self.alphabet)
        if p[i:i + n] == [c] * n:  # a no-op would waste an evaluation
            c = self._other(c, rng)
        p[i:i + n] = c * n
        return "".join(p), f"segment mutation: layers {i}-{i + n - 1} -> {c * n}"

    def crossover(self, a: str, b: str, rng: random.Random) -> tuple[str, str]:
        if self.length < 2:
            return self.mutate(a, rng)
        if rng.random() < 0.5 or self.length < 3:
            i = rng.randrange(1, self.length)
            return a[:i] + b[i:], f"one-point crossover at layer {i}"
        i, j = sorted(rng.sample(range(1, self.length), 2))
        return a[:i] + b[i:j] + a[j:], f"two-point crossover: layers {i}-{j - 1} from the second parent"

    def dimensions(self) -> list[tuple[str, list]]:
        return [(f"layer{i:02d}", list(self.alphabet)) for i in range(self.length)]

    def decode(self, params: dict[str, Any]) -> str:
        return "".join(params[f"layer{i:02d}"] for i in range(self.length))

    def repair(self, proposal: Any, error: str, rng: random.Random) -> tuple[str, str]:
        # Keep what is usable of the broken pattern: letters in the alphabet, padded or cut to length.
        s = "".join(c for c in str(proposal).upper() if c in self.alphabet)[: self.length]
        while len(s) < self.length:
            s += rng.choice(self.alphabet)
        if s == proposal:
            return self.mutate(s, rng)
        return s, "repair: keep valid letters, fix the length"
