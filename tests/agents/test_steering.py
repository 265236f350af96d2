"""Steering a live run: pause / continue, stop, add-budget and guidance, applied by the orchestrator from the
run folder's files, journaled, with the budget's clock injected.

The "researcher" is the executor itself: a scripted in-process executor that, at chosen polls, writes a
request or a guidance note into the run folder as the CLI would (aira.agents.steering), so what the
orchestrator sees at each moment is known without threads or sleeps.
"""

from __future__ import annotations

import json
import random

import pytest

from aira.agents.base import Executor
from aira.agents.journal import Journal
from aira.agents.runfolder import RunConfig
from aira.agents.stats import STOPPED
from aira.agents.steering import (
    CONTROL_DIR,
    MAX_GUIDANCE_BYTES,
    STOPPED_BY_RESEARCHER,
    Request,
    guidance_log,
    text_hash,
    write_guidance,
    write_request,
)
from aira.agents.types import Status
from aira.cli import main
from aira.tasks.runs import run


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted(Executor):
    """Runs each job at submit, hands back one result per poll; each poll moves the clock one second and
    then calls `script(self)`, which may steer the run."""

    def __init__(self, run_dir, clock, script, slots=1):
        self.run_dir, self.clock, self.script, self.slots = run_dir, clock, script, slots
        self.held, self.polls, self.results = [], 0, 0
        self.paused = False  # set by the script between its pause and continue requests
        self.submitted_while_paused, self.landed_while_paused = [], []

    def submit(self, job):
        from aira.agents.executors.worker import run_job

        if self.paused:
            self.submitted_while_paused.append(job.id)
        self.held.append((job.id, run_job(job)))

    def poll(self, timeout=0.0):
        self.polls += 1
        self.clock.now += 1.0
        out = [self.held.pop(0)] if self.held else []
        self.results += len(out)
        if out and self.paused:
            self.landed_while_paused.append(out[0][0])
        self.script(self)
        return out

    def shutdown(self):
        pass


def _run(tmp_path, script, *, budget="8evals", slots=1, agents=("greedy:offline",), **kw):
    clock = Clock()
    out = tmp_path / "run"
    ex = Scripted(out, clock, script, slots=slots)
    cfg = RunConfig(task="synthetic", agents=list(agents), out=str(out), budget=budget, noise_seeds=0, quiet=True)
    s = run(cfg, executor=ex, clock=clock, **kw)
    with Journal(out, readonly=True) as j:
        return s, ex, j.nodes(), j.steering()


def test_pause_holds_submissions_while_results_land_and_continue_restarts_them(tmp_path, capsys):
    marks = {}

    def script(ex):
        if ex.results == 3 and "pause" not in marks:
            write_request(ex.run_dir, Request(action="pause"))
            ex.paused, marks["pause"] = True, (ex.clock.now, ex.polls)
        elif ex.paused and ex.polls - marks["pause"][1] == 6:  # six polls paused, then continue
            write_request(ex.run_dir, Request(action="continue"))
            ex.paused, marks["continue"] = False, ex.clock.now

    s, ex, nodes, steering = _run(tmp_path, script, slots=2)
    assert s.evaluations == 8 and s.stop_reason.startswith("evaluation budget")
    assert ex.submitted_while_paused == []
    # the job in flight when the pause came finished during it and was journaled
    assert len(ex.landed_while_paused) == 1
    (late,) = [n for n in nodes if n.id == ex.landed_while_paused[0]]
    assert late.status == Status.OK and late.metric is not None
    assert [(k, d["action"], d["applied"]) for _, k, d in steering] == [("control", "pause", True),
                                                                          ("control", "continue", True)]
    assert not list((tmp_path / "run" / CONTROL_DIR).glob("*.json"))  # applied once, then removed
    # the six paused seconds (six polls, a second each) are not spent: elapsed = the clock's total minus them
    assert s.elapsed_s == pytest.approx(ex.clock.now - (marks["continue"] - marks["pause"][0]))
    err = capsys.readouterr().err
    assert "aira: paused by the researcher (1 jobs in flight finish" in err and "aira: continued by the researcher" in err


@pytest.mark.parametrize("kill", [False, True])
def test_stop_keeps_every_finished_result_and_writes_the_summary(tmp_path, kill):
    def script(ex):
        if ex.results == 3 and not list((ex.run_dir / CONTROL_DIR).glob("*")) and not ex.paused:
            write_request(ex.run_dir, Request(action="stop", kill=kill))
            ex.paused = True  # only marks "stop written": no submission may follow

    s, ex, nodes, steering = _run(tmp_path, script, budget="50evals", slots=2)
    assert s.stop_reason == STOPPED_BY_RESEARCHER and ex.submitted_while_paused == []
    assert all(n.status not in (Status.PENDING, Status.RUNNING) for n in nodes)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == STOPPED_BY_RESEARCHER and summary["nodes"] == len(nodes) == 4
    ok = [n for n in nodes if n.status == Status.OK]
    if kill:  # the one in flight is killed, not counted, and said to be stopped with the run
        (killed,) = [n for n in nodes if n.status == Status.KILLED]
        assert killed.error == STOPPED + STOPPED_BY_RESEARCHER and len(ok) == 3 == s.evaluations
    else:  # the one in flight is waited for and kept
        assert len(ok) == 4 == s.evaluations
    (_, kind, data), = steering
    assert kind == "control" and data["action"] == "stop" and data["kill"] is kill


def test_add_budget_extends_a_live_run_and_is_stored_for_a_resume(tmp_path, capsys):
    def script(ex):
        if ex.results == 2 and not getattr(ex, "added", False):
            write_request(ex.run_dir, Request(action="add-budget", budget="3evals"))
            ex.added = True

    s, _, _, steering = _run(tmp_path, script, budget="4evals")
    assert s.evaluations == 7 and s.stop_reason == "evaluation budget spent (7)"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["budget"]["evals"] == 7
    (_, kind, data), = steering
    assert kind == "control"
    assert (data["action"], data["before"], data["after"]) == ("add-budget", "4 evaluations", "7 evaluations")
    assert "budget extended by 3evals: now 7 evaluations for the whole run" in capsys.readouterr().err


PATTERNS = ["".join(random.Random(i).choice("AMS") for _ in range(16)) for i in range(40)]


def test_guidance_reaches_llm_prompts_and_each_version_is_journaled_with_its_readers(tmp_path, capsys):
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"text": json.dumps({"idea": f"try {p}", "proposal": p}), "model": "m"})
                               + "\n" for p in PATTERNS))
    note1, note2 = "Prefer patterns that start with attention.", "Now try more S layers near the end."

    def script(ex):
        if ex.results == 2 and not (ex.run_dir / "guidance.md").exists():
            write_guidance(ex.run_dir, note1 + "\n")
        elif ex.results == 6 and (ex.run_dir / "guidance.md").read_text().strip() == note1:
            write_guidance(ex.run_dir, note2)

    _, _, nodes, steering = _run(tmp_path, script, budget="10evals",
                                  agents=(f"greedy:replay:{replies}", "random:offline"))
    versions = [d for _, k, d in steering if k == "guidance"]
    assert [(d["version"], d["text"], d["sha256"]) for d in versions] == [
        (1, note1, text_hash(note1)), (2, note2, text_hash(note2))]
    llm = [n for n in nodes if n.llm != "offline"]
    offline = [n for n in nodes if n.llm == "offline"]
    assert [n.guidance for n in llm][:1] == [0] and {n.guidance for n in llm} == {0, 1, 2}
    for n in llm:
        prompt = n.transcript[0]["content"]
        if n.guidance:
            note = {1: note1, 2: note2}[n.guidance]
            assert n.guidance_read
            assert (f"## Guidance from the researcher (version {n.guidance})" in prompt
                    and f"----- begin guidance -----\n{note}\n----- end guidance -----" in prompt)
            assert prompt.index("## Guidance from the researcher") < prompt.index("## Response format")
        else:
            assert not n.guidance_read and "Guidance from the researcher" not in prompt
    assert any(n.guidance for n in offline) and not any(n.guidance_read for n in offline)
    with Journal(tmp_path / "run", readonly=True) as j:
        log = guidance_log(j)
    for g in log:
        assert g["read_by"] == [n.id for n in llm if n.guidance == g["version"]] != []
        assert g["not_read_by"] == [n.id for n in offline if n.guidance == g["version"]]
    err = capsys.readouterr().err
    assert err.count("is not read by offline agents") == 1 and "aira: guidance v2 (" in err
    assert main(["runs", "guide", str(tmp_path / "run"), "--show"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == (f"v1 sha256 {text_hash(note1)[:12]} ({len(note1)} bytes): read by "
                        f"{', '.join(log[0]['read_by'])}; not read by {len(log[0]['not_read_by'])} node(s) "
                        f"(offline agents, policy-chosen proposals)")


def test_a_note_over_the_limit_is_ignored_by_the_run_and_refused_by_the_cli(tmp_path, capsys):
    def script(ex):
        if ex.results == 1 and not (ex.run_dir / "guidance.md").exists():
            (ex.run_dir / "guidance.md").write_text("x" * (MAX_GUIDANCE_BYTES + 1))  # an editor, no check

    _, _, nodes, steering = _run(tmp_path, script, budget="3evals")
    assert steering == [] and all(n.guidance == 0 for n in nodes)
    assert capsys.readouterr().err.count("over the 16384-byte limit: ignored; guidance v0 stays in force") == 1
    assert main(["runs", "guide", str(tmp_path / "run"), "y" * (MAX_GUIDANCE_BYTES + 1)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("aira: error: guidance of 16385 bytes is over the 16384-byte limit: it goes into every LLM "
                   "prompt; shorten it")


def test_cli_refuses_to_control_a_run_that_is_not_live_and_bad_budgets(tmp_path, capsys):
    _run(tmp_path, lambda ex: None, budget="2evals")
    d = str(tmp_path / "run")
    for argv in (["runs", "pause", d], ["runs", "stop", d, "--kill"], ["runs", "add-budget", d, "10m"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is not running (no process holds its writer.lock)" in err
    assert main(["runs", "add-budget", d, "lots"]) == 2
    assert "bad budget item 'lots'" in capsys.readouterr().err
    assert main(["runs", "add-budget", d, "timeout=5m"]) == 2
    assert "adds nothing" in capsys.readouterr().err
    assert not (tmp_path / "run" / CONTROL_DIR).exists()
    assert main(["runs", "guide", d, "Try Mamba first."]) == 0
    assert "the run is not live: it is read when the run resumes" in capsys.readouterr().out
    assert (tmp_path / "run" / "guidance.md").read_text() == "Try Mamba first."


def test_cli_queues_a_request_for_a_live_writer(tmp_path, capsys):
    from aira.agents.journal import writer_lock

    d = tmp_path / "live"
    _run(tmp_path, lambda ex: None, budget="1evals")
    (tmp_path / "run").rename(d)
    with writer_lock(d):  # as a running orchestrator holds it
        assert main(["runs", "add-budget", str(d), "5m,$2"]) == 0
        assert main(["runs", "stop", str(d), "--kill"]) == 0
    reqs = [json.loads(p.read_text()) for p in sorted((d / CONTROL_DIR).glob("*.json"))]
    assert [(r["action"], r["budget"], r["kill"], r["source"]) for r in reqs] == [
        ("add-budget", "5m,$2", False, "cli"), ("stop", "", True, "cli")]
    assert "queued: add-budget 5m,$2 for" in capsys.readouterr().out


def test_a_paused_run_with_nothing_in_flight_waits_instead_of_spinning(tmp_path, monkeypatch):
    # An idle executor's poll returns at once; the paused loop then sleeps between readings of the folder.
    import aira.agents.orchestrator as orch

    naps = []
    monkeypatch.setattr(orch, "_sleep", lambda s: naps.append((s, len(ex_ref[0].held))))
    ex_ref = []

    def script(ex):
        ex_ref[:] = [ex]
        if ex.results == 2 and not ex.paused and not getattr(ex, "was_paused", False):
            write_request(ex.run_dir, Request(action="pause"))
            ex.paused = ex.was_paused = True
            ex.paused_at = ex.polls
        elif ex.paused and (len(naps) >= 3 or ex.polls - ex.paused_at > 20):  # (20 polls: it spun)
            write_request(ex.run_dir, Request(action="continue"))
            ex.paused = False

    s, ex, _, _ = _run(tmp_path, script, budget="4evals")
    assert s.evaluations == 4
    assert len(naps) == 3 and all(sec == orch.PAUSE_IDLE_S and held == 0 for sec, held in naps)


class Slow(Scripted):
    """Hands back a result every 4th poll only, so a 5 s wall budget ends with jobs still in flight."""

    def poll(self, timeout=0.0):
        self.polls += 1
        self.clock.now += 1.0
        out = [self.held.pop(0)] if self.held and self.polls % 4 == 0 else []
        self.results += len(out)
        self.script(self)
        return out


@pytest.mark.parametrize("action, budget, kill", [("pause", "", False), ("add-budget", "1h", False),
                                                  ("stop", "", True)])
def test_requests_that_come_after_the_search_stopped(tmp_path, action, budget, kill):
    # The wall clock (5 s) ran out with jobs in flight; a request written at t = 7 finds the run closing:
    # pause and add-budget are refused in the journal (not claimed), stop --kill kills what still runs.
    def script(ex):
        if ex.clock.now == 7.0 and not getattr(ex, "sent", False):
            write_request(ex.run_dir, Request(action=action, budget=budget, kill=kill))
            ex.sent = True

    clock = Clock()
    out = tmp_path / "run"
    ex = Slow(out, clock, script, slots=2)
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(out), budget="5s", noise_seeds=0,
                    quiet=True, slots=2)
    s = run(cfg, executor=ex, clock=clock)
    with Journal(out, readonly=True) as j:
        nodes, steering = j.nodes(), j.steering()
    assert s.stop_reason == "wall-clock budget spent (5s)"
    (_, _, data), = steering
    if action == "stop":
        assert data["applied"] and [n.status for n in nodes].count(Status.KILLED) == 1
    else:
        assert not data["applied"] and data["why"] == "the run is already stopping (wall-clock budget spent (5s))"
        assert all(n.status == Status.OK for n in nodes)
        assert json.loads((out / "config.json").read_text())["budget"]["wall_s"] == 5
        assert s.elapsed_s == pytest.approx(clock.now)  # the clock never stopped


@pytest.mark.parametrize("at", [2, 3, 4, 5])
def test_a_stop_is_not_followed_by_a_promotion(tmp_path, at):
    # promotions every evaluation (1:1): a stop applied while the loop drains must end the search before the
    # next promotion round submits a large-fidelity job
    from test_promote import TwoFidelityTask

    def script(ex):
        if ex.results == at and not ex.paused:
            write_request(ex.run_dir, Request(action="stop"))
            ex.paused = True  # "stop written": nothing may be submitted after it

    clock = Clock()
    out = tmp_path / "run"
    ex = Scripted(out, clock, script, slots=2)
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(out), budget="50evals", noise_seeds=0,
                    quiet=True, promote="1:1", slots=2)
    s = run(cfg, task=TwoFidelityTask(noise=0.02), executor=ex, clock=clock)
    assert s.stop_reason == STOPPED_BY_RESEARCHER and ex.submitted_while_paused == []


def test_a_resumed_run_starts_unpaused_and_journals_it(tmp_path, capsys):
    # a segment that ended paused (killed while paused): the next segment runs, and its journal says so, so
    # the dashboard does not show the live run as paused
    from aira.agents.steering import RunSteering  # noqa: F401 - the class under test, via resume
    from aira.tasks.runs import resume

    _run(tmp_path, lambda ex: None, budget="2evals")
    out = tmp_path / "run"
    with Journal(out) as j:
        j.add_steering("control", {"action": "pause", "id": "x", "applied": True})
    resume(out, budget="3evals", executor=Scripted(out, Clock(), lambda ex: None), clock=Clock())
    with Journal(out, readonly=True) as j:
        last = [d for _, k, d in j.steering() if k == "control"][-1]
    assert (last["action"], last["applied"], last["why"]) == ("continue", True, "a new segment starts unpaused")
    assert "the run was paused when its last segment ended; this segment runs" in capsys.readouterr().err


def test_a_request_file_is_removed_by_its_own_name(tmp_path):
    # an editor-written request whose "id" differs from its file name is applied once and its file removed
    def script(ex):
        if ex.results == 1 and not getattr(ex, "sent", False):
            (ex.run_dir / CONTROL_DIR).mkdir(exist_ok=True)
            (ex.run_dir / CONTROL_DIR / "mine.json").write_text(json.dumps({"action": "add-budget", "budget": "1evals",
                                                                            "id": "../elsewhere"}))
            ex.sent = True

    s, _, _, steering = _run(tmp_path, script, budget="2evals")
    assert s.evaluations == 3 and [d["id"] for _, _, d in steering] == ["../elsewhere"]
    assert not list((tmp_path / "run" / CONTROL_DIR).iterdir())
