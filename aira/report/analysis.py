"""The numbers behind the report's tables and plots, computed from journal nodes (no HTML, no plotting).

Ties: two scores closer than the noise floor's standard deviation (the reference proposal's spread
over seeds, the same margin the greedy policy needs to call something an improvement) cannot be told
apart. The leaderboard groups rows by their distance to the group's FIRST row, not to the row above,
so that a long run of small steps cannot chain the whole board into one tie.

Best-so-far curves count an agent's own evaluations in the order they finished; INVALID proposals
never reached the evaluator and are not counted, crashed ones are (they spent an evaluation).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from aira.agents.stats import REFERENCE, NoiseFloor, TaskInfo, forgotten, leaderboard, tie_groups
from aira.agents.types import Node, Status
from aira.errors import UsageError

# Names for the built-in codes, so the report needs no torch import to label a heat map.
PRIMITIVE_NAMES = {"A": "attention", "M": "MLP", "S": "Mamba-2", "W": "sliding-window attn"}


def primitive_name(code: str) -> str:
    if code in PRIMITIVE_NAMES:
        return PRIMITIVE_NAMES[code]
    try:
        from aira.models.registry import get

        return get(code).name
    except (ImportError, UsageError):  # an unregistered code in an old run still gets a label
        return code


@dataclass(kw_only=True)
class LeaderRow:
    rank: int  # 1-based position
    group: int  # rank of the tie group's first row; equal to `rank` for a row that leads its group
    tied: bool  # within the noise of another row of its group
    node: Node
    score: float  # the ranking score: selection split when present, else search
    seed_std: float | None  # spread of the search metric over the node's seeds
    seeds: int  # how many seeds the search metric averages

    @property
    def reference(self) -> bool:
        return self.node.operator == REFERENCE


def ranking_score(node: Node) -> float:
    return node.selection_metric if node.selection_metric is not None else node.metric


def leader_rows(
    nodes: Sequence[Node], info: TaskInfo, floor: NoiseFloor | None, *, top: int = 20
) -> list[LeaderRow]:
    """The top finished nodes (reference runs included, to compare against), with tie groups."""
    noise = floor.std if floor is not None and floor.std > 0 else None
    board = leaderboard(nodes, info, top=top)
    groups = tie_groups([ranking_score(n) for n in board], noise)
    rows: list[LeaderRow] = []
    for i, (n, group) in enumerate(zip(board, groups), 1):
        seed_metrics = [x for x in n.metrics.get("seed_metrics") or [] if isinstance(x, (int, float))]
        rows.append(LeaderRow(rank=i, group=group, tied=groups.count(group) > 1, node=n, score=ranking_score(n),
                              seed_std=n.metrics.get("seed_std"), seeds=len(seed_metrics) or 1))
    return rows


def evaluated_in_order(nodes: Sequence[Node], agent: str) -> list[Node]:
    """An agent's evaluated nodes (INVALID, unfinished and never-evaluated ones left out) in the order they
    finished."""
    mine = [
        n
        for n in nodes
        if n.agent == agent and n.status not in (Status.INVALID, Status.PENDING, Status.RUNNING)
        and not forgotten(n)  # lost in a crash or stopped by the budget: never evaluated
    ]
    return sorted(mine, key=lambda n: (math.inf if n.finished_at is None else n.finished_at, n.created_at))


def best_so_far(nodes: Sequence[Node], info: TaskInfo, agent: str) -> list[float | None]:
    """Running best search score after each of the agent's evaluations (None until one succeeds)."""
    best: float | None = None
    out: list[float | None] = []
    for n in evaluated_in_order(nodes, agent):
        ok = n.status == Status.OK and n.metric is not None and math.isfinite(n.metric)
        if ok and (best is None or info.better(n.metric, best)):
            best = n.metric
        out.append(best)
    return out


def agent_evaluations(nodes: Sequence[Node]) -> int:
    """Evaluations the agents spent: finished non-reference nodes, INVALID ones and those never evaluated
    (lost in a crash, stopped by the budget) left out."""
    return sum(
        n.operator != REFERENCE
        and n.status not in (Status.INVALID, Status.PENDING, Status.RUNNING)
        and not forgotten(n)
        for n in nodes
    )


@dataclass(frozen=True, kw_only=True)
class CurvePoint:
    """One evaluation of an agent: when it finished, the agent's compute so far, and its best score then."""

    evaluation: int  # 1-based count of the agent's evaluations
    wall_s: float  # seconds from the run's first node to this evaluation's end
    compute_s: float  # the agent's evaluation seconds summed up to this one
    best: float | None


def curve_points(nodes: Sequence[Node], info: TaskInfo, agent: str) -> list[CurvePoint]:
    """`best_so_far` with a wall-clock and a compute coordinate per evaluation (for the time and compute
    plots); the clock starts at the run's first node (reference runs included)."""
    start = min((n.created_at for n in nodes), default=0.0)
    out, compute = [], 0.0
    bests = best_so_far(nodes, info, agent)
    for i, (n, best) in enumerate(zip(evaluated_in_order(nodes, agent), bests), 1):
        compute += n.seconds or 0.0
        end = n.finished_at if n.finished_at is not None else n.created_at + (n.seconds or 0.0)
        out.append(CurvePoint(evaluation=i, wall_s=max(0.0, end - start), compute_s=compute, best=best))
    return out


def reference_score(nodes: Sequence[Node]) -> float | None:
    """Mean ranking score (selection split where present) of the reference's finished seeds."""
    scores = [ranking_score(n) for n in nodes if n.operator == REFERENCE and n.status == Status.OK
              and n.metric is not None]
    return sum(scores) / len(scores) if scores else None


def top_patterns(nodes: Sequence[Node], info: TaskInfo, *, k: int = 20) -> list[str]:
    """The k best distinct layer patterns among the agents' nodes (most common length only), best first."""
    pats: dict[str, None] = {}
    for n in leaderboard([n for n in nodes if n.operator != REFERENCE], info, top=len(nodes)):
        if isinstance(n.proposal, str) and n.proposal.isalpha() and n.proposal.isupper():
            pats.setdefault(n.proposal)
    if not pats:
        return []
    length = Counter(len(p) for p in pats).most_common(1)[0][0]
    return [p for p in pats if len(p) == length][:k]


def frequencies(patterns: Sequence[str]) -> tuple[list[str], list[list[float]]]:
    """(codes, freq) with freq[c][i] = share of the patterns that have codes[c] at layer i."""
    if not patterns:
        return [], []
    length = len(patterns[0])
    codes = sorted({c for p in patterns for c in p}, key=code_order)
    freq = [[sum(p[i] == c for p in patterns) / len(patterns) for i in range(length)] for c in codes]
    return codes, freq


def code_order(code: str) -> tuple[int, str]:
    order = "AMSW"
    return (order.index(code) if code in order else len(order), code)


def ratio_text(pattern: str) -> str:
    """Attention:MLP:Mamba counts, e.g. 'A:M:S = 5:9:2' (only the codes in the pattern, in a fixed order)."""
    counts = Counter(pattern)
    codes = sorted(counts, key=code_order)
    return f"{':'.join(codes)} = {':'.join(str(counts[c]) for c in codes)}"


# the figures of fidelity.json a reader looks for first: (key, label, target, what it says)
FIDELITY_ROWS = [
    ("spearman", "small-to-large rank correlation (transfer)", "≥ 0.8",
     "does the proxy rank patterns as 4x wider, 4x longer training does"),
    ("ci", "its 95% bootstrap interval", "above 0", "an interval holding 0 cannot tell the proxy from chance"),
    ("ceiling", "best transfer possible given seed noise", "-", "the rho both sides' noise allows at most"),
    ("seed_to_seed", "seed-to-seed rank correlation (one seed)", "≥ 0.9",
     "does a pattern keep its rank when trained with another seed"),
    ("seed_to_seed_candidates", "seed-to-seed, candidates as scored", "≥ 0.9", "the same for the mean of seeds"),
    ("seed_to_seed_predicted", "seed-to-seed, candidates (predicted)", "≥ 0.9", "Spearman-Brown from one seed"),
    ("seeds_per_candidate", "seeds per candidate", "-", "the search scores their mean"),
    ("noise_floor", "noise floor (pooled std over seeds)", "-", "score differences below it are ties"),
    ("saturation", "saturated patterns", "0", "share within the noise of chance or of the ceiling"),
    ("compared", "compared", "-", "the fidelities and patterns the transfer was measured on"),
]


def fidelity_rows(fid: dict | None) -> list[tuple[str, object, str, str]]:
    """(figure, value, target, meaning) for each FIDELITY_ROWS figure a fidelity.json holds; the report and
    the dashboard both show these."""
    rows = []
    for key, label, target, meaning in FIDELITY_ROWS:
        if fid and key in fid:
            v = fid[key]
            if key == "ceiling" and isinstance(v, dict):
                v = v.get("spearman")
            rows.append((label, v, target, meaning))
    return rows
