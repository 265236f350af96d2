"""Island-model evolution (aira-dojo's evolutionary scaffold).

- `num_islands` populations, seeded by `init_per_island` drafts each (assigned round-robin).
- Each step serves the next non-empty island in turn: parents are sampled by softmax over the
  island's fitness, min-max normalised to [0, 1] and divided by `temperature`; with probability
  `crossover_prob` (once the island is past `crossover_after` generations and holds two members)
  two distinct parents are crossed over, else one is improved. A generation of an island is
  `init_per_island` finished offspring.
- Admission: a finished child joins its island only if its fitness is >= the island's mean;
  otherwise it is discarded from the population (it stays in the journal). Drafts join
  unconditionally. An island over `island_cap` members drops its worst.
- Migration (off by default): every `migration_every` finished offspring, each island's best is
  copied into the next island (a ring).

The policy keeps its populations as state. It updates them from `observe` and, for nodes it was
not shown (e.g. after a resume), from the finished nodes passed to `next_step`, in their order.
Which island a node belongs to is the island its step was taken for, matched by (operator,
parents); a node nobody asked for goes to its first parent's island, or the smallest one.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy, count_drafts
from aira.agents.types import Node, Status


def softmax_pick(ids: list[str], fits: list[float], temperature: float, rng: random.Random) -> str:
    """One id, with probability proportional to exp(normalised fitness / temperature)."""
    lo, hi = min(fits), max(fits)
    norm = [(f - lo) / (hi - lo) if hi > lo else 1.0 for f in fits]
    top = max(norm)
    weights = [math.exp((x - top) / temperature) for x in norm]
    return rng.choices(ids, weights=weights)[0]


@dataclass(kw_only=True)
class Evolutionary(SearchPolicy):
    name = "evolutionary"
    num_islands: int = 3
    island_cap: int = 20
    init_per_island: int = 5
    temperature: float = 0.3
    crossover_prob: float = 0.5
    crossover_after: int = 2
    migration_every: int = 0

    islands: list[list[str]] = field(init=False, repr=False, default_factory=list)
    _fit: dict[str, float] = field(init=False, repr=False, default_factory=dict)
    _home: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    _done: set[str] = field(init=False, repr=False, default_factory=set)
    _intents: dict[tuple, deque] = field(init=False, repr=False, default_factory=dict)
    _offspring: list[int] = field(init=False, repr=False, default_factory=list)
    _turn: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        self.islands = [[] for _ in range(self.num_islands)]
        self._offspring = [0] * self.num_islands

    # -- population updates -------------------------------------------------------------------

    def mean(self, island: int) -> float | None:
        members = self.islands[island]
        return sum(self._fit[m] for m in members) / len(members) if members else None

    def admit(self, island: int, node_id: str, fit: float, *, always: bool = False) -> bool:
        """Add a scored node to an island if it is >= the island's mean (or `always`); cap the island."""
        mean = self.mean(island)
        # The tolerance keeps a child equal to the mean in, whatever the rounding of the sum.
        if not always and mean is not None and fit < mean - 1e-12 * max(1.0, abs(mean)):
            return False
        self._fit[node_id] = fit
        if node_id not in self.islands[island]:
            self.islands[island].append(node_id)
        if len(self.islands[island]) > self.island_cap:
            worst = min(self.islands[island], key=lambda m: self._fit[m])
            self.islands[island].remove(worst)
        return node_id in self.islands[island]

    def _island_of(self, node: Node) -> int:
        queue = self._intents.get((node.operator, tuple(node.parents)))
        if queue:
            return queue.popleft()
        if node.parents and node.parents[0] in self._home:
            return self._home[node.parents[0]]
        return min(range(self.num_islands), key=lambda i: len(self.islands[i]))

    def observe(self, node: Node) -> None:
        if node.id in self._done or node.status in (Status.PENDING, Status.RUNNING):
            return
        self._done.add(node.id)
        island = self._island_of(node)
        self._home[node.id] = island
        is_draft = node.operator == "draft"
        if not is_draft:
            self._offspring[island] += 1
        if (fit := self.fitness(node)) is not None:
            self.admit(island, node.id, fit, always=is_draft)
        if not is_draft and self.migration_every and sum(self._offspring) % self.migration_every == 0:
            self._migrate()

    def _migrate(self) -> None:
        bests = [max(m, key=lambda x: self._fit[x]) if m else None for m in self.islands]
        for i, best in enumerate(bests):
            if best is not None:
                self.admit((i + 1) % self.num_islands, best, self._fit[best], always=True)

    # -- steps --------------------------------------------------------------------------------

    def _intend(self, step: Step, island: int) -> Step:
        self._intents.setdefault((step.operator, tuple(step.parents)), deque()).append(island)
        return step

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        for n in nodes:
            self.observe(n)
        drafts = count_drafts(nodes)
        live = [i for i in range(self.num_islands) if self.islands[i]]
        if drafts < self.num_islands * self.init_per_island or not live:
            return self._intend(Step("draft"), drafts % self.num_islands)
        island = live[self._turn % len(live)]
        self._turn += 1
        members = list(self.islands[island])
        fits = [self._fit[m] for m in members]
        generation = self._offspring[island] // self.init_per_island
        if generation >= self.crossover_after and len(members) >= 2 and rng.random() < self.crossover_prob:
            a = softmax_pick(members, fits, self.temperature, rng)
            i = members.index(a)
            b = softmax_pick(members[:i] + members[i + 1:], fits[:i] + fits[i + 1:], self.temperature, rng)
            return self._intend(Step("crossover", [a, b]), island)
        return self._intend(Step("improve", [softmax_pick(members, fits, self.temperature, rng)]), island)
