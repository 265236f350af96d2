"""Operators: offline search moves, prompts rendered from the templates, replies parsed via ReplayLLM."""

from __future__ import annotations

import json
import random

import pytest

from aira.agents.base import OperatorContext, Task
from aira.agents.memory import debug_chain, render_memory, sibling_ideas
from aira.agents.operators import OPERATORS, SECTIONS, render_prompt
from aira.agents.stats import NoiseFloor
from aira.agents.types import Node, Status
from aira.errors import UsageError
from aira.tasks.synthetic import SyntheticPatternTask

replay = pytest.importorskip("aira.agents.llm.replay")

GOOD = "AMAMSSAMAMAMSSAM"


def node(id, op="draft", parents=(), proposal=GOOD, metric=None, status=Status.OK, **kw) -> Node:
    return Node(id=id, agent="t", operator=op, parents=list(parents), proposal=proposal, metric=metric,
                status=status, **kw)


def ctx(task, parents=(), memory=(), llm=None, seed=0, **kw) -> OperatorContext:
    return OperatorContext(task=task, llm=llm, parents=list(parents), memory=list(memory),
                           rng=random.Random(seed), **kw)


def replay_llm(tmp_path, replies: list[str], match: str | None = None):
    path = tmp_path / "replies.jsonl"
    with path.open("w") as f:
        for r in replies:
            rec = {"text": r, "model": "m", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.01}
            if match:
                rec["match"] = match
            f.write(json.dumps(rec) + "\n")
    return replay.ReplayLLM(path)


# -- offline ------------------------------------------------------------------------------------

def test_offline_draft_avoids_proposals_in_memory():
    task = SyntheticPatternTask(length=2, alphabet="AM")   # only 4 patterns exist
    memory = [node(f"n{i}", proposal=p, metric=0.1) for i, p in enumerate(["AA", "AM", "MA"])]
    for seed in range(5):
        d = OPERATORS["draft"](ctx(task, memory=memory, seed=seed))
        assert d.proposal == "MM"
        assert d.idea.startswith("[offline] ") and d.transcript == [] and not d.error


def test_offline_improve_crossover_debug_moves():
    task = SyntheticPatternTask()
    a, b = node("a", proposal="A" * 16, metric=0.3), node("b", proposal="M" * 16, metric=0.4)
    for seed in range(10):
        imp = OPERATORS["improve"](ctx(task, [a], memory=[a, b], seed=seed))
        assert task.validate(imp.proposal) is None and imp.proposal != a.proposal
        x = OPERATORS["crossover"](ctx(task, [a, b], memory=[a, b], seed=seed))
        assert set(x.proposal) == {"A", "M"} and x.idea.startswith("[offline] ")
        # Each position comes from one parent: a one- or two-point crossover has 1 or 2 switches.
        assert 1 <= sum(p != q for p, q in zip(x.proposal, x.proposal[1:])) <= 2
    broken = node("x", proposal="AMXAM", status=Status.INVALID, error="the pattern must have 16 letters")
    fixed = OPERATORS["debug"](ctx(task, [broken], memory=[broken]))
    assert task.validate(fixed.proposal) is None and fixed.proposal.startswith("AMAM")


def test_offline_without_search_space_and_wrong_parent_count():
    class NoSpace(Task):
        name = "nospace"

        def describe(self): return "x"
        def validate(self, p): return None
        def make_job(self, p, *, seed, job_id): raise NotImplementedError

    with pytest.raises(UsageError, match="no offline search moves"):
        OPERATORS["draft"](ctx(NoSpace()))
    with pytest.raises(ValueError, match="crossover takes 2 parent"):
        OPERATORS["crossover"](ctx(SyntheticPatternTask(), [node("a")]))


# -- prompts ------------------------------------------------------------------------------------

def _contexts(task):
    a = node("a", metric=0.5, selection_metric=0.987654321, idea="alternate A and M")
    b = node("b", proposal="S" * 16, metric=0.25, selection_metric=0.876543219)
    bad = node("c", op="improve", parents=["a"], status=Status.INVALID, error="bad letters",
               selection_metric=0.765432198)
    memory = [a, b, bad]
    return {"draft": ctx(task, [], memory), "improve": ctx(task, [a], memory),
            "crossover": ctx(task, [a, b], memory), "debug": ctx(task, [bad], memory)}


@pytest.mark.parametrize("kind", ["pattern", "json", "file"])
def test_prompts_have_the_sections_and_never_the_selection_metric(kind):
    task = SyntheticPatternTask()
    task.proposal_kind = kind
    for name, c in _contexts(task).items():
        prompt = render_prompt(name, c)
        positions = [prompt.find(s) for s in SECTIONS]
        assert -1 not in positions and positions == sorted(positions), (name, positions)
        assert task.describe() in prompt
        for hidden in ("0.987654", "0.876543", "0.765432", "selection"):
            assert hidden not in prompt.lower(), (name, hidden)
        assert ("```" in prompt) == (kind == "file")
        assert ('"proposal"' in prompt) == (kind != "file")
    improve = render_prompt("improve", _contexts(task)["improve"])
    assert GOOD in improve and "metric 0.5" in improve


def test_constraints_state_the_noise_floor():
    task = SyntheticPatternTask()
    floor = NoiseFloor(n=3, mean=0.61, std=0.012, spread=0.03)
    prompt = render_prompt("draft", ctx(task, noise_floor=floor, constraints="- no S at layer 0"))
    section = prompt[prompt.index("## Constraints"):prompt.index("## Response format")]
    assert "0.61 +- 0.012 (std over 3 seeds)" in section and "- no S at layer 0" in section
    assert "noise" not in render_prompt("draft", ctx(task, noise_floor=None))
    one_seed = NoiseFloor(n=1, mean=0.61, std=0.0, spread=0.0)  # a single seed says nothing about noise
    assert "noise" not in render_prompt("draft", ctx(task, noise_floor=one_seed))


def test_render_memory_orders_by_direction_and_summarises_failures():
    nodes = [node("lo", metric=0.1, idea="low"), node("hi", metric=0.9, idea="high"),
             node("mid", metric=0.5),
             node("f", status=Status.CRASHED, error="Traceback\n  x\nValueError: boom"),
             node("p", status=Status.PENDING, idea="still running")]
    up = render_memory(nodes, SyntheticPatternTask())
    assert up.index("| hi |") < up.index("| mid |") < up.index("| lo |")
    assert "ValueError: boom" in up and "Traceback" not in up
    assert "1 failed, 1 in progress" in up and "still running" in up
    down = render_memory(nodes, SyntheticPatternTask(lower_is_better=True), limit=2)
    assert down.index("| lo |") < down.index("| mid |") and "| hi |" not in down
    assert "1 lower-ranked results not shown" in down
    assert render_memory([], SyntheticPatternTask()) == "No earlier attempts yet."


def test_sibling_ideas():
    nodes = [node("a", idea="d1"), node("b", idea="d2"), node("c", "improve", ["a"], idea="x"),
             node("d", "improve", ["a"], idea="y"), node("e", "improve", ["b"], idea="z")]
    assert sibling_ideas(nodes, "a") == ["x", "y"]
    assert sibling_ideas(nodes, None) == ["d1", "d2"]


def _chain():
    x = node("x", status=Status.CRASHED, proposal="AAAA", error="E1 first failure", idea="deep attention")
    d1 = node("d1", "debug", ["x"], status=Status.CRASHED, error="E2 second failure", idea="fix one")
    d2 = node("d2", "debug", ["d1"], status=Status.INVALID, error="E3 third failure", idea="fix two")
    other = node("o", metric=0.3)
    return [x, other, d1, d2]


def test_debug_sees_the_chain_oldest_first():
    nodes = _chain()
    assert [n.id for n in debug_chain(nodes[3], nodes)] == ["x", "d1"]
    assert debug_chain(nodes[0], nodes) == []
    prompt = render_prompt("debug", ctx(SyntheticPatternTask(), [nodes[3]], nodes))
    assert prompt.index("E1 first failure") < prompt.index("E2 second failure")
    assert "E3 third failure" in prompt and "fix two" in prompt


# -- with an LLM (ReplayLLM fixtures) -------------------------------------------------------------

def test_llm_draft_parses_the_json_reply(tmp_path):
    reply = 'Here it is:\n```json\n{"idea": "interleave Mamba", "proposal": "SMSMSMSMSMSMSMSM"}\n```'
    llm = replay_llm(tmp_path, [reply], match="## Response format")
    d = OPERATORS["draft"](ctx(SyntheticPatternTask(), [], [node("a", metric=0.2)], llm=llm))
    assert d.proposal == "SMSMSMSMSMSMSMSM" and d.idea == "interleave Mamba" and not d.error
    assert (d.input_tokens, d.output_tokens) == (100, 10) and d.cost_usd == pytest.approx(0.01)
    assert [m["role"] for m in d.transcript] == ["user", "assistant"]
    assert "## Memory" in d.transcript[0]["content"]


def test_malformed_reply_is_retried_then_parsed(tmp_path):
    llm = replay_llm(tmp_path, ["no json here", '{"idea": "i", "proposal": "' + GOOD + '"}'])
    d = OPERATORS["improve"](ctx(SyntheticPatternTask(), [node("a", metric=0.2)], llm=llm))
    assert d.proposal == GOOD and not d.error
    assert [m["role"] for m in d.transcript] == ["user", "assistant", "user", "assistant"]
    assert "could not be parsed" in d.transcript[2]["content"]
    assert d.input_tokens == 200


def test_malformed_replies_give_an_error_draft_with_the_full_transcript(tmp_path):
    llm = replay_llm(tmp_path, ["nope", '{"idea": "missing the proposal"}', "still nothing", "unused"])
    d = OPERATORS["draft"](ctx(SyntheticPatternTask(), llm=llm))
    assert d.proposal is None and "3 attempts" in d.error
    roles = [m["role"] for m in d.transcript]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert 'keys "idea" and "proposal"' in d.transcript[4]["content"]
    assert (d.input_tokens, d.output_tokens) == (300, 30) and llm.remaining == 1


def test_llm_debug_prompt_carries_the_chain(tmp_path):
    nodes = _chain()
    reply = '{"idea": "fix three", "proposal": "AAAAAAAAAAAAAAAA"}'
    llm = replay_llm(tmp_path, [reply], match="E1 first failure")
    d = OPERATORS["debug"](ctx(SyntheticPatternTask(), [nodes[3]], nodes, llm=llm))
    assert d.proposal == "A" * 16 and d.idea == "fix three"


def test_file_task_reply_becomes_the_edited_file(tmp_path):
    task = SyntheticPatternTask()
    task.proposal_kind, task.editable_file = "file", "train.py"
    reply = "IDEA: raise the learning rate\n```python\nLR = 3e-3\nprint(LR)\n```\n"
    llm = replay_llm(tmp_path, [reply], match="COMPLETE new contents of `train.py`")
    parent = node("a", proposal={"files": {"train.py": "LR = 1e-3\n"}}, metric=1.1)
    d = OPERATORS["improve"](ctx(task, [parent], [parent], llm=llm))
    assert d.proposal == {"files": {"train.py": "LR = 3e-3\nprint(LR)"}}
    assert d.idea == "raise the learning rate"
    assert "LR = 1e-3" in d.transcript[0]["content"]


def test_a_replayed_agent_runs_end_to_end(tmp_path):
    from aira.agents.policies import make_policy
    from aira.agents.policies.inline import run_inline

    task = SyntheticPatternTask(target_seed=2)
    replies = ['{"idea": "the optimum", "proposal": "' + task.optimum() + '"}',
               "garbage", "more garbage", "still garbage"]
    llm = replay_llm(tmp_path, replies)
    nodes = run_inline(make_policy("greedy", num_drafts=2), task, 2, llm=llm)
    assert nodes[0].status is Status.OK and nodes[0].metric == pytest.approx(1.0)
    assert nodes[0].idea == "the optimum" and nodes[0].llm.startswith("replay:")
    assert nodes[1].status is Status.INVALID and "3 attempts" in nodes[1].error
    assert len(nodes[1].transcript) == 6 and llm.remaining == 0


# -- what a failed operator paid for --------------------------------------------------------------

def _agent(llm):
    from aira.agents.agent import AgentRuntime, AgentSpec

    return AgentRuntime(spec=AgentSpec(policy="greedy", llm=llm.spec), policy=None, llm=llm,
                        rng=random.Random(0))


def test_an_llm_error_after_a_paid_reply_keeps_its_tokens_and_transcript(tmp_path):
    from aira.agents.base import Step

    # The first reply is paid and unparsable; the retry fails (the replay runs dry, an LLMError).
    llm = replay_llm(tmp_path, ["no json here"])
    n = _agent(llm).draft_node(Step("draft"), ctx(SyntheticPatternTask(), llm=llm), OPERATORS,
                               node_id="n0001", seed=0)
    assert n.proposal is None and n.error.startswith("operator draft failed: ReplayExhausted: ")
    assert (n.input_tokens, n.output_tokens) == (100, 10) and n.cost_usd == pytest.approx(0.01)
    assert [m["role"] for m in n.transcript] == ["user", "assistant", "user"]
    assert n.transcript[1]["content"] == "no json here" and n.transcript[1]["cost_usd"] == 0.01
    assert "could not be parsed" in n.transcript[2]["content"]


def test_an_operator_raising_after_its_calls_is_charged_for_them(tmp_path):
    from aira.agents.base import Step

    def greedy_op(ctx):
        ctx.llm.complete([{"role": "user", "content": "one"}])
        ctx.llm.complete([{"role": "user", "content": "two"}])
        raise KeyError("lost the reply")

    llm = replay_llm(tmp_path, ["a", "b"])
    n = _agent(llm).draft_node(Step("draft"), ctx(SyntheticPatternTask(), llm=llm), {"draft": greedy_op},
                               node_id="n0001", seed=0)
    assert n.error == "operator draft failed: KeyError: 'lost the reply'"
    assert (n.input_tokens, n.output_tokens) == (200, 20) and n.cost_usd == pytest.approx(0.02)
    assert [(m["role"], m["content"]) for m in n.transcript] == [
        ("user", "one"), ("assistant", "a"), ("user", "two"), ("assistant", "b")]
