"""The `baselines` policy: evaluate the task's named reference proposals (task.baselines()), once
each, under the same budget and executor as the agents, so that every leaderboard shows them.

It is not a searcher: its nodes have operator "baseline" and their idea is the baseline's name.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy
from aira.agents.types import Node


@dataclass(kw_only=True)
class Baselines(SearchPolicy):
    name = "baselines"
    items: dict = field(default_factory=dict, init=False)

    def bind(self, task) -> None:
        self.items = dict(task.baselines())

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        done = {n.idea for n in nodes}
        for label, proposal in self.items.items():
            if label not in done:
                return Step("baseline", proposal=proposal, idea=label)
        return None
