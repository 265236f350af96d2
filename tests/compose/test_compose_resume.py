"""An interrupted Compose run (orchestrator SIGKILLed mid-search) resumes from its journal."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aira.agents.journal import Journal
from aira.agents.types import Status

BUDGET = 10


def _finished(run_dir) -> int:
    try:
        with Journal(run_dir, readonly=True) as j:
            return len(j.finished())
    except Exception:  # noqa: BLE001 - the journal may not exist yet
        return 0


@pytest.mark.slow
def test_compose_run_resumes_after_sigkill(tmp_path):
    run_dir = tmp_path / "c"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "aira", "compose", "run", "--proxy", "smoke", "--layers", "4",
           "--agents", "greedy:offline", "--no-controls", "--budget", f"{BUDGET}evals", "--workers", "2",
           "--noise-seeds", "0", "--out", str(run_dir), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _finished(run_dir) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Journal(run_dir, readonly=True) as j:
        before = {n.id: n.to_dict() for n in j.nodes() if n.status == Status.OK}
    assert 3 <= len(before) < BUDGET

    out = subprocess.run([sys.executable, "-m", "aira", "runs", "resume", str(run_dir), "--quiet"], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    with Journal(run_dir, readonly=True) as j:
        after = j.nodes()
    ok = [n for n in after if n.status == Status.OK]
    assert len(ok) == BUDGET  # the evaluation budget holds across the crash
    by_id = {n.id: n.to_dict() for n in after}
    assert all(by_id[i] == d for i, d in before.items())  # nothing completed was lost or changed
    lost = [n for n in after if n.status == Status.CRASHED]
    assert len(lost) <= 2 and all("lost in crash" in n.error for n in lost)
    # the task was rebuilt from the run's config: same proxy, same cache folder
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["task"] == "compose" and cfg["task_kwargs"]["proxy"] == "smoke"
    cache = Path(cfg["task_kwargs"]["cache_dir"])  # the shared cache ($AIRA_CACHE, set per test)
    assert cache.is_dir() and not cache.is_relative_to(run_dir) and any(cache.iterdir())
