"""Budgets that plan: what a wall clock buys, fewer reference runs when they would eat it, refusal of a
budget that buys nothing, the search starting beside the reference, and `resume --add`."""

import pytest

from aira.agents.base import Executor
from aira.agents.budget import Budget, plan_budget
from aira.agents.journal import Journal
from aira.agents.runfolder import RunConfig
from aira.tasks.runs import resume, run
from aira.agents.stats import REFERENCE
from aira.agents.types import Status
from aira.cli import main
from aira.errors import UsageError
from aira.tasks.synthetic import SyntheticPatternTask


def test_planned_counts_exactly():
    p = plan_budget(Budget.parse("10m"), slots=2, noise_seeds=1, job_s=86.0, source="measured")
    assert p.candidates == (1200 - 86) // 86 == 12
    assert p.lines == ("plan: 600s x 2 workers buys ~12 candidate evaluations at ~86s each (measured), after "
                       "1 reference evaluation; cached ones are free",)


def test_reference_runs_shrink_so_a_short_budget_reaches_the_agents():
    p = plan_budget(Budget.parse("2m"), slots=2, noise_seeds=3, job_s=86.0, measured_noise=True)
    assert (p.noise_seeds, p.candidates) == (1, 1)
    assert p.lines[1] == ("noise floor: 1 reference evaluation instead of 3, so the budget reaches the agents "
                          "(the proxy's measured noise sets the margin)")
    # with measured noise the reference may go entirely when even one would eat half the budget
    p = plan_budget(Budget.parse("100s"), slots=1, noise_seeds=1, job_s=60.0, measured_noise=True)
    assert (p.noise_seeds, p.candidates) == (0, 1)


def test_a_budget_that_buys_no_candidate_is_refused():
    with pytest.raises(UsageError) as e:
        plan_budget(Budget.parse("60s"), slots=1, noise_seeds=3, job_s=65.0, source="src")
    assert str(e.value) == ("a budget of 60s on 1 worker buys no candidate evaluation: one takes ~65s (src); "
                            "give at least 130s, or more workers")


def test_no_wall_clock_or_no_estimate_plans_nothing():
    assert plan_budget(Budget.parse("20evals"), slots=2, noise_seeds=3, job_s=10.0).candidates is None
    assert plan_budget(Budget.parse("1m"), slots=2, noise_seeds=3, job_s=None).lines == ()


def test_extending_a_budget_on_resume():
    b = Budget.parse("10m,20evals")
    assert b.extended(Budget.parse("5m")).wall_s == 900 and b.extended(Budget.parse("5m")).evals == 20
    # a limit the run did not have starts from what it spent
    assert Budget.parse("20evals").extended(Budget.parse("5m"), spent_s=400).wall_s == 700
    assert Budget.parse("10m").extended(Budget.parse("3evals"), spent_evals=7).evals == 10


class TimedTask(SyntheticPatternTask):
    """The synthetic task with a reference, a measured noise and a measured time per evaluation."""

    measured_noise = 0.01

    def __init__(self, job_s=None, **kw):
        super().__init__(**kw)
        self._job_s = job_s

    def reference(self):
        return "AM" * 8

    def seconds_per_eval(self):
        return (self._job_s, "test figure") if self._job_s else None


class HeldExecutor(Executor):
    """Runs jobs in-process, but holds the reference job back until a candidate's job has been submitted:
    it finishes only if the search started beside it."""

    slots = 2

    def __init__(self):
        self.queue, self.order, self.waits = [], [], 0

    def submit(self, job):
        from aira.agents.executors.worker import run_job

        self.order.append(job.id)
        self.queue.append((job, run_job(job)))

    def poll(self, timeout=0.0):
        ids = set(self.order)
        candidate_seen = len(ids) > 1
        self.waits += not candidate_seen
        assert self.waits < 200, "the search waited for the reference to finish"
        out = [(j.id, r) for j, r in self.queue if candidate_seen or j.kwargs.get("pattern") != "AM" * 8]
        self.queue = [(j, r) for j, r in self.queue if (j.id, r) not in out]
        return out

    def shutdown(self):
        pass


def test_the_search_starts_beside_the_reference_when_the_margin_is_known(tmp_path):
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(tmp_path / "r"), quiet=True,
                    budget="6evals", noise_seeds=1)
    ex = HeldExecutor()
    s = run(cfg, task=TimedTask(), executor=ex)
    assert s.evaluations == 6
    with Journal(cfg.out, readonly=True) as j:
        nodes = j.nodes()
    ref = [n for n in nodes if n.operator == REFERENCE]
    assert len(ref) == 1 and ref[0].status == Status.OK
    # the first candidate was submitted while the reference was still in flight (the executor held it)
    assert ex.order[0] == ref[0].id and len(ex.order) > 1
    assert s.noise_floor is not None and s.noise_floor["source"] == "measured" and s.noise_floor["std"] == 0.01


def test_run_refuses_a_budget_that_buys_nothing_before_any_folder_exists(tmp_path, capsys):
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(tmp_path / "r"), budget="30s",
                    noise_seeds=3, slots=1)
    with pytest.raises(UsageError, match="buys no candidate evaluation: one takes ~50s"):
        run(cfg, task=TimedTask(job_s=50.0))
    assert not (tmp_path / "r").exists()


def test_resume_add_extends_the_stored_budget(tmp_path, capsys):
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(tmp_path / "r"), quiet=True,
                    budget="4evals", noise_seeds=0)
    from aira.agents.executors import make_executor

    run(cfg, task=TimedTask(), executor=make_executor("inline"))
    s = resume(tmp_path / "r", task=TimedTask(), executor=make_executor("inline"), add="3evals", quiet=False)
    assert s.evaluations == 7
    assert "budget 7 evaluations for the whole run" in capsys.readouterr().err


def test_cli_resume_add_on_a_design_run_is_refused(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "config.json").write_text('{"task": "autoresearch"}')
    (d / "journal.sqlite").write_bytes(b"")
    assert main(["runs", "resume", str(d), "--add", "5m"]) == 2
    assert "--add extends a search run's budget" in capsys.readouterr().err

