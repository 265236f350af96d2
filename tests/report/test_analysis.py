"""The numbers behind the report on hand-made nodes: tie groups, best-so-far curves, frequencies."""

from __future__ import annotations

import pytest

from aira.agents.stats import NoiseFloor, TaskInfo
from aira.agents.types import Node, Status
from aira.report.analysis import best_so_far, frequencies, leader_rows, ratio_text, top_patterns

HIGH = TaskInfo(name="t", lower_is_better=False)
LOW = TaskInfo(name="t", lower_is_better=True)


def node(i, metric, *, sel=None, agent="a", status=Status.OK, finished=None, proposal=None, **metrics):
    return Node(
        id=f"n{i:04d}",
        agent=agent,
        operator="draft",
        status=status,
        metric=metric,
        selection_metric=sel,
        metrics=metrics,
        proposal=proposal,
        created_at=float(i),
        finished_at=float(i) if finished is None else finished,
    )


def floor(std):
    return NoiseFloor(n=3, mean=0.0, std=std, spread=2 * std)


def test_ties_are_measured_from_the_group_leader_not_the_row_above():
    # Steps of 0.04 under a noise of 0.05: chaining row to row would tie all five.
    nodes = [node(i, s) for i, s in enumerate([0.90, 0.86, 0.82, 0.78, 0.74])]
    rows = leader_rows(nodes, HIGH, floor(0.05))
    assert [r.group for r in rows] == [1, 1, 3, 3, 5]
    assert [r.tied for r in rows] == [True, True, True, True, False]


def test_no_floor_or_zero_noise_means_no_ties():
    nodes = [node(0, 0.5), node(1, 0.5)]
    for fl in (None, floor(0.0)):
        rows = leader_rows(nodes, HIGH, fl)
        assert [r.group for r in rows] == [1, 2] and not any(r.tied for r in rows)


def test_rows_rank_by_selection_and_keep_seed_spread():
    nodes = [
        node(0, 0.30, sel=0.35, seed_metrics=[0.29, 0.31], seed_std=0.014),
        node(1, 0.20, sel=0.40),
        node(2, None, status=Status.CRASHED),
    ]
    rows = leader_rows(nodes, LOW, floor(0.01))
    assert [r.node.id for r in rows] == ["n0000", "n0001"]  # lower is better; the crash is left out
    assert rows[0].score == 0.35 and rows[0].seeds == 2 and rows[0].seed_std == pytest.approx(0.014)
    assert rows[1].seeds == 1 and rows[1].seed_std is None


def test_best_so_far_counts_evaluations_in_finish_order():
    nodes = [
        node(0, 0.5, finished=10.0),
        node(1, None, status=Status.INVALID),  # never evaluated: not a point on the curve
        node(2, None, status=Status.CRASHED, finished=5.0),  # spent an evaluation
        node(3, 0.7, finished=1.0),
        node(4, 0.6, finished=20.0),
        node(5, 0.9, agent="b"),
    ]
    assert best_so_far(nodes, HIGH, "a") == [0.7, 0.7, 0.7, 0.7]
    assert best_so_far(nodes, LOW, "a") == [0.7, 0.7, 0.5, 0.5]
    first_fails = [node(0, None, status=Status.CRASHED), node(1, 0.2)]
    assert best_so_far(first_fails, HIGH, "a") == [None, 0.2]


def test_frequencies_and_ratios():
    codes, freq = frequencies(["AMS", "AMM", "SMM", "AAM"])
    assert codes == ["A", "M", "S"]
    assert freq == [[0.75, 0.25, 0.0], [0.0, 0.75, 0.75], [0.25, 0.0, 0.25]]
    assert ratio_text("AAMMMMSSA") == "A:M:S = 3:4:2"
    assert ratio_text("MMM") == "M = 3"


def test_top_patterns_are_distinct_best_first_and_one_length():
    nodes = [
        node(0, 0.5, proposal="AMAM"),
        node(1, 0.9, proposal="AAAA"),
        node(2, 0.8, proposal="AAAA"),
        node(3, 0.7, proposal="MMMM"),
        node(4, 0.99, proposal="AM"),
        node(5, 0.95, proposal={"files": {}}),
    ]
    assert top_patterns(nodes, HIGH, k=10) == ["AAAA", "MMMM", "AMAM"]
    assert top_patterns(nodes, HIGH, k=2) == ["AAAA", "MMMM"]
