"""Resume after the orchestrator is SIGKILLed mid-run: nothing completed is lost, the budget holds;
a second writer of a live run is refused before it changes anything."""

import os
import signal
import subprocess
import sys
import time

import pytest

from aira.agents.journal import Journal
from aira.agents.stats import LOST
from aira.agents.types import Status

BUDGET = 24
SLOTS = 2


def _finished(run_dir) -> int:
    try:
        with Journal(run_dir, readonly=True) as j:
            return len(j.finished())
    except Exception:  # noqa: BLE001 - the file may not exist yet
        return 0


def test_resume_after_sigkill(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "aira",
        "runs",
        "start",
        "--task",
        "synthetic",
        "--agents",
        "greedy:offline",
        "mcts:offline",
        "--budget",
        f"{BUDGET}evals",
        "--workers",
        str(SLOTS),
        "--executor",
        "local",
        "--noise-seeds",
        "0",
        "--out",
        str(run_dir),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _finished(run_dir) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    with Journal(run_dir, readonly=True) as j:
        before = {n.id: n for n in j.nodes()}
    done_before = {i: n for i, n in before.items() if n.status == Status.OK}
    in_flight = [n for n in before.values() if n.status in (Status.PENDING, Status.RUNNING)]
    assert 6 <= len(done_before) < BUDGET and len(in_flight) <= SLOTS

    out = subprocess.run(
        [sys.executable, "-m", "aira", "runs", "resume", str(run_dir), "--quiet"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"evaluation budget spent ({BUDGET})" in out.stdout

    with Journal(run_dir, readonly=True) as j:
        after = j.nodes()
        events = j.events()
        j_finished = j.finished()
    by_id = {n.id: n for n in after}
    # completed evaluations are kept exactly as they were
    for i, n in done_before.items():
        assert by_id[i].to_dict() == n.to_dict()
    # the in-flight ones, and only those, are lost, and say so
    lost = [n for n in after if n.error == LOST]
    assert sorted(n.id for n in lost) == sorted(n.id for n in in_flight)
    assert all(n.status == Status.CRASHED for n in lost)
    # the total evaluation budget holds across the crash
    completed = [n for n in after if n.status not in (Status.INVALID,) and n.error != LOST]
    assert len(completed) == BUDGET
    # the journal is consistent: every node created once and finished once, nothing left open
    kinds = [(node_id, kind) for _, node_id, kind, _ in events]
    assert len(kinds) == len(set(kinds))
    assert {i for i, k in kinds if k == "created"} == set(by_id) == {i for i, k in kinds if k == "finished"}
    assert len(j_finished) == len(after) and all(n.finished_at for n in after)
    assert all(p in by_id for n in after for p in n.parents)
    assert not any(n.parents and set(n.parents) & {m.id for m in lost} for n in after if n.id not in before)


def _run_with_a_running_node(run_dir):
    """A finished two-evaluation run plus one node left RUNNING, as a live writer would have it."""
    from aira.agents.executors import make_executor
    from aira.agents.runfolder import RunConfig
    from aira.tasks.runs import run
    from aira.agents.types import Node

    cfg = RunConfig(task="synthetic", budget="2evals", noise_seeds=0, out=str(run_dir), quiet=True)
    run(cfg, executor=make_executor("inline"))
    with Journal(run_dir) as j:
        j.add(Node(id="n0099", agent="greedy:offline#0", operator="draft", proposal="AM" * 8,
                   status=Status.RUNNING))
        return j.events()


def test_a_second_writer_is_refused_before_it_touches_the_journal(tmp_path):
    from aira.agents.journal import LOCK_FILENAME, writer_lock
    from aira.agents.runfolder import RunConfig
    from aira.tasks.runs import resume, run
    from aira.cli import main
    from aira.errors import UsageError

    run_dir = tmp_path / "run"
    events = _run_with_a_running_node(run_dir)
    config = (run_dir / "config.json").read_text()
    # The first writer, alive in another process: it holds the lock and writes its pid into it.
    code = (
        "import time\nfrom aira.agents.journal import writer_lock\n"
        f"with writer_lock({str(run_dir)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        message = (f"{run_dir} is being written by process {holder.pid}: one run folder takes one writer; "
                   "wait for it to end (or stop it) and try again")
        with pytest.raises(UsageError) as e:
            resume(run_dir, quiet=True)
        assert str(e.value) == message
        with pytest.raises(UsageError, match="is being written by process"):
            run(RunConfig(task="synthetic", budget="2evals", out=str(run_dir), quiet=True))
        assert main(["runs", "resume", str(run_dir), "--quiet"]) == 2
        with Journal(run_dir, readonly=True) as j:
            assert j.events() == events  # the running node is not marked lost, nothing is written
            assert j.get("n0099").status == Status.RUNNING
        assert (run_dir / "config.json").read_text() == config
    finally:
        holder.kill()
        holder.wait()
    # The OS dropped the dead holder's lock: now the node is lost, and the resume runs.
    s = resume(run_dir, budget="3evals", quiet=True)
    assert s.lost == 1 and s.evaluations == 3
    assert (run_dir / LOCK_FILENAME).read_text() == f"{os.getpid()}\n"
    # A second open in this very process is refused too (flock is per open file, not per process).
    with writer_lock(run_dir), pytest.raises(UsageError, match=f"being written by process {os.getpid()}"):
        resume(run_dir, quiet=True)
