"""LocalExecutor: queueing, timeouts that kill whole trees, crashes, memory, GPUs, sandboxed jobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from aira.agents.executors import make_executor
from aira.agents.executors.inline import InlineExecutor
from aira.agents.executors.local import LocalExecutor
from aira.agents.sandbox import isolation_mode
from aira.agents.types import Job, Result, Status
from aira.errors import UsageError

P = "aira.agents.executors.probes"


def collect(ex, n: int, timeout: float = 20.0) -> dict[str, Result]:
    out: dict[str, Result] = {}
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        for job_id, result in ex.poll(timeout=0.5):
            assert job_id not in out, f"{job_id} reported twice"
            out[job_id] = result
    assert len(out) == n, f"only {sorted(out)} finished"
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def ex(tmp_path):
    e = LocalExecutor(slots=2, log_dir=tmp_path / "logs", grace_s=0.5)
    yield e
    e.shutdown()


def test_queues_beyond_slots_and_runs_all(ex):
    for i in range(5):
        ex.submit(Job(id=f"j{i}", fn=f"{P}:sleep", kwargs={"seconds": 0.3, "metric": float(i)}))
    peak = 0
    out: dict[str, Result] = {}
    end = time.monotonic() + 20
    while len(out) < 5 and time.monotonic() < end:
        peak = max(peak, ex.running())
        assert ex.running() + ex.queued() + len(out) <= 5
        out.update(ex.poll(timeout=0.05))
    assert peak == 2
    assert {k: r.metric for k, r in out.items()} == {f"j{i}": float(i) for i in range(5)}
    assert all(r.status == Status.OK for r in out.values())
    assert ex.started_count == ex.finished_count == 5 and ex.running() == 0


class FakeClock:
    """The executor's clock, moved by the test: deadlines and seconds no longer depend on the machine."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_timeout_kills_grandchild_and_frees_the_slot_once(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    clock = FakeClock()
    with LocalExecutor(slots=1, log_dir=tmp_path / "logs", grace_s=0.5, clock=clock) as ex:
        ex.submit(Job(id="hang", fn=f"{P}:spawn_grandchild", kwargs={"pid_file": str(pid_file)},
                      timeout_s=1.5))
        ex.submit(Job(id="next", fn=f"{P}:sleep", kwargs={"metric": 2.0}))
        for _ in range(600):  # until the grandchild exists: the job is running
            if pid_file.exists():
                break
            time.sleep(0.05)
        assert ex.poll(timeout=0.2) == []  # the clock has not moved: no deadline has passed
        clock.now += 1.6  # past the limit: SIGTERM to the job's whole process group
        first = ex.poll(timeout=30)
        assert [j for j, _ in first][:1] == ["hang"]
        hang = dict(first)["hang"]
        assert hang.status == Status.TIMED_OUT and "wall-clock limit of 1.5s" in hang.error
        assert hang.seconds == pytest.approx(1.6)  # by the executor's clock
        grandchild = int(pid_file.read_text())
        for _ in range(50):
            if not alive(grandchild):
                break
            time.sleep(0.05)
        assert not alive(grandchild)
        rest = dict(first) | collect(ex, 1 if "next" not in dict(first) else 0)
        assert rest["next"].status == Status.OK and rest["next"].metric == 2.0
        assert ex.poll(timeout=0.3) == []  # nothing reported twice
        assert ex.started_count == ex.finished_count == 2 and ex.running() == 0


def test_crash_reports_the_log_tail(ex):
    ex.submit(Job(id="c", fn=f"{P}:crash", kwargs={"message": "bad shapes", "noise_lines": 50}))
    r = collect(ex, 1)["c"]
    assert r.status == Status.CRASHED
    assert r.error.splitlines()[-1] == "RuntimeError: bad shapes"
    assert "training step 49" in r.error and "training step 0\n" not in r.error  # the tail only
    assert "RuntimeError: bad shapes" in Path(r.log_path).read_text()


def test_memory_limit_is_a_kill(ex):
    ex.submit(Job(id="m", fn=f"{P}:allocate", kwargs={"mb": 4000}, mem_limit_mb=300))
    ex.submit(Job(id="fits", fn=f"{P}:allocate", kwargs={"mb": 20}, mem_limit_mb=300))
    out = collect(ex, 2)
    assert out["m"].status == Status.KILLED and out["m"].error.startswith("memory limit")
    assert "mem_limit_mb=300" in out["m"].error
    assert out["fits"].status == Status.OK and out["fits"].metric == 20.0


def test_worker_dying_without_result(ex):
    ex.submit(Job(id="exit", fn=f"{P}:exit_now", kwargs={"code": 3}))
    ex.submit(Job(id="bad", fn="no.such.module:fn"))
    out = collect(ex, 2)
    assert out["exit"].status == Status.CRASHED and "exit code 3" in out["exit"].error
    assert out["bad"].status == Status.CRASHED and "No module named 'no'" in out["bad"].error


def test_gpu_assignment_round_robin(tmp_path):
    with LocalExecutor(slots=1, gpus=[3, 5], log_dir=tmp_path) as ex:
        for i, n in enumerate([1, 1, 1, 2, 0, 3]):
            ex.submit(Job(id=f"g{i}", fn=f"{P}:env_report", gpus=n))
        out = collect(ex, 6)
    seen = [out[f"g{i}"].metrics.get("env", {}).get("CUDA_VISIBLE_DEVICES") for i in range(5)]
    assert seen == ["3", "5", "3", "5,3", ""]  # round robin; a CPU job sees no GPU
    assert out["g5"].status == Status.INVALID and "needs 3 GPUs" in out["g5"].error


def test_gpu_jobs_wait_for_free_devices(tmp_path):
    with LocalExecutor(slots=3, gpus=[0], log_dir=tmp_path) as ex:
        for i in range(2):
            ex.submit(Job(id=f"g{i}", fn=f"{P}:sleep", kwargs={"seconds": 1.0}, gpus=1))
        ex.submit(Job(id="cpu", fn=f"{P}:sleep", kwargs={"seconds": 0.0}))
        end = time.monotonic() + 5
        while ex.started_count < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert ex.started_count == 2 and ex.queued() == 1  # one GPU job runs, the CPU job passed the other
        order = []
        while len(order) < 3 and time.monotonic() < end + 20:
            order += [j for j, r in ex.poll(timeout=0.5) if r.status == Status.OK]
    assert order == ["cpu", "g0", "g1"]


def test_shutdown_kills_running_jobs(tmp_path):
    pid_file = tmp_path / "g.pid"
    ex = LocalExecutor(slots=1, log_dir=tmp_path)
    ex.submit(Job(id="long", fn=f"{P}:spawn_grandchild", kwargs={"pid_file": str(pid_file)}))
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    ex.shutdown()
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert not alive(grandchild)
    with pytest.raises(RuntimeError, match="shut down"):
        ex.submit(Job(id="late", fn=f"{P}:sleep"))


def test_duplicate_ids_and_bad_names(ex):
    ex.submit(Job(id="x", fn=f"{P}:sleep", kwargs={"seconds": 0.5}))
    with pytest.raises(UsageError, match="already queued or running"):
        ex.submit(Job(id="x", fn=f"{P}:sleep"))
    with pytest.raises(UsageError, match="unknown executor 'slurm'"):
        make_executor("slurm", 1)
    with pytest.raises(UsageError, match="slots must be >= 1"):
        make_executor("local", 0)


@pytest.mark.skipif(os.name != "posix" or isolation_mode() != "root",
                    reason="sandboxed jobs need root with network/mount namespaces")
def test_sandboxed_job_runs_in_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("FOO_API_KEY", "sk-fake")
    with LocalExecutor(slots=1, gpus=[7], log_dir=tmp_path / "logs") as ex:
        ex.submit(Job(id="s", fn=f"{P}:env_report", kwargs={"names": ["FOO_API_KEY", "CUDA_VISIBLE_DEVICES"]},
                      sandbox=True, gpus=1, workdir=str(tmp_path / "work")))
        ex.submit(Job(id="hog", fn=f"{P}:allocate", kwargs={"mb": 100_000}, sandbox=True, mem_limit_mb=400))
        out = collect(ex, 2)
    s = out["s"]
    assert s.status == Status.OK, s.error
    assert s.metrics["env"] == {"FOO_API_KEY": None, "CUDA_VISIBLE_DEVICES": "7"}
    assert s.metrics["uid"] >= 200_000 and s.metrics["cwd"] == str((tmp_path / "work").resolve())
    assert out["hog"].status == Status.KILLED and "memory limit" in out["hog"].error


def test_inline_executor_and_worker_semantics():
    ex = make_executor("inline")
    assert isinstance(ex, InlineExecutor)
    ex.submit(Job(id="ok", fn=f"{P}:sleep", kwargs={"metric": 0.25}))
    ex.submit(Job(id="nan", fn=f"{P}:nan_metric"))
    ex.submit(Job(id="nan-ok", fn=f"{P}:nan_metric", kwargs={"call_it_diverged": False}))
    ex.submit(Job(id="notdict", fn="os:getpid"))
    ex.submit(Job(id="badspec", fn="os.getpid"))
    out = dict(ex.poll())
    assert out["ok"].status == Status.OK and out["ok"].metric == 0.25
    assert out["nan"].status == Status.DIVERGED
    assert out["nan-ok"].status == Status.OK  # the function decides, not the worker
    assert out["notdict"].status == Status.CRASHED and "returned int" in out["notdict"].error
    assert "not 'package.module:function'" in out["badspec"].error
    assert ex.poll() == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_sees_only_its_devices(tmp_path):
    with LocalExecutor(slots=2, gpus=[0], log_dir=tmp_path) as ex:
        ex.submit(Job(id="gpu", fn=f"{P}:cuda_report", gpus=1, timeout_s=120))
        ex.submit(Job(id="cpu", fn=f"{P}:cuda_report", gpus=0, timeout_s=120))
        out = collect(ex, 2, timeout=150)
    assert out["gpu"].metric == 1.0 and out["cpu"].metric == 0.0


def test_jobs_stop_when_the_harness_is_killed_outright(tmp_path):
    # SIGKILL (or the OOM killer) gives the harness no chance to clean up; its jobs, which lead their own
    # sessions, notice the parent is gone and end themselves and their children
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "g.pid"
    code = (
        "import time\n"
        "from aira.agents.executors.local import LocalExecutor\n"
        "from aira.agents.types import Job\n"
        f"ex = LocalExecutor(slots=1, log_dir={str(tmp_path / 'logs')!r})\n"
        f"ex.submit(Job(id='long', fn='{P}:spawn_grandchild', kwargs={{'pid_file': {str(pid_file)!r}}}))\n"
        "time.sleep(120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()})
    for _ in range(600):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)
    harness.send_signal(signal.SIGKILL)
    harness.wait()
    for _ in range(300):  # the kernel wakes the worker at once (Linux; else it polls); the interrupt ends the sleep
        if not alive(grandchild):
            break
        time.sleep(0.05)
    assert not alive(grandchild), "the job's grandchild outlived the killed harness"


def _batched(i: int, key: str | None = "k", fn: str = "sleep_batch", **kw) -> Job:
    return Job(id=f"b{i}", fn=f"{P}:sleep", kwargs={"seconds": 0.2, "metric": float(i)}, batch_key=key,
               batch_fn=f"{P}:{fn}" if key else None, **kw)


def _collect(ex, n: int, limit_s: float = 30) -> dict[str, Result]:
    out: dict[str, Result] = {}
    end = time.monotonic() + limit_s
    while len(out) < n and time.monotonic() < end:
        out.update(ex.poll(timeout=0.05))
    return out


def test_a_slot_takes_a_batch_of_one_key_into_one_process(tmp_path):
    ex = LocalExecutor(slots=1, batch=3, log_dir=tmp_path / "logs", grace_s=0.5)
    try:
        assert ex.capacity == 3
        for i in range(5):
            ex.submit(_batched(i))
        ex.submit(_batched(5, key="other"))
        ex.submit(_batched(6, key=None))
        out = _collect(ex, 7)
    finally:
        ex.shutdown()
    assert {k: r.status for k, r in out.items()} == {f"b{i}": Status.OK for i in range(7)}
    assert {k: r.metric for k, r in out.items()} == {f"b{i}": float(i) for i in range(7)}
    pid = {k: r.metrics["pid"] for k, r in out.items()}
    assert pid["b0"] == pid["b1"] == pid["b2"] and pid["b3"] == pid["b4"] != pid["b0"]
    assert len({pid["b0"], pid["b3"], pid["b5"], pid["b6"]}) == 4
    # a job alone runs its own fn, as without batching
    assert [out[f"b{i}"].metrics.get("batch") for i in range(6)] == [3, 3, 3, 2, 2, None]
    assert ex.started_count == ex.finished_count == 7


def test_a_failed_batch_fails_each_of_its_jobs(tmp_path):
    ex = LocalExecutor(slots=1, batch=4, log_dir=tmp_path / "logs", grace_s=0.5)
    try:
        for i in range(2):
            ex.submit(_batched(i, fn="crash_batch"))
        out = _collect(ex, 2)
    finally:
        ex.shutdown()
    assert [out[f"b{i}"].status for i in range(2)] == [Status.CRASHED] * 2
    assert all("RuntimeError: batch of 2 failed" in out[f"b{i}"].error for i in range(2))


def test_a_batch_that_times_out_times_out_each_job(tmp_path):
    ex = LocalExecutor(slots=1, batch=2, log_dir=tmp_path / "logs", grace_s=0.2)
    try:
        for i in range(2):
            ex.submit(Job(id=f"t{i}", fn=f"{P}:sleep", kwargs={"seconds": 30}, timeout_s=0.5, batch_key="k",
                          batch_fn=f"{P}:sleep_batch"))
        out = _collect(ex, 2)
    finally:
        ex.shutdown()
    assert [out[f"t{i}"].status for i in range(2)] == [Status.TIMED_OUT] * 2
    assert out["t0"].error.startswith("in a batch of 2 jobs: wall-clock limit of 0.5s reached")
