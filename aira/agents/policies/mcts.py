"""Monte-Carlo tree search (aira-dojo): UCT over the agent's tree, with debug cycles.

The tree is rebuilt from the nodes at every step, so the policy keeps no state: resuming from a
journal, or nodes finishing in any order, gives the same tree (visit counts and value sums are
sums, and sums do not depend on order).

- Tree nodes are drafts (children of a virtual root) and improvements; a repair (debug node)
  belongs to the tree node whose failure it fixes, and when it succeeds its metric is that tree
  node's value (the repaired metric is back-propagated).
- Every scored tree node adds one visit and its fitness to itself and all its ancestors. A tree node
  whose repairs ran out (debug depth `max_debug_depth`) adds a visit with the worst value seen.
- Each step: first repair a failed leaf (the debug cycle); else walk from the root, expanding the
  first node with fewer than `num_children` children (the root expands by drafting, others by
  improving), and otherwise descending into the child of highest UCT
      Q_norm + c * sqrt(ln N_parent / N_child),
  Q_norm being the child's mean fitness min-max normalised over all scores so far. Children not yet
  scored (in flight) are skipped; if the whole tree is busy, draft.
Defaults: c = 0.25, 5 children per expansion, max_debug_depth = 20.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy, debug_depth, failed_leaves
from aira.agents.types import Node

ROOT = ""
TREE_OPS = ("draft", "improve", "crossover")


@dataclass
class TreeNode:
    id: str
    parent: str
    children: list[str] = field(default_factory=list)
    best: str | None = None      # the node to improve: the tree node itself or its successful repair
    value: float | None = None   # its fitness
    dead: bool = False           # failed and out of repairs
    visits: int = 0
    value_sum: float = 0.0
    dead_visits: int = 0         # visits that count the worst value seen (it is only known at the end)


@dataclass(kw_only=True)
class MCTS(SearchPolicy):
    name = "mcts"
    c: float = 0.25
    num_children: int = 5
    max_debug_depth: int = 20

    def tree(self, nodes: Sequence[Node]) -> dict[str, TreeNode]:
        """Tree id -> TreeNode, the virtual root under ROOT, with visits and values back-propagated."""
        by_id = {n.id: n for n in nodes}

        def owner(node_id: str) -> str | None:
            # A repair belongs to the tree node at the start of its debug chain.
            n = by_id.get(node_id)
            while n is not None and n.operator == "debug" and n.parents:
                n = by_id.get(n.parents[0])
            return n.id if n is not None and n.operator in TREE_OPS else None

        tree = {ROOT: TreeNode(ROOT, ROOT)}
        for n in nodes:
            if n.operator not in TREE_OPS:
                continue
            parent = owner(n.parents[0]) if n.parents else ROOT
            if n.parents and parent is None:
                continue
            tree[n.id] = TreeNode(n.id, parent)
            tree[parent].children.append(n.id)
        kids = {n.parents[0] for n in nodes if n.parents}
        for n in nodes:
            t = owner(n.id)
            if t is None:
                continue
            if (f := self.fitness(n)) is not None:
                tree[t].best, tree[t].value = n.id, f
            elif n.status.failed and n.id not in kids and debug_depth(n, by_id) >= self.max_debug_depth:
                tree[t].dead = True
        for t in list(tree.values()):
            if t.id == ROOT or (t.value is None and not t.dead):
                continue
            cur = t
            while True:
                cur.visits += 1
                if t.value is not None:
                    cur.value_sum += t.value
                else:
                    cur.dead_visits += 1
                if cur.id == ROOT:
                    break
                cur = tree[cur.parent]
        return tree

    def uct(self, tree: dict[str, TreeNode], child: TreeNode, lo: float, hi: float) -> float:
        parent = tree[child.parent]
        mean = (child.value_sum + child.dead_visits * lo) / child.visits
        q = (mean - lo) / (hi - lo) if hi > lo else 1.0
        return q + self.c * math.sqrt(math.log(parent.visits) / child.visits)

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        leaves = failed_leaves(nodes, self.max_debug_depth)
        if leaves:
            return Step("debug", [leaves[0].id])
        tree = self.tree(nodes)
        values = [t.value for t in tree.values() if t.value is not None]
        lo, hi = (min(values), max(values)) if values else (0.0, 0.0)

        def select(t: TreeNode) -> Step | None:
            if len(t.children) < self.num_children:
                return Step("draft") if t.id == ROOT else Step("improve", [t.best])
            scored = [tree[c] for c in t.children if tree[c].best is not None]
            # sorted() is stable, so ties go to the older child: the walk stays deterministic.
            for child in sorted(scored, key=lambda ch: -self.uct(tree, ch, lo, hi)):
                if (step := select(child)) is not None:
                    return step
            return None

        return select(tree[ROOT]) or Step("draft")
