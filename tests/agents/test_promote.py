"""Promotion within one search (RunConfig.promote): the best candidates re-evaluated at a higher fidelity,
journaled as their own nodes, never counted as evaluations nor shown to agents, and ranked first."""

import json

import pytest

from aira.agents.executors import make_executor
from aira.agents.executors.inline import InlineExecutor
from aira.agents.journal import Journal
from aira.agents.runfolder import RunConfig, parse_promote
from aira.agents.stats import LOST, PROMOTE, TaskInfo, final_order, format_report, rank_key
from aira.agents.types import Job, Node, Status
from aira.errors import UsageError
from aira.tasks.runs import resume, run
from aira.tasks.synthetic import SyntheticPatternTask


class TwoFidelityTask(SyntheticPatternTask):
    """The synthetic task with a "large" fidelity that scores against another hidden target, so its
    ranking differs from the cheap one's."""

    promotion_fidelity = "large"

    def promotion_job(self, proposal, *, seed, job_id):
        return Job(id=job_id, fn="aira.tasks.synthetic:evaluate", timeout_s=60.0,
                   kwargs={"pattern": proposal, "seed": seed, "target_seed": 99})


def _run(tmp_path, name, *, promote=None, budget="12evals", task=None):
    cfg = RunConfig(task="synthetic", agents=["greedy:offline", "random:offline"], out=str(tmp_path / name),
                    quiet=True, noise_seeds=0, budget=budget, promote=promote)
    s = run(cfg, task=task or TwoFidelityTask(noise=0.02), executor=make_executor("inline"))
    with Journal(cfg.out, readonly=True) as j:
        return s, j.nodes()


def _cheap_top(nodes, k, info):
    """The best k distinct proposals by the hidden selection score among the counted candidates."""
    out = []
    for n in sorted((n for n in nodes if n.operator != PROMOTE and n.status == Status.OK),
                    key=lambda n: rank_key(n, info, selection=True)):
        if n.proposal not in out:
            out.append(n.proposal)
    return out[:k]


def test_promotions_are_nodes_of_their_own_and_decide_the_final_pick(tmp_path):
    s, nodes = _run(tmp_path, "p", promote="2:4")
    info = TaskInfo(name="synthetic-0")
    promoted = [n for n in nodes if n.operator == PROMOTE]
    by_id = {n.id: n for n in nodes}
    # not counted: the 12 evaluations are the agents'; the promotions come on top
    assert s.evaluations == 12 and sum(n.operator != PROMOTE and n.status == Status.OK for n in nodes) == 12
    assert promoted and all(n.agent == PROMOTE and n.status == Status.OK for n in promoted)
    for p in promoted:  # the parent is the promoted candidate, re-evaluated at the large fidelity
        parent = by_id[p.parents[0]]
        assert parent.operator != PROMOTE and parent.proposal == p.proposal and parent.seed == p.seed
        large = TwoFidelityTask().promotion_job(p.proposal, seed=p.seed, job_id="x")
        from aira.tasks.synthetic import evaluate

        assert p.selection_metric == pytest.approx(evaluate(**large.kwargs)["selection_metric"])
    assert len({p.proposal for p in promoted}) == len(promoted)  # each proposal once per run
    # rounds after 4, 8 and 12 evaluations and at the end: the final top 2 are all promoted
    assert set(_cheap_top(nodes, 2, info)) <= {p.proposal for p in promoted}
    assert 2 <= len(promoted) <= 6
    # the final pick: the promoted candidate with the best large selection score, whatever its cheap score
    best_large = max(promoted, key=lambda p: p.selection_metric)
    assert s.best["id"] == best_large.parents[0] and s.best["proposal"] == best_large.proposal
    assert s.best["promoted"]["id"] == best_large.id
    assert s.best["promoted"]["selection_metric"] == best_large.selection_metric
    saved = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert saved["best"] == s.best
    assert saved["promotions"]["k"] == 2 and saved["promotions"]["every"] == 4
    assert saved["promotions"]["evaluations"] == len(promoted) == saved["promotions"]["ok"]
    # the leaderboard: promoted candidates first, by their large score, with it in its own column
    order = final_order(nodes, info)
    n_large = sum(p is not None for _, p in order)
    assert n_large == len(promoted)
    assert [p.selection_metric for _, p in order[:n_large]] == sorted((p.selection_metric for p in promoted),
                                                                      reverse=True)
    assert all(p is None for _, p in order[n_large:])
    text = format_report(nodes, info)
    assert f"the first {n_large} were promoted" in text and " promoted  proposal" in text
    assert f"   1 {best_large.parents[0]} " in text
    assert not any(a["agent"] == PROMOTE for a in saved["agents"])  # no agent row for the harness


def test_agents_never_see_promotions_the_search_is_the_single_fidelity_one(tmp_path):
    # one slot, one inline executor: deterministic; with and without promotion the agents do the same
    _, plain = _run(tmp_path, "plain")
    _, promoted = _run(tmp_path, "promoted", promote="3:2")

    def agent_nodes(nodes):
        return [(n.agent, n.operator, n.proposal, n.metric) for n in nodes if n.operator != PROMOTE]

    assert any(n.operator == PROMOTE for n in promoted)
    assert agent_nodes(promoted) == agent_nodes(plain)


def test_final_order_puts_promoted_scores_first_and_never_compares_the_scales():
    def node(i, sel, op="draft", parent=None, status=Status.OK):
        return Node(id=i, agent=PROMOTE if op == PROMOTE else "a", operator=op, proposal=i, metric=sel,
                    selection_metric=sel, status=status, parents=[parent] if parent else [])

    nodes = [node("c1", 0.9), node("c2", 0.5), node("c3", 0.4), node("c4", 0.8),
             node("p2", 3.0, PROMOTE, "c2"), node("p3", 7.0, PROMOTE, "c3"),
             node("p4", None, PROMOTE, "c4", status=Status.TIMED_OUT)]
    higher = TaskInfo(name="t")
    # promoted c3 (7.0) and c2 (3.0) first, though c1 and c4 have better cheap scores; c4's promotion
    # failed, so it ranks among the unpromoted by its cheap score
    assert [(n.id, p and p.id) for n, p in final_order(nodes, higher)] == [
        ("c3", "p3"), ("c2", "p2"), ("c1", None), ("c4", None)]
    lower = TaskInfo(name="t", lower_is_better=True)
    assert [n.id for n, _ in final_order(nodes, lower)] == ["c2", "c3", "c4", "c1"]


@pytest.mark.parametrize("spec", ["0", "2:0", "x", "2:y", "-1"])
def test_bad_promote_specs_are_refused(spec, tmp_path):
    with pytest.raises(UsageError, match="bad --promote"):
        RunConfig(task="synthetic", promote=spec, out=str(tmp_path / "r"))
    assert parse_promote("3") == (3, 10) and parse_promote("3:20") == (3, 20) and parse_promote(None) is None


def test_a_task_without_a_higher_fidelity_refuses_promotion_before_the_run_folder(tmp_path):
    with pytest.raises(UsageError, match="has no higher fidelity to promote to"):
        _run(tmp_path, "r", promote="2", task=SyntheticPatternTask())
    assert not (tmp_path / "r").exists()


class CrashOnPromotion(InlineExecutor):
    """The harness dies when it hands the executor its `n`-th promotion (the node is journaled by then)."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def submit(self, job):
        if job.kwargs.get("target_seed") == 99:
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt
        super().submit(job)


def test_promotions_survive_resume_and_a_lost_one_is_promoted_again(tmp_path):
    cfg = RunConfig(task="synthetic", agents=["greedy:offline", "random:offline"], out=str(tmp_path / "r"),
                    quiet=True, noise_seeds=0, budget="12evals", promote="2:3")
    with pytest.raises(KeyboardInterrupt):
        run(cfg, task=TwoFidelityTask(noise=0.02), executor=CrashOnPromotion(3))
    with Journal(tmp_path / "r", readonly=True) as j:
        nodes = j.nodes()
    before = {n.id: n.to_dict() for n in nodes if n.operator == PROMOTE and n.status == Status.OK}
    (victim,) = [n for n in nodes if n.status == Status.PENDING]
    assert len(before) == 2 and victim.operator == PROMOTE

    s = resume(tmp_path / "r", task=TwoFidelityTask(noise=0.02), executor=make_executor("inline"))
    with Journal(tmp_path / "r", readonly=True) as j:
        after = j.nodes()
    assert s.evaluations == 12  # promotions are not counted, before or after the resume
    by_id = {n.id: n for n in after}
    assert by_id[victim.id].status == Status.CRASHED and by_id[victim.id].error == LOST
    assert all(by_id[i].to_dict() == d for i, d in before.items())  # nothing finished was lost or changed
    live = [n for n in after if n.operator == PROMOTE and n.error != LOST]
    assert all(n.status == Status.OK for n in live)
    assert len({n.proposal for n in live}) == len(live)  # still each proposal once
    assert victim.proposal in {n.proposal for n in live}  # the lost one, promoted again
    assert set(_cheap_top(after, 2, TaskInfo(name="synthetic-0"))) <= {n.proposal for n in live}
    assert s.best["promoted"]["id"] in {n.id for n in live}
