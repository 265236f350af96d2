"""Greedy search (aira-dojo): draft a few, then repair failures or improve the best node.

Each step, in order:
1. while fewer than `num_drafts` drafts exist (in-flight ones count): draft;
2. with probability `debug_prob`, debug a random failed leaf whose debug depth is below
   `max_debug_depth` (so a chain holds at most that many repairs);
3. if no node has a score yet: draft;
4. else improve the best scored node (only finished nodes have a score, so a running node is
   never improved).

Defaults are aira-dojo's released values (arXiv 2507.02554): num_drafts=5, debug_prob=1.0,
max_debug_depth=20. With debug_prob=1.0 every failure is repaired before anything else improves.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy, count_drafts, failed_leaves
from aira.agents.types import Node


@dataclass(kw_only=True)
class Greedy(SearchPolicy):
    name = "greedy"
    num_drafts: int = 5
    debug_prob: float = 1.0
    max_debug_depth: int = 20

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        if count_drafts(nodes) < self.num_drafts:
            return Step("draft")
        leaves = failed_leaves(nodes, self.max_debug_depth)
        if leaves and rng.random() < self.debug_prob:
            return Step("debug", [rng.choice(leaves).id])
        best = self.best(nodes)
        if best is None:
            return Step("draft")
        return Step("improve", [best.id])
