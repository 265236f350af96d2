"""The worker entry point: JSON in, JSON out, atomically; NaN survives the round trip."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time

import pytest

from aira.agents.executors.worker import main, read_result, write_result
from aira.agents.types import Job, Result, Status


def test_worker_cli_writes_result_atomically(tmp_path):
    job = Job(id="w", fn="aira.agents.executors.probes:sleep", kwargs={"metric": 0.5})
    (tmp_path / "job.json").write_text(json.dumps(job.to_dict()))
    rc = subprocess.run([sys.executable, "-m", "aira.agents.executors.worker", str(tmp_path / "job.json"),
                         str(tmp_path / "result.json")], capture_output=True, timeout=30).returncode
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "result.json"]  # no tmp left
    r = read_result(tmp_path / "result.json")
    assert r.status == Status.OK and r.metric == 0.5 and r.seconds > 0


def test_nan_and_numpy_scalars_round_trip(tmp_path):
    import numpy as np

    write_result(tmp_path / "r.json", Result(status=Status.DIVERGED, metric=float("nan"),
                                             metrics={"loss": np.float32(1.5), "curve": np.arange(3)}))
    r = read_result(tmp_path / "r.json")
    assert r.status == Status.DIVERGED and math.isnan(r.metric)
    assert r.metrics == {"loss": 1.5, "curve": [0, 1, 2]}
    assert read_result(tmp_path / "missing.json") is None


def test_usage_line(capsys):
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def _run_worker(tmp_path, job: Job) -> subprocess.Popen:
    (tmp_path / "job.json").write_text(json.dumps(job.to_dict()))
    return subprocess.Popen([sys.executable, "-m", "aira.agents.executors.worker", str(tmp_path / "job.json"),
                             str(tmp_path / "result.json")], start_new_session=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_kernel_tells_a_job_at_once_that_its_parent_died(tmp_path):
    """#19: polling getppid() once a second let jobs outlive a killed harness; the kernel's parent-death
    signal wakes the watcher at once (the polling stays as the fallback)."""
    job = Job(id="p", fn="aira.agents.executors.probes:parent_death_signal")
    assert _run_worker(tmp_path, job).wait(timeout=60) == 0
    assert read_result(tmp_path / "result.json").metric == float(signal.SIGUSR2)


def test_a_parent_thread_that_ends_does_not_stop_the_job(tmp_path):
    """The kernel also signals when the parent *thread* that started the job ends (the local executor starts
    jobs from a thread): the parent process lives on, so the job must run to its end."""
    started, mark = [], tmp_path / "started"
    job = Job(id="t", fn="aira.agents.executors.probes:mark_and_sleep",
              kwargs={"path": str(mark), "seconds": 1.0, "metric": 0.5})

    def start_and_leave():
        started.append(_run_worker(tmp_path, job))
        while not mark.exists() and started[0].poll() is None:  # the worker has set its signal
            time.sleep(0.01)

    t = threading.Thread(target=start_and_leave)
    t.start()
    t.join()  # the thread that forked the worker ends while the job runs
    assert started[0].wait(timeout=60) == 0
    r = read_result(tmp_path / "result.json")
    assert r.status == Status.OK and r.metric == 0.5
