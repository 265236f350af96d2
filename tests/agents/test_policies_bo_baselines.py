"""The two task-reading policies: Bayesian optimisation (Optuna) and the fixed baselines list."""

import statistics

import pytest

from aira.agents.agent import AgentSpec, make_policy_for
from aira.agents.policies import make_policy
from aira.agents.policies.inline import run_inline
from aira.agents.types import Node, Status
from aira.errors import UsageError
from aira.tasks.synthetic import SyntheticPatternTask

pytest.importorskip("optuna")


def _bo(task, **kw):
    return make_policy_for(AgentSpec(policy="bo", params=kw), task)


def _best(nodes, task):
    return max(task.evaluate(n.proposal)["true_score"] for n in nodes if n.status is Status.OK)


def test_bo_is_deterministic_and_proposes_valid_patterns():
    task = SyntheticPatternTask(target_seed=1)
    a = run_inline(_bo(task, seed=3), task, 20, seed=0)
    b = run_inline(_bo(task, seed=3), task, 20, seed=0)
    assert [n.proposal for n in a] == [n.proposal for n in b]
    assert all(task.validate(n.proposal) is None for n in a)
    assert all(n.idea.startswith("[offline] Bayesian optimisation") for n in a)


def test_bo_beats_random_search_on_average():
    bo, rnd = [], []
    for target in range(5):
        task = SyntheticPatternTask(target_seed=target)
        bo.append(_best(run_inline(_bo(task, seed=target, startup=8), task, 50, seed=target), task))
        rnd.append(_best(run_inline(make_policy("random"), task, 50, seed=target), task))
    assert statistics.mean(bo) > statistics.mean(rnd) + 0.03


def test_bo_learns_from_history_it_did_not_ask_for():
    task = SyntheticPatternTask(target_seed=0)
    policy = _bo(task, seed=0)
    node = Node(id="x", agent="old", operator="draft", proposal=task.optimum(), status=Status.OK, metric=1.0)
    policy.observe(node)
    assert len(policy._study.trials) == 1 and policy._study.best_value == 1.0


def test_bo_refuses_a_task_without_an_encoding_and_bad_sampler():
    class NoSpace(SyntheticPatternTask):
        def space(self):
            return None

    with pytest.raises(UsageError, match="categorical"):
        _bo(NoSpace())
    with pytest.raises(UsageError, match="sampler"):
        _bo(SyntheticPatternTask(), sampler="magic")


def test_baselines_policy_evaluates_each_baseline_once():
    class WithBaselines(SyntheticPatternTask):
        def baselines(self):
            return {"all-A": "A" * 16, "all-M": "M" * 16}

    task = WithBaselines()
    policy = make_policy_for(AgentSpec(policy="baselines"), task)
    nodes = run_inline(policy, task, 10)
    assert [(n.idea, n.proposal, n.operator) for n in nodes] == [
        ("all-A", "A" * 16, "baseline"), ("all-M", "M" * 16, "baseline")]
    assert all(n.status is Status.OK for n in nodes)
