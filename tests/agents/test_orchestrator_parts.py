"""The orchestrator's parts: budget strings, agent specs, the stats formulas, the progress line."""

import io
import math

import pytest

from aira.agents.agent import AgentSpec, parse_agents
from aira.agents.budget import Budget, BudgetTracker, parse_dollars, parse_duration
from aira.agents.progress import Progress, Snapshot
from aira.agents.stats import (
    LOST,
    REFERENCE,
    TaskInfo,
    agent_stats,
    format_report,
    leaderboard,
    noise_floor,
    normalised_score,
)
from aira.agents.types import Node, Status
from aira.errors import UsageError


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("45", 45),
        (12, 12),
        ("1d", 86400),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "-5m", "0s", "h"])
def test_parse_duration_errors(text):
    with pytest.raises(UsageError, match="duration"):
        parse_duration(text)


def test_parse_budget():
    b = Budget.parse("2h, 50evals, $5, timeout=10m, stop=kill")
    assert (b.wall_s, b.evals, b.usd, b.eval_timeout_s, b.on_stop) == (7200, 50, 5.0, 600, "kill")
    b = Budget.parse("time=90s,evals=3,usd=0.5")
    assert (b.wall_s, b.evals, b.usd, b.on_stop) == (90, 3, 0.5, "wait")
    assert Budget.parse("").describe() == "unlimited" and Budget.parse(None).evals is None
    assert parse_dollars("$2.50") == 2.5 and parse_dollars("3usd") == 3.0
    assert Budget.coerce({"evals": 4}).evals == 4


@pytest.mark.parametrize(
    "spec, message",
    [
        ("100", "ambiguous"),
        ("5 parsecs", "bad budget item"),
        ("evals=many", "evaluations"),
        ("$-1", "dollar"),
        ("stop=maybe", "stop=wait"),
        ("gpus=3", "unknown budget key"),
        ("evals=0", "positive"),
    ],
)
def test_parse_budget_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        Budget.parse(spec)


def test_budget_tracker_counts_in_flight_and_carries_over():
    t = BudgetTracker(
        Budget.parse("5evals,$1,timeout=30s"), evals_before=3, usd_before=0.4, elapsed_before=10
    )
    assert t.may_submit(1) and not t.may_submit(2)  # 3 done + 2 running would reach 5
    assert not t.evals_spent() and t.hard_stop_reason() is None and t.elapsed() >= 10
    assert t.job_timeout(600) == 30 and t.job_timeout(5) == 5
    t.usd += 0.6
    assert "LLM budget" in t.hard_stop_reason()
    assert "wall-clock" in BudgetTracker(Budget.parse("1s"), elapsed_before=2).hard_stop_reason()


def test_agent_specs():
    a = AgentSpec.parse("greedy:offline?debug_prob=0.5&num_drafts=3", index=2)
    assert (a.policy, a.llm, a.params, a.name) == (
        "greedy",
        "offline",
        {"debug_prob": 0.5, "num_drafts": 3},
        "greedy:offline#2",
    )
    u = AgentSpec.parse("evolutionary:openai-compatible/qwen3@http://localhost:8000/v1")
    assert u.llm == "openai-compatible/qwen3@http://localhost:8000/v1" and u.params == {}
    assert AgentSpec.parse("mcts").llm == "offline"
    assert AgentSpec.parse("steady-state:anthropic/claude-opus-4-5").policy == "steady_state"
    assert AgentSpec.parse("greedy:offline?name=abc&x=true").params == {"name": "abc", "x": True}
    assert AgentSpec.parse(a.spec).params == a.params
    assert [s.name for s in parse_agents("greedy:offline mcts:offline")] == [
        "greedy:offline#0",
        "mcts:offline#1",
    ]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ("gready:offline", "greedy, mcts|unknown policy"),
        ("greedy:", "no LLM"),
        ("greedy:offline?=3", "bad parameter"),
        ("greedy:offline?debug_prob", "key=value"),
    ],
)
def test_agent_spec_errors_list_the_policies(spec, message):
    with pytest.raises(UsageError, match=message) as e:
        AgentSpec.parse(spec)
    assert "oneshot" in str(e.value) and "evolutionary" in str(e.value)


def test_normalised_score_by_hand():
    # accuracy: s_opt 1; f(0.9) = 1, f(0.99) = 2, f(0.97) = -log10(0.03) = 1.5228787
    assert normalised_score(0.97, s_min=0.9, s_sota=0.99, s_opt=1.0) == pytest.approx(0.5228787453)
    # loss: s_opt 0; f(1) = 0, f(0.01) = 2, f(0.1) = 1
    assert normalised_score(0.1, s_min=1.0, s_sota=0.01, s_opt=0.0) == pytest.approx(0.5)
    assert normalised_score(0.9, s_min=0.9, s_sota=0.99, s_opt=1.0) == 0.0
    assert normalised_score(0.99, s_min=0.9, s_sota=0.99, s_opt=1.0) == pytest.approx(1.0)
    assert math.isfinite(normalised_score(1.0, s_min=0.9, s_sota=0.99, s_opt=1.0))  # perfect score clamps
    assert normalised_score(0.5, s_min=0.9, s_sota=0.9, s_opt=1.0) is None
    assert TaskInfo(name="t", reference_score=86.8).optimum == 100.0
    assert TaskInfo(name="t", lower_is_better=True).optimum == 0.0
    assert TaskInfo(name="t", metric_optimum=5.0).optimum == 5.0


def _n(i, agent, status=Status.OK, metric=None, sel=None, operator="draft", cost=0.0, seconds=0.0, error=""):
    return Node(
        id=f"n{i}",
        agent=agent,
        operator=operator,
        status=status,
        metric=metric,
        selection_metric=sel,
        cost_usd=cost,
        seconds=seconds,
        error=error,
    )


def test_agent_stats_and_leaderboard_by_hand():
    info = TaskInfo(name="t", reference_score=0.99)
    nodes = [
        _n(0, REFERENCE, metric=0.89, operator=REFERENCE),
        _n(1, REFERENCE, metric=0.91, operator=REFERENCE),
        _n(2, "a", metric=0.95, sel=0.93, cost=0.5, seconds=10),
        _n(3, "a", metric=0.97, sel=0.90, cost=0.25, seconds=20),
        _n(4, "a", Status.INVALID, cost=0.25),
        _n(5, "a", Status.CRASHED, seconds=5),
        _n(6, "a", Status.CRASHED, error=LOST),
        _n(7, "b", metric=0.96, sel=0.96),
        # stopped when the run's budget ran out (stop=kill): not a failure of the agent's proposal
        _n(8, "b", Status.KILLED, error="killed: wall-clock budget spent (600s)"),
    ]
    floor = noise_floor(nodes)
    assert (floor.n, floor.mean, floor.spread) == (2, pytest.approx(0.90), pytest.approx(0.02))
    assert floor.std == pytest.approx(0.0141421356)
    a, b = agent_stats(nodes, info, floor)
    assert (a.agent, a.nodes, a.valid_rate, a.success_rate) == ("a", 5, 0.8, pytest.approx(2 / 3))
    assert (a.best_node, a.best_metric, a.best_selection) == ("n3", 0.97, 0.90)
    assert (b.nodes, b.success_rate) == (2, 1.0)
    # a job killed for its memory is a failure, though
    (_, b2) = agent_stats(nodes + [_n(9, "b", Status.KILLED, error="memory limit (RSS 2048 MB)")], info, floor)
    assert b2.success_rate == pytest.approx(0.5)
    assert (a.cost_usd, a.compute_s) == (1.0, 35)
    # NS of agent a's pick, on its selection score 0.90 = the floor mean: exactly the baseline
    assert a.normalised == pytest.approx(0.0)
    # agent b: f(0.96) = -log10(0.04) = 1.39794; f(0.90) = 1; f(0.99) = 2
    assert b.normalised == pytest.approx(0.39794, abs=1e-5)
    # the final pick ranks by the hidden split: b's 0.96 beats a's n2 (0.93); the baseline (n1, 0.91)
    # is listed too, so a reader sees which candidates beat it
    assert [n.id for n in leaderboard(nodes, info, top=4)] == ["n7", "n2", "n1", "n3"]
    text = format_report(nodes, info)
    assert "noise floor: reference mean 0.9, std 0.0141, max-min 0.02 over 2 seeds" in text
    board = text[text.index("leaderboard") :].splitlines()
    assert board[2].split()[:2] == ["1", "n7"] and board[4].split()[:3] == ["3", "n1", "reference"]


def test_leaderboard_lower_is_better():
    info = TaskInfo(name="loss", lower_is_better=True)
    nodes = [
        _n(1, "a", metric=2.0, sel=2.1),
        _n(2, "a", metric=1.5, sel=None),
        _n(3, "a", metric=1.0, sel=3.0),
    ]
    assert [n.id for n in leaderboard(nodes, info)] == ["n2", "n1", "n3"]


def test_progress_line_tty_and_periodic():
    snap = Snapshot(
        agents=2, done=41, running=4, failed=7, best=0.81234, best_node="n0037", cost_usd=1.4, elapsed_s=723
    )
    assert snap.line() == "[12m03s] 2 agents | 41 done, 4 running, 7 failed | best 0.8123 (n0037) | $1.40"
    end = Snapshot(agents=2, done=41, running=0, failed=7, stopped=4, best=0.81234, best_node="n0037", elapsed_s=723)
    assert "41 done, 0 running, 7 failed, 4 stopped by the budget | best" in end.line()

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    p = Progress(stream=tty)
    p.update(snap)
    p.update(Snapshot(agents=1, done=0, running=0, failed=0))
    p.close()
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")
    log = io.StringIO()
    p = Progress(stream=log, interval=3600)
    p.update(snap)
    p.update(snap)  # within the interval: not printed again
    p.close(snap)  # the final state always is
    assert log.getvalue().count("\n") == 2
    quiet = io.StringIO()
    Progress(stream=quiet, quiet=True).update(snap)
    assert quiet.getvalue() == ""
