"""The orchestrator's progress line keeps coming outside the search: while the noise-floor references
train, and while the last jobs finish after the budget ran out."""

from __future__ import annotations

import io

from aira.agents import progress
from aira.agents.base import Executor
from aira.agents.runfolder import RunConfig
from aira.tasks.runs import run


class SlowExecutor(Executor):
    """Runs jobs in-process, but hands each result back only after `polls` polls."""

    slots = 1

    def __init__(self, polls: int = 3):
        self.polls, self.held = polls, []

    def submit(self, job):
        from aira.agents.executors.worker import run_job

        self.held.append([job.id, run_job(job), self.polls])

    def poll(self, timeout=0.0):
        for h in self.held:
            h[2] -= 1
        out = [(i, r) for i, r, left in self.held if left <= 0]
        self.held = [h for h in self.held if h[2] > 0]
        return out

    def shutdown(self):
        pass


def test_the_line_keeps_printing_while_references_train(tmp_path, monkeypatch):
    from tests.report.conftest import NoisySynthetic

    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # a line at every update
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(tmp_path / "r"), budget="4evals",
                    noise_seeds=3, quiet=False)
    run(cfg, task=NoisySynthetic(noise=0.05), executor=SlowExecutor())
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("[")]
    floor = [ln for ln in lines if "measuring the noise floor" in ln]
    assert [f"({k} of 3 reference runs done)" in " ".join(floor) for k in range(3)] == [True] * 3
    assert all(" 0 done," in ln for ln in floor)  # before the search: no agent evaluation yet
    assert " 4 done," in lines[-1] and "noise floor" not in lines[-1]


def test_the_line_keeps_printing_while_the_last_jobs_finish(tmp_path, monkeypatch):
    from aira.agents.journal import Journal
    from aira.agents.orchestrator import _Run
    from aira.agents.types import Node
    from tests.report.conftest import NoisySynthetic

    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(tmp_path / "r"), budget="10m",
                    noise_seeds=0, quiet=False)
    (tmp_path / "r").mkdir()
    with Journal(tmp_path / "r") as j:
        r = _Run(cfg, tmp_path / "r", NoisySynthetic(), SlowExecutor(polls=4), j)
        r.progress = progress.Progress(stream=(out := io.StringIO()), interval=0.0)
        r._submit(Node(id=r._new_id(), agent="greedy:offline#0", operator="draft", proposal="AM" * 8))
        r.stop_reason = "wall-clock budget spent (600s)"
        r.finish()
    lines = out.getvalue().splitlines()
    waiting = [ln for ln in lines if "waiting for the last 1 jobs" in ln]
    assert len(waiting) >= 3 and all("wall-clock budget spent (600s): waiting" in ln for ln in waiting)
    assert "1 done, 0 running" in lines[-1] and "waiting" not in lines[-1]
