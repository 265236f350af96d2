"""What an agent remembers of its search, rendered for a prompt.

`render_memory` is a compact table of earlier results, best first, with failures summarised below
it. It shows only the search-split metric: the hidden selection metric never reaches an agent
(Hidden Consistent Evaluation, AIRA-2). `debug_chain` walks a failed node's earlier repair
attempts so that the debug operator does not repeat a fix that already failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aira.agents.base import Task
from aira.agents.types import Node, Status


def _one_line(text: str, width: int) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 3] + "..."


def short_proposal(proposal: Any, width: int = 40) -> str:
    """A pattern as is; code as the names of its files; anything else as compact JSON."""
    if isinstance(proposal, str):
        return _one_line(proposal, width)
    if isinstance(proposal, dict) and isinstance(proposal.get("files"), dict):
        return _one_line("files: " + ", ".join(sorted(proposal["files"])), width)
    return _one_line(json.dumps(proposal, sort_keys=True, default=str), width)


def _error_line(node: Node) -> str:
    lines = [ln for ln in node.error.strip().splitlines() if ln.strip()]
    # The last line of a traceback names the exception, which is the useful part.
    return _one_line(lines[-1] if lines else "no error message", 100)


def render_memory(nodes: Sequence[Node], task: Task, *, limit: int = 20) -> str:
    """Earlier results, best first (at most `limit` rows), then failed and in-flight ones summarised."""
    if not nodes:
        return "No earlier attempts yet."
    ok = [n for n in nodes if n.status is Status.OK and n.metric is not None]
    ok.sort(key=lambda n: n.metric, reverse=not task.lower_is_better)
    failed = [n for n in nodes if n.status.failed]
    pending = [n for n in nodes if n.status in (Status.PENDING, Status.RUNNING)]
    direction = "lower is better" if task.lower_is_better else "higher is better"
    out = [f"{len(ok)} scored, {len(failed)} failed, {len(pending)} in progress; metric: {direction}."]
    if ok:
        out += ["", "| id | operator | metric | idea | proposal |", "|---|---|---|---|---|"]
        for n in ok[:limit]:
            out.append(f"| {n.id} | {n.operator} | {n.metric:.6g} | {_one_line(n.idea, 80)} | "
                       f"{short_proposal(n.proposal)} |")
        if len(ok) > limit:
            out.append(f"({len(ok) - limit} lower-ranked results not shown)")
    if failed:
        out += ["", "Failed:"]
        for n in failed[-limit:]:
            out.append(f"- {n.id} ({n.operator}, {n.status.value}): {_one_line(n.idea, 60)} -- "
                       f"{_error_line(n)}")
        if len(failed) > limit:
            out.append(f"({len(failed) - limit} earlier failures not shown)")
    if pending:
        out += ["", "In progress: " + "; ".join(_one_line(n.idea, 60) for n in pending[:limit])]
    return "\n".join(out)


def sibling_ideas(nodes: Sequence[Node], parent_id: str | None) -> list[str]:
    """Ideas already tried from the same parent (for parent_id None: the other drafts)."""
    if parent_id is None:
        return [n.idea for n in nodes if not n.parents and n.operator == "draft"]
    return [n.idea for n in nodes if n.parents and n.parents[0] == parent_id]


def debug_chain(node: Node, nodes: Sequence[Node]) -> list[Node]:
    """The earlier failed attempts that `node` repairs, oldest first (the original failure first).

    For X (failed) <- D1 = debug(X) (failed) <- D2 = debug(D1), debug_chain(D2) is [X, D1].
    """
    by_id = {n.id: n for n in nodes}
    chain: list[Node] = []
    cur = node
    seen = {node.id}
    while cur.operator == "debug" and cur.parents:
        parent = by_id.get(cur.parents[0])
        if parent is None or parent.id in seen:
            break
        chain.append(parent)
        seen.add(parent.id)
        cur = parent
    chain.reverse()
    return chain
