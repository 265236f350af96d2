"""Resume after the orchestrator is SIGKILLed mid-run: nothing completed is lost, the budget holds."""

import os
import signal
import subprocess
import sys
import time

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
