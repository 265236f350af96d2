"""Random search, the control every policy must beat: only drafts, forever.

Offline, a draft is `task.space().sample` (avoiding proposals already seen); with an LLM it is the
draft operator, i.e. independent fresh ideas with no feedback from the tree.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy
from aira.agents.types import Node


@dataclass(kw_only=True)
class RandomSearch(SearchPolicy):
    name = "random"

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        return Step("draft")
