"""Asynchronous steady-state evolution (AIRA-2): no generations, no waiting for a cohort.

Whenever a worker asks for work, the population is every scored node so far, ranked best first
(rank 1 = best). Parents are drawn with p(rank) ~ (N - rank + 1)^(1 / T): T = 1 is linear ranking,
smaller T concentrates on the best, large T approaches uniform. With probability `crossover_prob`
(and two or more members) two distinct parents are crossed over, else one is improved. The first
`num_drafts` steps draft (in-flight drafts count), and so does any step before a first score.
The policy keeps no state: it reads the population from the nodes each time.

AIRA-2's exact T is not in the sources we hold; T = 0.5 (p ~ (N - rank + 1)^2) is our default.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy, count_drafts
from aira.agents.types import Node


def rank_probabilities(n: int, temperature: float) -> list[float]:
    """p(rank) for ranks 1..n (best first): (n - rank + 1)^(1/T), normalised."""
    w = [(n - r + 1) ** (1.0 / temperature) for r in range(1, n + 1)]
    total = sum(w)
    return [x / total for x in w]


@dataclass(kw_only=True)
class SteadyState(SearchPolicy):
    name = "steady_state"
    num_drafts: int = 5
    temperature: float = 0.5
    crossover_prob: float = 0.5

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        if count_drafts(nodes) < self.num_drafts:
            return Step("draft")
        ranked = [n.id for n, _ in self.scored(nodes)]
        if not ranked:
            return Step("draft")
        probs = rank_probabilities(len(ranked), self.temperature)
        if len(ranked) >= 2 and rng.random() < self.crossover_prob:
            a = rng.choices(range(len(ranked)), weights=probs)[0]
            rest = [i for i in range(len(ranked)) if i != a]
            b = rng.choices(rest, weights=[probs[i] for i in rest])[0]
            return Step("crossover", [ranked[a], ranked[b]])
        return Step("improve", [rng.choices(ranked, weights=probs)[0]])
