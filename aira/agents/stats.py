"""Run statistics: the noise floor, per-agent stats, AIRS-Bench normalised scores, the leaderboard.

Normalised score (AIRS-Bench): NS = (f(s) - f(s_min)) / (f(s_sota) - f(s_min)), f(s) = -log10|s - s_opt|.
Our choices, since a search run has no "worst submission" of its own:
- s_opt is the metric's optimum: the task's `metric_optimum` when it has one, else 0 for a
  lower-is-better metric (a loss) and 1.0 for a higher-is-better one (accuracy), or 100 when the
  task's reference score is above 1 (accuracy in percent).
- s_min is the noise-floor mean: the score of the task's own reference (baseline) proposal. NS = 0 is
  "no better than the baseline", NS = 1 "as good as the SOTA reference", above 1 beats it.
- s_sota is `task.reference_score`. Without it, or without a baseline, NS is None.
- |s - s_opt| is clamped to 1e-12 so that a perfect score stays finite.
NS is computed on the agent's final pick: its best node by search score, scored on the hidden
selection split when it has one.

Promotion (RunConfig.promote): a `promote` node re-evaluates its parent candidate at the task's higher
fidelity, on another scale. It is not a candidate itself; the final order (`final_order`, and with it
`best_node(selection=True)` and `leaderboard`) puts the candidates with a promoted score first, ranked by
it, then every other candidate by its own score. The two scales are never compared with each other.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from aira.agents.memory import short_proposal
from aira.agents.types import Node, Status

REFERENCE = "reference"
PROMOTE = "promote"  # operator and agent of the harness's re-evaluations at a higher fidelity
LOST = "lost in crash; re-proposed"
STOPPED = "killed: "  # error prefix of the jobs a run killed when its budget ran out (budget stop=kill)


def stopped_with_run(node: Node) -> bool:
    """Killed because the run ended (its budget was spent with stop=kill), not because it failed."""
    return node.status == Status.KILLED and (node.error or "").startswith(STOPPED)


def forgotten(node: Node) -> bool:
    """Lost in a crash, or stopped when a budget ran out: never evaluated, so it counts for nothing (no
    evaluation, no failure), a resumed run does not replay it, and its policy may propose it again."""
    return node.error == LOST or stopped_with_run(node)


@dataclass(frozen=True, kw_only=True)
class TaskInfo:
    """What scoring needs from a task, stored in the run folder so `runs show` needs no task."""

    name: str
    lower_is_better: bool = False
    reference_score: float | None = None
    metric_optimum: float | None = None
    # std of a candidate's score measured outside the run (Compose: the proxy's shipped fidelity figures);
    # the noise floor falls back on it when the run has too few reference seeds of its own
    measured_noise: float | None = None

    @classmethod
    def of(cls, task) -> TaskInfo:
        return cls(
            name=getattr(task, "name", "task"),
            lower_is_better=bool(task.lower_is_better),
            reference_score=getattr(task, "reference_score", None),
            metric_optimum=getattr(task, "metric_optimum", None),
            measured_noise=getattr(task, "measured_noise", None),
        )

    @property
    def optimum(self) -> float:
        if self.metric_optimum is not None:
            return self.metric_optimum
        if self.lower_is_better:
            return 0.0
        return 100.0 if (self.reference_score or 0.0) > 1.0 else 1.0

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class NoiseFloor:
    """Spread of the reference proposal's search metric over `n` seeds."""

    n: int
    mean: float
    std: float  # sample standard deviation (n - 1); 0 for a single seed
    spread: float  # max - min
    source: str = "reference seeds"  # where `std` comes from: the run's reference seeds, or "measured"

    def to_dict(self) -> dict:
        return asdict(self)


# below this many reference seeds a run's own std is too uncertain (2 seeds: a chi with 1 degree of
# freedom, anywhere from ~0.03x to ~2.2x the true std at 95%); a task's measured figure is used instead
MIN_REFERENCE_SEEDS = 3


def noise_floor(nodes: Iterable[Node], info: TaskInfo | None = None) -> NoiseFloor | None:
    """The reference's mean and spread over the run's seeds. The std is the run's own with at least
    MIN_REFERENCE_SEEDS seeds, else the task's `measured_noise` when it has one (source "measured")."""
    scores = [
        n.metric for n in nodes if n.operator == REFERENCE and n.status == Status.OK and n.metric is not None
    ]
    if not scores:
        return None
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    source = "reference seeds"
    if len(scores) < MIN_REFERENCE_SEEDS and info is not None and info.measured_noise is not None:
        std, source = info.measured_noise, "measured"
    return NoiseFloor(n=len(scores), mean=statistics.fmean(scores), std=std, spread=max(scores) - min(scores),
                      source=source)


def normalised_score(s: float, *, s_min: float, s_sota: float, s_opt: float) -> float | None:
    def f(x: float) -> float:
        return -math.log10(max(abs(x - s_opt), 1e-12))

    denom = f(s_sota) - f(s_min)
    if denom == 0:
        return None
    return (f(s) - f(s_min)) / denom


def rank_key(node: Node, info: TaskInfo, *, selection: bool) -> float:
    """Sort key, smaller is better: the selection score when asked and present, else the search score."""
    score = node.selection_metric if selection and node.selection_metric is not None else node.metric
    if score is None or math.isnan(score):
        return math.inf
    return score if info.lower_is_better else -score


def promoted_scores(nodes: Iterable[Node]) -> dict[str, Node]:
    """Candidate node id -> its finished promotion node (the last one when there are several)."""
    return {n.parents[0]: n for n in nodes
            if n.operator == PROMOTE and n.parents and n.status == Status.OK and n.metric is not None}


def final_order(nodes: Iterable[Node], info: TaskInfo) -> list[tuple[Node, Node | None]]:
    """Finished OK candidates, best first, each with its promotion node or None: first those with a promoted
    score, by its selection score (search score where none), then every other candidate by its own
    selection score (a promotion that failed or never finished leaves its candidate in the second group)."""
    nodes = list(nodes)
    large = promoted_scores(nodes)
    ok = [n for n in nodes if n.status == Status.OK and n.metric is not None and n.operator != PROMOTE]

    def key(n: Node) -> tuple[int, float]:
        p = large.get(n.id)
        return (0, rank_key(p, info, selection=True)) if p else (1, rank_key(n, info, selection=True))

    return [(n, large.get(n.id)) for n in sorted(ok, key=key)]


def best_node(nodes: Iterable[Node], info: TaskInfo, *, selection: bool = False) -> Node | None:
    """The best candidate: by the search score, or with `selection` the final pick (`final_order`)."""
    if selection:
        order = final_order(nodes, info)
        return order[0][0] if order else None
    ok = [n for n in nodes if n.status == Status.OK and n.metric is not None and n.operator != PROMOTE]
    return min(ok, key=lambda n: rank_key(n, info, selection=False), default=None)


@dataclass(kw_only=True)
class AgentStats:
    agent: str
    nodes: int
    valid_rate: float  # proposals that passed validation / all proposals
    success_rate: float  # evaluations that finished OK / evaluations (lost ones and those the run's end stopped excluded)
    best_metric: float | None  # best search score
    best_node: str | None
    best_selection: float | None  # the best node's hidden selection score
    normalised: float | None
    cost_usd: float
    compute_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def agent_stats(nodes: Sequence[Node], info: TaskInfo, floor: NoiseFloor | None = None) -> list[AgentStats]:
    """One row per agent (reference and promotion nodes excluded), in order of first appearance."""
    agents = list(dict.fromkeys(n.agent for n in nodes if n.operator not in (REFERENCE, PROMOTE)))
    out = []
    for agent in agents:
        mine = [n for n in nodes if n.agent == agent and n.operator != REFERENCE]
        valid = [n for n in mine if n.status != Status.INVALID]
        evaluated = [n for n in valid if n.status not in (Status.PENDING, Status.RUNNING) and not forgotten(n)]
        best = best_node(mine, info)
        pick = (
            None
            if best is None
            else (best.selection_metric if best.selection_metric is not None else best.metric)
        )
        ns = None
        if pick is not None and floor is not None and info.reference_score is not None:
            ns = normalised_score(pick, s_min=floor.mean, s_sota=info.reference_score, s_opt=info.optimum)
        out.append(
            AgentStats(
                agent=agent,
                nodes=len(mine),
                valid_rate=len(valid) / len(mine) if mine else 0.0,
                success_rate=sum(n.status == Status.OK for n in evaluated) / len(evaluated)
                if evaluated
                else 0.0,
                best_metric=None if best is None else best.metric,
                best_node=None if best is None else best.id,
                best_selection=None if best is None else best.selection_metric,
                normalised=ns,
                cost_usd=sum(n.cost_usd for n in mine),
                compute_s=sum(n.seconds for n in mine),
            )
        )
    return out


def leaderboard(nodes: Sequence[Node], info: TaskInfo, *, top: int = 10) -> list[Node]:
    """Finished OK candidates in the final order (`final_order`: promoted scores first, then the hidden
    selection score, search score where none)."""
    return [n for n, _ in final_order(nodes, info)][:top]


def tie_groups(scores: Sequence[float], noise: float | None) -> list[int]:
    """For scores in rank order, the 1-based rank of each row's tie group: a row closer than `noise`
    (the noise floor's std) to its group's FIRST row joins that group, so that a long run of small steps
    cannot chain the whole board into one tie. Without a noise figure every row leads its own group."""
    groups: list[int] = []
    lead_rank, lead_score = 0, 0.0
    for i, score in enumerate(scores, 1):
        if lead_rank and noise and abs(score - lead_score) < noise:
            groups.append(lead_rank)
        else:
            lead_rank, lead_score = i, score
            groups.append(i)
    return groups


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def format_report(nodes: Sequence[Node], info: TaskInfo, *, top: int = 10) -> str:
    """The text `aira runs show` prints: noise floor, per-agent stats, leaderboard."""
    floor = noise_floor(nodes, info)
    direction = "lower is better" if info.lower_is_better else "higher is better"
    lines = [f"task {info.name} ({direction}); {len(nodes)} nodes"]
    if floor is None:
        lines.append("noise floor: none (the task has no reference, or it did not finish)")
    else:
        lines.append(
            f"noise floor: reference mean {floor.mean:.4g}, std {floor.std:.3g}, "
            f"max-min {floor.spread:.3g} over {floor.n} seeds"
            + (" (std: the proxy's measured figure, too few seeds here)" if floor.source == "measured" else "")
        )
    lines.append("")
    lines.append(
        f"{'agent':<32} {'nodes':>5} {'valid':>6} {'ok':>6} {'best':>9} {'sel':>9} "
        f"{'NS':>6} {'cost$':>7} {'compute':>8}"
    )
    for s in agent_stats(nodes, info, floor):
        lines.append(
            f"{s.agent[:32]:<32} {s.nodes:>5} {s.valid_rate:>6.0%} {s.success_rate:>6.0%} "
            f"{_fmt(s.best_metric):>9} {_fmt(s.best_selection):>9} {_fmt(s.normalised, '.3f'):>6} "
            f"{s.cost_usd:>7.2f} {s.compute_s:>7.0f}s"
        )
    lines.append("")
    board = final_order(nodes, info)[:top]
    noise = floor.std if floor is not None and floor.std > 0 else None
    # ties on the candidates' own scale only: the noise std says nothing about promoted scores
    n_large = sum(p is not None for _, p in board)
    rest = tie_groups([n.selection_metric if n.selection_metric is not None else n.metric
                       for n, _ in board[n_large:]], noise)
    groups = list(range(1, n_large + 1)) + [g + n_large for g in rest]
    tie_note = f"; '=k' marks a tie with row k (within one noise std, {noise:.3g})" if noise else ""
    lines.append(f"leaderboard (final pick by the hidden selection split; search score shown beside it{tie_note})")
    if n_large:
        lines.append(f"the first {n_large} were promoted: ranked by their selection score at the higher fidelity "
                     f"('promoted', another scale), ahead of every candidate without one")
    promoted_col = f" {'promoted':>9}" if n_large else ""
    lines.append(
        f"{'#':>4} {'node':<8} {'agent':<28} {'operator':<10} {'search':>9} {'selection':>9}{promoted_col}  proposal"
    )
    for i, ((n, p), g) in enumerate(zip(board, groups), 1):
        rank = f"={g}" if g != i else str(i)
        cell = f" {_fmt(p and (p.selection_metric if p.selection_metric is not None else p.metric)):>9}" \
            if n_large else ""
        lines.append(
            f"{rank:>4} {n.id:<8} {n.agent[:28]:<28} {n.operator:<10} {_fmt(n.metric):>9} "
            f"{_fmt(n.selection_metric):>9}{cell}  {short_proposal(n.proposal)}"
        )
    return "\n".join(lines)
