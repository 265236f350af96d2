"""Search policies on the synthetic task with the offline operators, driven by a small in-test loop.

run_inline mirrors the orchestrator: next_step -> operator -> validate -> evaluate -> observe, with up
to `in_flight` nodes pending at once (asynchronous workers finishing in submission order).
"""

from __future__ import annotations

import random

import pytest

from aira.agents.policies import POLICIES, make_policy
from aira.agents.policies.inline import run_inline
from aira.agents.types import Node, Status
from aira.errors import UsageError
from aira.tasks.synthetic import SyntheticPatternTask

SEARCHERS = ["greedy", "mcts", "evolutionary", "steady_state"]


drive = run_inline  # raises if a step builds on an unfinished node


def best_true_score(task, nodes) -> float:
    return max(task.evaluate(n.proposal)["true_score"] for n in nodes if n.status is Status.OK)


def trace(nodes):
    return [(n.operator, tuple(n.parents), n.proposal) for n in nodes]


# -- all policies -------------------------------------------------------------------------------
# (bo and baselines read the task through bind(); tests/agents/test_policies_bo_baselines.py has theirs)
OPERATOR_POLICIES = sorted(name for name, cls in POLICIES.items() if not hasattr(cls, "bind"))


@pytest.mark.parametrize("name", OPERATOR_POLICIES)
def test_deterministic_for_a_seed(name):
    task = SyntheticPatternTask(target_seed=1)
    runs = [trace(drive(make_policy(name), task, 40, seed=s, in_flight=2)) for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name", SEARCHERS)
def test_beats_random_search_on_average(name):
    seeds, budget = range(6), 60
    means = {}
    for policy in (name, "random"):
        scores = [best_true_score(task, drive(make_policy(policy), task, budget, seed=s))
                  for s in seeds for task in [SyntheticPatternTask(target_seed=s)]]
        means[policy] = sum(scores) / len(scores)
    assert means[name] > means["random"] + 0.05, means


@pytest.mark.parametrize("name", SEARCHERS)
def test_direction_is_respected(name):
    # Regret (lower is better) is 1 - score: a policy told the direction makes the very same moves.
    up = drive(make_policy(name), SyntheticPatternTask(target_seed=2), 40, seed=0)
    down = drive(make_policy(name, lower_is_better=True),
                 SyntheticPatternTask(target_seed=2, lower_is_better=True),
                 40, seed=0)
    assert trace(up) == trace(down)
    wrong = drive(make_policy(name), SyntheticPatternTask(target_seed=2, lower_is_better=True), 40, seed=0)
    assert trace(wrong) != trace(down)


@pytest.mark.parametrize("name", OPERATOR_POLICIES)
def test_asynchronous_workers_and_failures(name):
    # drive() asserts that no step builds on an unfinished node; failures must not stall a policy.
    task = SyntheticPatternTask(target_seed=0)
    nodes = drive(make_policy(name), task, 50, seed=0, in_flight=4, fail_every=4)
    assert len(nodes) == (1 if name == "oneshot" else 50)
    assert any(n.status is Status.CRASHED for n in nodes) or name == "oneshot"


# -- oneshot, random, greedy --------------------------------------------------------------------

def test_oneshot_and_random():
    task = SyntheticPatternTask()
    assert [n.operator for n in drive(make_policy("oneshot"), task, 10, seed=0)] == ["draft"]
    assert {n.operator for n in drive(make_policy("random"), task, 20, seed=0)} == {"draft"}


@pytest.mark.parametrize("in_flight", [1, 3])
def test_greedy_drafts_five_first_then_improves_the_best(in_flight):
    nodes = drive(make_policy("greedy"), SyntheticPatternTask(), 30, seed=0, in_flight=in_flight)
    ops = [n.operator for n in nodes]
    assert ops[:5] == ["draft"] * 5 and ops.count("draft") == 5 and set(ops[5:]) == {"improve"}
    # Each improve builds on the best node finished at the time it was asked for.
    pol = make_policy("greedy")
    done = [n for n in nodes[:12]]
    best = max(done, key=lambda n: n.metric)
    assert pol.next_step(done, random.Random(0)).parents == [best.id]


def _n(id, op="draft", parents=(), metric=None, status=Status.OK, proposal="AM" * 8, **kw):
    return Node(id=id, agent="t", operator=op, parents=list(parents), metric=metric, status=status,
                proposal=proposal, **kw)


def test_greedy_debugs_failed_leaves_up_to_the_depth_limit():
    nodes = [_n(f"d{i}", metric=0.1 * i) for i in range(5)]
    nodes.append(_n("x", "improve", ["d4"], status=Status.CRASHED, error="boom"))
    rng = random.Random(0)
    assert make_policy("greedy").next_step(nodes, rng).operator == "debug"
    assert make_policy("greedy").next_step(nodes, rng).parents == ["x"]
    assert make_policy("greedy", debug_prob=0.0).next_step(nodes, rng).parents == ["d4"]
    # A chain of 3 repairs that all failed: depth 3 is the limit when max_debug_depth=3.
    chain = nodes + [_n("r1", "debug", ["x"], status=Status.CRASHED),
                     _n("r2", "debug", ["r1"], status=Status.CRASHED),
                     _n("r3", "debug", ["r2"], status=Status.CRASHED)]
    assert make_policy("greedy", max_debug_depth=3).next_step(chain, rng).parents == ["d4"]
    assert make_policy("greedy", max_debug_depth=4).next_step(chain, rng).parents == ["r3"]
    # No proposal (an unparsable reply): nothing to repair.
    unparsed = nodes[:5] + [_n("u", "improve", ["d4"], status=Status.INVALID, proposal=None)]
    assert make_policy("greedy").next_step(unparsed, rng).parents == ["d4"]
    # A repair in flight: the failed node is no longer a leaf.
    inflight = nodes + [_n("r1", "debug", ["x"], status=Status.PENDING)]
    assert make_policy("greedy").next_step(inflight, rng).parents == ["d4"]


# -- make_policy --------------------------------------------------------------------------------

def test_make_policy_params_and_errors():
    g = make_policy("greedy", num_drafts="3", debug_prob=0.5, lower_is_better=True)
    assert (g.num_drafts, g.debug_prob, g.max_debug_depth, g.lower_is_better) == (3, 0.5, 20, True)
    assert make_policy("steady-state").name == "steady_state"
    with pytest.raises(UsageError, match="unknown policy 'beam'; choose one of: oneshot, greedy"):
        make_policy("beam")
    with pytest.raises(UsageError, match="policy greedy has no parameter 'c'"):
        make_policy("greedy", c=1.0)
    with pytest.raises(UsageError, match=r"debug_prob=1.5 must be in \[0.0, 1.0\]"):
        make_policy("greedy", debug_prob=1.5)
    with pytest.raises(UsageError, match="num_drafts='x' is not a valid int"):
        make_policy("greedy", num_drafts="x")
    with pytest.raises(UsageError, match="temperature=0.0 must be > 0"):
        make_policy("steady_state", temperature=0)


def test_greedy_incumbent_changes_only_beyond_the_improve_margin():
    nodes = [_n("a", metric=0.50), _n("b", metric=0.53), _n("c", metric=0.545), _n("d", metric=0.2),
             _n("e", metric=0.1)]
    rng = random.Random(0)
    assert make_policy("greedy").next_step(nodes, rng).parents == ["c"]
    assert make_policy("greedy", improve_margin=0.1).next_step(nodes, rng).parents == ["a"]
    pol = make_policy("greedy")
    pol.improve_margin = 0.02   # as the orchestrator sets it from the noise floor
    assert pol.next_step(nodes, rng).parents == ["b"]
    with pytest.raises(UsageError, match="improve_margin=-1.0 must be >= 0.0"):
        make_policy("greedy", improve_margin=-1)
