"""Helpers every policy shares: oriented fitness, the tree's children, failed leaves, debug depth.

Fitness is the search metric turned so that higher is better (negated when the task's metric is
lower-is-better), so each policy is written once for maximisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aira.agents.base import Policy
from aira.agents.types import Node, Status


@dataclass(kw_only=True)
class SearchPolicy(Policy):
    """Base of the built-in policies: a dataclass of parameters plus the task's direction."""

    lower_is_better: bool = False
    # Set by the orchestrator from the measured noise floor (one std by default): a node must beat
    # the incumbent by more than this to replace it in `best`, so a lucky draw does not steer greedy.
    improve_margin: float = 0.0

    def fitness(self, node: Node) -> float | None:
        """Higher-is-better search metric of a finished, good node; None otherwise."""
        if node.status is not Status.OK or node.metric is None or not math.isfinite(node.metric):
            return None
        return -node.metric if self.lower_is_better else node.metric

    def scored(self, nodes: Sequence[Node]) -> list[tuple[Node, float]]:
        """Good nodes with their fitness, best first (ties keep creation order)."""
        out = [(n, f) for n in nodes if (f := self.fitness(n)) is not None]
        out.sort(key=lambda nf: -nf[1])
        return out

    def best(self, nodes: Sequence[Node]) -> Node | None:
        """The incumbent: in node order, a scored node takes over only if it beats the current one
        by more than `improve_margin` (with margin 0: the first node of the highest fitness)."""
        best, best_fit = None, 0.0
        for n in nodes:
            f = self.fitness(n)
            if f is not None and (best is None or f > best_fit + self.improve_margin):
                best, best_fit = n, f
        return best


def children(nodes: Sequence[Node]) -> dict[str, list[Node]]:
    """Node id -> the nodes that name it as a parent (in-flight ones included)."""
    out: dict[str, list[Node]] = {}
    for n in nodes:
        for p in n.parents:
            out.setdefault(p, []).append(n)
    return out


def debug_depth(node: Node, by_id: dict[str, Node]) -> int:
    """How many debug steps in a row produced `node` (0 for a node that is not a repair)."""
    depth, cur, seen = 0, node, set()
    while cur.operator == "debug" and cur.parents and cur.id not in seen:
        seen.add(cur.id)
        depth += 1
        parent = by_id.get(cur.parents[0])
        if parent is None:
            break
        cur = parent
    return max(depth, node.debug_depth)


def failed_leaves(nodes: Sequence[Node], max_debug_depth: int) -> list[Node]:
    """Failed nodes that nothing builds on yet (not even an in-flight repair) and that may still be
    debugged: their debug depth is below `max_debug_depth`, so the repair is at most that deep.
    A node without a proposal (the LLM's reply could not be parsed) has nothing to repair."""
    by_id = {n.id: n for n in nodes}
    kids = children(nodes)
    return [n for n in nodes if n.status.failed and n.proposal is not None and n.id not in kids
            and debug_depth(n, by_id) < max_debug_depth]


def count_drafts(nodes: Sequence[Node]) -> int:
    """Drafts made so far, in-flight ones included (an asynchronous worker may still be on them)."""
    return sum(1 for n in nodes if n.operator == "draft")
