"""The selection rules of MCTS, evolutionary and steady-state policies, on hand-made trees."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from aira.agents.policies import make_policy
from aira.agents.policies.mcts import ROOT
from aira.agents.policies.steady_state import rank_probabilities
from aira.agents.types import Node, Status
from aira.tasks.synthetic import SyntheticPatternTask

from aira.agents.policies.inline import run_inline as drive


def _n(id, op="draft", parents=(), metric=None, status=Status.OK, proposal="AM" * 8, **kw):
    return Node(id=id, agent="t", operator=op, parents=list(parents), metric=metric, status=status,
                proposal=proposal, **kw)


# -- MCTS ---------------------------------------------------------------------------------------

DRAFTS = {"d0": 0.2, "d1": 0.6, "d2": 0.45, "d3": 0.1, "d4": 0.3}
D1_KIDS = [0.55, 0.4, 0.45, 0.35, 0.5]


def _hand_tree(lower_is_better=False):
    sign = -1 if lower_is_better else 1
    nodes = [_n(k, metric=sign * v) for k, v in DRAFTS.items()]
    nodes += [_n(f"i{j}", "improve", ["d1"], metric=sign * v) for j, v in enumerate(D1_KIDS)]
    return nodes


def _uct(mean, visits, parent_visits, c, lo=0.1, hi=0.6):
    return (mean - lo) / (hi - lo) + c * math.sqrt(math.log(parent_visits) / visits)


@pytest.mark.parametrize("lower_is_better", [False, True])
def test_mcts_uct_picks_the_expected_child(lower_is_better):
    nodes = _hand_tree(lower_is_better)
    # By hand: the root has 10 visits; d1 has 6 with mean (0.6 + sum(kids)) / 6 = 0.475; d2 has 1.
    d1 = _uct((0.6 + sum(D1_KIDS)) / 6, 6, 10, 0.25)
    d2 = _uct(0.45, 1, 10, 0.25)
    assert d2 > d1 and (0.6 + sum(D1_KIDS)) / 6 > 0.45   # exploration, not the mean, decides
    step = make_policy("mcts", lower_is_better=lower_is_better).next_step(nodes, random.Random(0))
    assert (step.operator, step.parents) == ("improve", ["d2"])
    # With c = 0 it exploits: d1 (best mean) is fully expanded, so it descends to d1's best child.
    step = make_policy("mcts", c=0.0, lower_is_better=lower_is_better).next_step(nodes, random.Random(0))
    assert (step.operator, step.parents) == ("improve", ["i0"])
    tree = make_policy("mcts", lower_is_better=lower_is_better).tree(nodes)
    assert tree[ROOT].visits == 10 and tree["d1"].visits == 6
    # Values are fitness (higher is better) whatever the task's direction.
    assert tree["d1"].value_sum == pytest.approx(0.6 + sum(D1_KIDS))


def test_mcts_expands_the_root_by_drafting_and_skips_in_flight_children():
    pol, rng = make_policy("mcts"), random.Random(0)
    assert pol.next_step([], rng).operator == "draft"
    nodes = [_n(f"d{i}", status=Status.PENDING) for i in range(5)]
    assert pol.next_step(nodes, rng).operator == "draft"   # all busy: draft rather than wait
    nodes[3] = _n("d3", metric=0.5)
    assert pol.next_step(nodes, rng).parents == ["d3"]


def test_mcts_debug_cycle_backpropagates_the_repaired_metric():
    nodes = _hand_tree()
    nodes.append(_n("x", "improve", ["d2"], status=Status.CRASHED, error="boom"))
    pol = make_policy("mcts")
    step = pol.next_step(nodes, random.Random(0))
    assert (step.operator, step.parents) == ("debug", ["x"])
    nodes.append(_n("r", "debug", ["x"], metric=0.58))
    tree = pol.tree(nodes)
    assert tree["x"].best == "r" and tree["x"].value == 0.58
    assert tree["d2"].visits == 2 and tree["d2"].value_sum == pytest.approx(0.45 + 0.58)
    assert tree[ROOT].visits == 11


def test_mcts_expands_a_repaired_node_through_its_repair():
    pol, rng = make_policy("mcts", num_children=1), random.Random(0)
    nodes = [_n("d", metric=0.5), _n("x", "improve", ["d"], status=Status.CRASHED, error="boom")]
    assert pol.next_step(nodes, rng).parents == ["x"]
    nodes.append(_n("r", "debug", ["x"], status=Status.PENDING))
    assert pol.next_step(nodes, rng).operator == "draft"   # the only path is busy
    nodes[-1] = _n("r", "debug", ["x"], metric=0.9)
    # The crashed node's place in the tree is taken by its repair: improve r, not x.
    assert pol.next_step(nodes, rng).parents == ["r"]


def test_mcts_exhausted_repairs_count_as_worst_visits():
    nodes = _hand_tree() + [_n("x", "improve", ["d2"], status=Status.CRASHED),
                            _n("r1", "debug", ["x"], status=Status.CRASHED)]
    pol = make_policy("mcts", max_debug_depth=1)
    tree = pol.tree(nodes)
    assert tree["x"].dead and tree["d2"].visits == 2 and tree["d2"].dead_visits == 1
    assert pol.next_step(nodes, random.Random(0)).operator == "improve"


# -- evolutionary -------------------------------------------------------------------------------

@pytest.mark.parametrize("lower_is_better", [False, True])
def test_evolutionary_admits_only_children_at_least_the_island_mean(lower_is_better):
    s = -1 if lower_is_better else 1
    pol = make_policy("evolutionary", num_islands=1, init_per_island=3, island_cap=3,
                      lower_is_better=lower_is_better)
    drafts = [_n(f"d{i}", metric=s * m) for i, m in enumerate([0.2, 0.4, 0.6])]
    for d in drafts:
        pol.observe(d)
    assert pol.islands == [["d0", "d1", "d2"]]          # mean 0.4
    pol.observe(_n("c1", "improve", ["d2"], metric=s * 0.3))
    assert "c1" not in pol.islands[0]
    pol.observe(_n("c2", "improve", ["d2"], metric=s * 0.4))   # == mean: admitted; cap drops d0
    assert sorted(pol.islands[0]) == ["c2", "d1", "d2"]
    pol.observe(_n("c3", "improve", ["d2"], status=Status.CRASHED))
    assert sorted(pol.islands[0]) == ["c2", "d1", "d2"]
    step = pol.next_step(drafts, random.Random(0))
    assert step.operator == "improve" and step.parents[0] in pol.islands[0]


def test_evolutionary_islands_and_crossover_timing():
    pol = make_policy("evolutionary")
    nodes = drive(pol, SyntheticPatternTask(target_seed=4), 90, seed=0)
    ops = [n.operator for n in nodes]
    assert ops[:15] == ["draft"] * 15 and ops.count("draft") == 15
    # 3 islands served in turn need 2 generations of 5 offspring each before any crossover.
    first = ops.index("crossover")
    assert first >= 15 + 3 * 2 * 5
    assert all(0 < len(i) <= 20 for i in pol.islands)
    members = [m for i in pol.islands for m in i]
    assert len(members) == len(set(members))   # no migration by default: islands are disjoint


def test_evolutionary_softmax_prefers_the_fitter_parent():
    pol = make_policy("evolutionary", num_islands=1, init_per_island=2, temperature=0.25)
    nodes = [_n("lo", metric=0.1), _n("hi", metric=0.9)]
    picks = Counter(pol.next_step(nodes, random.Random(i)).parents[0] for i in range(400))
    # p(hi) = e^(1/0.25) / (e^(1/0.25) + 1) = 0.982
    assert picks["hi"] / 400 == pytest.approx(math.exp(4) / (math.exp(4) + 1), abs=0.03)


def test_evolutionary_migration_copies_the_best_to_the_next_island():
    pol = make_policy("evolutionary", num_islands=2, init_per_island=1, migration_every=1)
    nodes = drive(pol, SyntheticPatternTask(), 12, seed=0)
    assert len(nodes) == 12
    shared = set(pol.islands[0]) & set(pol.islands[1])
    assert shared


# -- steady state -------------------------------------------------------------------------------

def test_steady_state_rank_probabilities_match_the_formula():
    assert rank_probabilities(4, 0.5) == pytest.approx([16 / 30, 9 / 30, 4 / 30, 1 / 30])
    assert rank_probabilities(3, 1.0) == pytest.approx([3 / 6, 2 / 6, 1 / 6])
    assert rank_probabilities(5, 1e6) == pytest.approx([0.2] * 5, abs=1e-4)


def test_steady_state_samples_parents_by_rank():
    metrics = {"a": 0.3, "b": 0.9, "c": 0.5, "d": 0.1}        # ranks: b, c, a, d
    nodes = [_n(k, metric=v) for k, v in metrics.items()] + [_n("e", status=Status.RUNNING),
                                                             _n("f", status=Status.CRASHED)]
    pol = make_policy("steady_state", num_drafts=2, crossover_prob=0.0, temperature=0.5)
    n = 3000
    picks = Counter(pol.next_step(nodes, random.Random(i)).parents[0] for i in range(n))
    expected = dict(zip("bcad", rank_probabilities(4, 0.5)))
    assert set(picks) <= set(expected)
    for k, p in expected.items():
        assert picks[k] / n == pytest.approx(p, abs=0.03), (k, picks)


def test_steady_state_crossover_takes_two_distinct_parents():
    nodes = [_n(k, metric=v) for k, v in {"a": 0.3, "b": 0.9}.items()]
    pol = make_policy("steady_state", num_drafts=2, crossover_prob=1.0)
    for i in range(50):
        step = pol.next_step(nodes, random.Random(i))
        assert step.operator == "crossover" and sorted(step.parents) == ["a", "b"]
    assert make_policy("steady_state").next_step(nodes, random.Random(0)).operator == "draft"


def test_the_harness_doc_lists_every_policy():
    from pathlib import Path

    from aira.agents.policies import POLICIES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "harness.md").read_text()
    listed = doc.split("Policies:", 1)[1].split("An agent is named", 1)[0]
    assert all(name in listed for name in POLICIES), (list(POLICIES), listed)
