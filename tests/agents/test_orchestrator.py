"""The orchestrator on the synthetic task: ensembles, determinism, the noise floor, hidden metrics."""

import json
import statistics

import pytest

from aira.agents import orchestrator as orch
from aira.agents.agent import make_policy_for
from aira.agents.base import Executor
from aira.agents.executors import make_executor
from aira.agents.journal import Journal
from aira.agents.runfolder import RunConfig
from aira.tasks.runs import resume, run
from aira.agents.stats import REFERENCE
from aira.agents.types import Status
from aira.errors import UsageError
from aira.tasks.synthetic import SyntheticPatternTask


def inline_executor() -> Executor:
    return make_executor("inline")


class RefTask(SyntheticPatternTask):
    """The synthetic task with a baseline and evaluation noise, to measure a noise floor."""

    def reference(self):
        return "AM" * 8


def _config(tmp_path, name="run", **kw) -> RunConfig:
    kw.setdefault("budget", "12evals")
    return RunConfig(
        task="synthetic",
        agents=kw.pop("agents", ["greedy:offline"]),
        out=str(tmp_path / name),
        quiet=True,
        **kw,
    )


def test_ensemble_of_two_agents_shares_the_budget(tmp_path):
    cfg = _config(tmp_path, agents=["greedy:offline", "evolutionary:offline?num_islands=2"], noise_seeds=0)
    s = run(cfg, executor=inline_executor())
    assert s.evaluations == 12 and s.stop_reason.startswith("evaluation budget")
    with Journal(cfg.out, readonly=True) as j:
        nodes = j.nodes()
    agents = {n.agent for n in nodes}
    assert agents == {"greedy:offline#0", "evolutionary:offline#1"}
    # round robin with one slot: the agents alternate while both can step
    assert [n.agent for n in nodes[:4]] == ["greedy:offline#0", "evolutionary:offline#1"] * 2
    evaluated = [n for n in nodes if n.status not in (Status.INVALID,)]
    assert len(evaluated) == 12 and all(n.status == Status.OK for n in evaluated)
    assert all(n.metric is not None and n.seconds >= 0 and n.finished_at for n in evaluated)
    for n in nodes:
        assert n.llm == "offline" and n.idea.startswith("[offline]")
        assert all(p in {m.id for m in nodes} for p in n.parents)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["budget"]["evals"] == 12 and saved["resolved"]["task"]["name"] == "synthetic-0"
    assert saved["resolved"]["agents"] == ["greedy:offline#0", "evolutionary:offline#1"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best"]["id"] in {n.id for n in nodes} and len(summary["agents"]) == 2


def test_one_slot_runs_are_deterministic_for_a_seed(tmp_path):
    def trace(name, seed):
        run(_config(tmp_path, name, seed=seed, noise_seeds=0), executor=inline_executor())
        with Journal(tmp_path / name, readonly=True) as j:
            return [(n.id, n.agent, n.operator, n.parents, n.proposal, n.metric) for n in j.nodes()]

    a, b, c = trace("a", 3), trace("b", 3), trace("c", 4)
    assert a == b
    assert a != c


def test_noise_floor_margin_and_hidden_metrics(tmp_path):
    seen_by_policy, seen_by_ops, margins = [], [], []

    def spy_policy(spec, task):
        policy = make_policy_for(spec, task)
        next_step, observe = policy.next_step, policy.observe

        def spy_next(nodes, rng):
            seen_by_policy.extend(nodes)
            margins.append(policy.improve_margin)
            return next_step(nodes, rng)

        def spy_observe(node):
            seen_by_policy.append(node)
            observe(node)

        policy.next_step, policy.observe = spy_next, spy_observe
        return policy

    from aira.agents.operators import OPERATORS

    def spy(op):
        def call(ctx):
            seen_by_ops.append(ctx)
            return op(ctx)

        return call

    task = RefTask(noise=0.05)
    cfg = _config(tmp_path, budget="6evals", noise_seeds=3, seed=10)
    s = run(
        cfg,
        task=task,
        executor=inline_executor(),
        policy_factory=spy_policy,
        operators={k: spy(v) for k, v in OPERATORS.items()},
    )

    with Journal(cfg.out, readonly=True) as j:
        nodes = j.nodes()
    refs = [n for n in nodes if n.operator == REFERENCE]
    assert [n.seed for n in refs] == [10, 11, 12] and all(n.agent == REFERENCE for n in refs)
    assert [n.id for n in nodes[:3]] == [n.id for n in refs]  # measured before any agent steps
    scores = [n.metric for n in refs]
    assert len(set(scores)) == 3  # the noise really differs by seed
    assert s.noise_floor["mean"] == pytest.approx(statistics.fmean(scores))
    assert s.noise_floor["std"] == pytest.approx(statistics.stdev(scores))
    assert s.noise_floor["spread"] == pytest.approx(max(scores) - min(scores))
    assert s.evaluations == 6  # reference runs are not charged to the search budget
    assert margins and all(m == pytest.approx(statistics.stdev(scores)) for m in margins)
    assert seen_by_ops[0].noise_floor.n == 3 and seen_by_ops[0].noise_floor.to_dict() == s.noise_floor
    # the journal keeps the hidden split; no policy or operator ever saw it
    assert all(
        n.selection_metric is not None and "true_score" in n.metrics for n in nodes if n.status == Status.OK
    )
    shown = seen_by_policy + [m for ctx in seen_by_ops for m in ctx.memory + ctx.parents]
    assert shown and all(n.selection_metric is None and "true_score" not in n.metrics for n in shown)
    assert any(m.operator == REFERENCE for m in seen_by_ops[-1].memory)  # the baseline is in memory


def test_invalid_proposals_are_recorded_and_observed(tmp_path):
    from aira.agents.base import Draft

    observed = []

    def factory(spec, task):
        p = make_policy_for(spec, task)
        inner = p.observe
        p.observe = lambda n: (observed.append(n.status), inner(n))
        return p

    bad = {"draft": lambda ctx: Draft(proposal="XYZ", idea="nonsense")}
    cfg = _config(tmp_path, budget="5evals", noise_seeds=0)
    s = run(cfg, executor=inline_executor(), policy_factory=factory, operators=bad)
    with Journal(cfg.out, readonly=True) as j:
        nodes = j.nodes()
    assert s.evaluations == 0 and s.stop_reason == "every agent is done"
    assert len(nodes) == orch.MAX_INVALID_STREAK
    assert all(n.status == Status.INVALID and "XYZ" not in n.error and n.error for n in nodes)
    assert observed == [Status.INVALID] * orch.MAX_INVALID_STREAK


def test_run_refuses_an_existing_run_and_bad_config(tmp_path):
    cfg = _config(tmp_path, budget="2evals", noise_seeds=0)
    run(cfg, executor=inline_executor())
    with pytest.raises(UsageError, match="resume"):
        run(cfg, executor=inline_executor())
    with pytest.raises(UsageError, match="greedy"):
        _config(tmp_path, agents=["gready:offline"])
    with pytest.raises(UsageError, match="workers"):
        _config(tmp_path, slots=0)
    with pytest.raises(UsageError, match="improve_margin"):
        _config(tmp_path, improve_margin="lots")
    with pytest.raises(UsageError, match="no run"):
        resume(tmp_path / "missing")


def test_resume_after_clean_stop_continues_with_a_bigger_budget(tmp_path):
    cfg = _config(tmp_path, budget="4evals", noise_seeds=0)
    run(cfg, executor=inline_executor())
    s = resume(cfg.out, executor=inline_executor(), budget="9evals", quiet=True)
    assert s.evaluations == 9 and s.lost == 0
    with Journal(cfg.out, readonly=True) as j:
        ids = [n.id for n in j.nodes()]
    assert len(ids) == len(set(ids)) and sum(1 for _ in ids) >= 9


def _spy_operators(log):
    from aira.agents.operators import OPERATORS

    def spy(op):
        def call(ctx):
            log.append(ctx)
            return op(ctx)

        return call

    return {k: spy(v) for k, v in OPERATORS.items()}


@pytest.mark.parametrize("shared", [False, True])
def test_shared_memory_shows_every_agents_nodes(tmp_path, shared):
    log = []
    cfg = _config(
        tmp_path,
        agents=["greedy:offline", "random:offline"],
        budget="8evals",
        noise_seeds=0,
        shared_memory=shared,
    )
    run(cfg, executor=inline_executor(), operators=_spy_operators(log))
    last = log[-1]
    agents_seen = {m.agent for m in last.memory}
    assert agents_seen == ({"greedy:offline#0", "random:offline#1"} if shared else {"random:offline#1"})


def test_llm_dollar_budget_stops_the_run(tmp_path):
    from aira.agents.base import Draft

    def paid_draft(ctx):
        proposal, idea = ctx.task.space().sample(ctx.rng)
        return Draft(proposal=proposal, idea=idea, cost_usd=0.4, input_tokens=100, output_tokens=10)

    cfg = _config(tmp_path, agents=["random:offline"], budget="$1,100evals", noise_seeds=0)
    s = run(cfg, executor=inline_executor(), operators={"draft": paid_draft})
    assert s.stop_reason == "LLM budget spent ($1)"
    assert s.evaluations == 3 and s.cost_usd == pytest.approx(1.2)  # 0.4, 0.8 < 1; 1.2 stops
    with Journal(cfg.out, readonly=True) as j:
        assert [n.input_tokens for n in j.nodes()] == [100] * 3


def _sleepy_task(root, seconds):
    d = root / "sleepy"
    d.mkdir()
    (d / "task.json").write_text(json.dumps({"proposal_kind": "pattern", "alphabet": "AM", "length": 4}))
    (d / "evaluate.py").write_text(
        f"import time\ndef evaluate(p, seed, wd):\n    time.sleep({seconds})\n    return {{'metric': 1.0}}\n"
    )
    return d


def test_wall_clock_kill_and_eval_timeout_with_the_local_executor(tmp_path):
    d = _sleepy_task(tmp_path, 30)
    s = run(
        RunConfig(
            task=str(d),
            agents=["random:offline"],
            executor="local",
            budget="1s,stop=kill",
            out=str(tmp_path / "kill"),
            quiet=True,
        )
    )
    # the 30 s jobs were killed at the budget, not waited for: every node says so
    assert s.stop_reason.startswith("wall-clock budget spent")
    with Journal(tmp_path / "kill", readonly=True) as j:
        nodes = j.nodes()
    assert nodes and all(n.status == Status.KILLED and "wall-clock" in n.error for n in nodes)
    # counted as stopped by the budget, not as failures
    assert s.stopped == len(nodes)
    # resumed with a budget that lets jobs finish: the stopped ones were never evaluated, so they count
    # for nothing and their agent proposes again
    from aira.agents.stats import stopped_with_run

    s2 = resume(tmp_path / "kill", executor=inline_executor(), budget="2evals", quiet=True,
                task=SyntheticPatternTask(alphabet="AM", length=4))
    assert s2.evaluations == 2 and s2.stopped == len(nodes)
    with Journal(tmp_path / "kill", readonly=True) as j:
        after = j.nodes()
    assert sum(n.status == Status.OK for n in after) == 2
    assert sum(stopped_with_run(n) for n in after) == len(nodes)
    assert (tmp_path / "kill" / "jobs").is_dir()  # job logs live in the run folder

    s = run(
        RunConfig(
            task=str(d),
            agents=["random:offline"],
            executor="local",
            budget="1evals,timeout=1s",
            out=str(tmp_path / "timeout"),
            quiet=True,
        )
    )
    with Journal(tmp_path / "timeout", readonly=True) as j:
        (node,) = j.nodes()
    assert node.status == Status.TIMED_OUT and s.evaluations == 1


class FlakyTask(SyntheticPatternTask):
    """Evaluations of patterns starting with S crash (a bad keyword reaches the evaluator)."""

    def make_job(self, proposal, *, seed, job_id):
        job = super().make_job(proposal, seed=seed, job_id=job_id)
        if proposal.startswith("S"):
            job.kwargs["no_such_option"] = 1
        return job


def test_failed_evaluations_get_debugged_with_depth_and_parents(tmp_path):
    cfg = _config(tmp_path, agents=["greedy:offline?debug_prob=1.0"], budget="30evals", noise_seeds=0)
    run(cfg, task=FlakyTask(), executor=inline_executor())
    with Journal(cfg.out, readonly=True) as j:
        nodes = {n.id: n for n in j.nodes()}
    crashed = [n for n in nodes.values() if n.status == Status.CRASHED]
    debugs = [n for n in nodes.values() if n.operator == "debug"]
    assert crashed and debugs
    assert all("no_such_option" in n.error for n in crashed)
    for d in debugs:
        (parent,) = (nodes[p] for p in d.parents)
        assert parent.status.failed and d.debug_depth == parent.debug_depth + 1


class MeasuredNoiseTask(RefTask):
    measured_noise = 0.123  # e.g. a Compose proxy's shipped fidelity figure


@pytest.mark.parametrize("noise_seeds, measured", [(2, True), (3, False)])
def test_too_few_reference_seeds_fall_back_on_the_tasks_measured_noise(tmp_path, noise_seeds, measured):
    from aira.agents.stats import format_report, noise_floor

    margins = []

    def spy_policy(spec, task):
        policy = make_policy_for(spec, task)
        next_step = policy.next_step

        def spy_next(nodes, rng):
            margins.append(policy.improve_margin)
            return next_step(nodes, rng)

        policy.next_step = spy_next
        return policy

    cfg = _config(tmp_path, budget="3evals", noise_seeds=noise_seeds)
    s = run(cfg, task=MeasuredNoiseTask(noise=0.05), executor=inline_executor(), policy_factory=spy_policy)
    with Journal(cfg.out, readonly=True) as j:
        nodes = j.nodes()
    scores = [n.metric for n in nodes if n.operator == REFERENCE]
    own = statistics.stdev(scores)
    expected = 0.123 if measured else own
    assert s.noise_floor["std"] == pytest.approx(expected) and own != pytest.approx(0.123)
    assert s.noise_floor["source"] == ("measured" if measured else "reference seeds")
    assert s.noise_floor["mean"] == pytest.approx(statistics.fmean(scores))  # the mean is always the run's
    assert margins and all(m == pytest.approx(expected) for m in margins)
    # `aira runs show` reads the figure back from the run folder, without the task
    cfg_json = json.loads((tmp_path / "run" / "config.json").read_text())
    from aira.agents.stats import TaskInfo

    info = TaskInfo(**cfg_json["resolved"]["task"])
    assert info.measured_noise == pytest.approx(0.123)
    assert noise_floor(nodes, info).std == pytest.approx(expected)
    assert ("the proxy's measured figure" in format_report(nodes, info)) is measured


def test_wall_clock_budget_holds_while_every_proposal_is_invalid(tmp_path, monkeypatch):
    """An agent whose LLM only fails (each step a slow, invalid proposal) submits nothing: the clock
    must still be checked after each step. Each step here costs 10 s of an injected clock."""
    import types

    from aira.agents import budget
    from aira.agents.base import Draft

    now = [1000.0]
    monkeypatch.setattr(budget, "time", types.SimpleNamespace(monotonic=lambda: now[0]))

    def slow_failure(ctx):
        now[0] += 10.0
        return Draft(proposal=None, error="operator draft failed: LLMError: HTTP 500")

    ops = dict.fromkeys(("draft", "improve", "debug", "crossover"), slow_failure)
    cfg = _config(tmp_path, agents=["greedy:offline", "random:offline"], budget="40s", noise_seeds=0)
    s = run(cfg, executor=inline_executor(), operators=ops)
    assert s.stop_reason == "wall-clock budget spent (40s)" and s.evaluations == 0
    with Journal(cfg.out, readonly=True) as j:
        nodes = j.nodes()
    # 10, 20, 30, 40 s: the fourth step spends the budget, and no fifth one starts
    assert len(nodes) == 4 and all(n.status == Status.INVALID for n in nodes)
    assert [n.agent for n in nodes] == ["greedy:offline#0", "random:offline#1"] * 2


def test_the_reply_that_crosses_the_llm_cap_is_recorded_with_its_cost(tmp_path):
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(
        json.dumps({"text": json.dumps({"idea": f"try {p}", "proposal": p}), "model": "m",
                    "input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.6}) + "\n"
        for p in ("AMAMSSAMAMAMSSAM", "SSAMAMAMSSAMAMAM")
    ))
    cfg = _config(tmp_path, agents=[f"greedy:replay:{replies}"], budget="$1,10evals", noise_seeds=0)
    s = run(cfg, executor=inline_executor())
    assert s.stop_reason == "LLM budget exhausted: spent $1.2000 of the $1.0000 cap"
    assert s.evaluations == 1 and s.cost_usd == pytest.approx(1.2)
    with Journal(cfg.out, readonly=True) as j:
        first, second = j.nodes()
    assert first.status == Status.OK and first.cost_usd == pytest.approx(0.6)
    # paid for, not evaluated: the node keeps its reply, tokens and dollars
    assert second.status == Status.INVALID and second.cost_usd == pytest.approx(0.6)
    assert (second.input_tokens, second.output_tokens) == (1000, 100)
    assert second.error == "operator draft stopped: LLM budget exhausted: spent $1.2000 of the $1.0000 cap"
    assert "SSAMAMAMSSAMAMAM" in second.transcript[-1]["content"]


def test_a_runaway_reply_leaves_a_bounded_journal_row_and_the_whole_text_beside_it(tmp_path):
    from aira.agents.transcripts import MESSAGE_CHARS

    huge = "runaway " * 750_000  # 6 MB, no JSON in it
    replies = tmp_path / "replies.jsonl"
    good = json.dumps({"idea": "ok", "proposal": "AMAMSSAMAMAMSSAM"})
    replies.write_text("".join(json.dumps({"text": t, "model": "m"}) + "\n" for t in [huge] * 3 + [good]))
    cfg = _config(tmp_path, agents=[f"greedy:replay:{replies}"], budget="1evals", noise_seeds=0)
    s = run(cfg, executor=inline_executor())
    assert s.evaluations == 1 and s.nodes == 2
    with Journal(cfg.out, readonly=True) as j:
        bad, ok = j.nodes()
        payloads = [json.dumps(d) for *_, d in j.events()]
    assert bad.status == Status.INVALID and "3 attempts" in bad.error and ok.status == Status.OK
    assert max(map(len, payloads)) < 6 * MESSAGE_CHARS  # was 18 MB (three 6 MB replies) per event
    replies_kept = [m["content"] for m in bad.transcript if m["role"] == "assistant"]
    marker = (f"\n[... aira cut {len(huge) - MESSAGE_CHARS} of {len(huge)} characters here; "
              f"the whole text is in transcripts/{bad.id}.json ...]\n")
    assert replies_kept == [huge[: MESSAGE_CHARS // 2] + marker + huge[-MESSAGE_CHARS // 2 :]] * 3
    whole = json.loads((tmp_path / "run" / "transcripts" / f"{bad.id}.json").read_text())
    assert [m["content"] for m in whole if m["role"] == "assistant"] == [huge] * 3
    assert [m["role"] for m in whole] == [m["role"] for m in bad.transcript]
    assert not (tmp_path / "run" / "transcripts" / f"{ok.id}.json").exists()  # short: kept whole


@pytest.mark.parametrize("name", ["local", "ray"])
def test_job_logs_go_to_the_run_folder_for_every_executor_that_writes_them(tmp_path, monkeypatch, name):
    """Under Ray too (#19): a default log folder ./runs/jobs was shared by every run started in one place."""
    import aira.agents.executors as executors

    seen = {}

    def fake(executor, slots=1, **kw):  # records what the run asks for, runs the jobs inline
        seen.update(kw, executor=executor)
        return make_executor("inline")

    monkeypatch.setattr(executors, "make_executor", fake)
    run(_config(tmp_path, executor=name, budget="2evals", noise_seeds=0))
    assert seen == {"executor": name, "log_dir": str(tmp_path / "run" / "jobs")}
