"""The default executor: a pool of N slots on this machine, one subprocess per job.

Each job is `python -m aira.agents.executors.worker JOB_JSON RESULT_JSON` as the leader of its own
session/process group, its stdout+stderr in `log_dir/<id>.log`. A monitor thread starts queued jobs
when a slot (and enough GPUs) is free, enforces the wall-clock limit (SIGTERM to the whole tree, SIGKILL
after `grace_s`), reaps finished jobs and turns them into Results. `submit()` only queues; `poll()`
only collects. A job's slot is freed in exactly one place: when its leader is reaped.

Jobs with `sandbox=True` run the same worker inside `aira.agents.sandbox` (its own uid, no network,
rlimits); their workdir holds the job/result JSON, since the sandbox can write nowhere else.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from aira.agents.base import Executor
from aira.agents.executors.proc import GroupProcess, describe_exit, log_tail
from aira.agents.executors.worker import read_batch_result, read_result
from aira.agents.sandbox import AIRA_ROOT, SandboxLimits, SandboxProcess, classify
from aira.agents.types import Job, Result, Status
from aira.errors import UsageError

_MEMORY_HINTS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


def safe_name(job_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)[:120] or "job"


def worker_env(cuda_visible: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (AIRA_ROOT, env.get("PYTHONPATH", "")) if p)
    if cuda_visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible
    return env


@dataclass
class _Run:
    job: Job
    proc: GroupProcess
    log_path: Path
    result_path: Path
    gpus: list[int]
    started: float                # by the executor's clock
    deadline: float
    term_at: float | None = None  # when SIGTERM went out
    reason: str = ""              # "timed-out" once the harness decided to kill it
    members: list[Job] | None = None  # a batch: the jobs this one process runs (`job` is the first)


class LocalExecutor(Executor):
    """N worker slots on this machine. `gpus`: device ids handed out round robin (None: not managed).
    `batch` > 1: a slot takes up to that many queued jobs of one `batch_key` into one worker process, which
    runs their `batch_fn` once (e.g. K candidates trained as one); `capacity` is then slots x batch."""

    def __init__(self, slots: int = 1, gpus: list[int] | None = None, log_dir: str | Path = "runs/jobs",
                 *, grace_s: float = 2.0, tick_s: float = 0.02,
                 sandbox_limits: SandboxLimits | None = None, batch: int = 1, batch_wait_s: float = 1.0,
                 clock=time.monotonic):
        if slots < 1:
            raise UsageError(f"executor slots must be >= 1, got {slots}")
        if batch < 1:
            raise UsageError(f"executor batch must be >= 1, got {batch}")
        self.slots, self.batch = slots, batch
        self.clock = clock  # deadlines, job seconds and batch waits (tests inject one)
        self.batch_wait_s = batch_wait_s  # how long a partial batch waits for more jobs of its key
        self._queued_at: dict[str, float] = {}
        self.gpus = list(gpus) if gpus is not None else None
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.grace_s, self.tick_s = grace_s, tick_s
        self.sandbox_limits = sandbox_limits or SandboxLimits()
        self._queue: deque[Job] = deque()
        self._runs: dict[str, _Run] = {}
        self._done: list[tuple[str, Result]] = []
        self._free_gpus = list(self.gpus or [])
        self._gpu_cursor = 0
        self._cv = threading.Condition()
        self._closed = False
        self.started_count = 0   # jobs launched; with `finished_count`, lets tests check slot accounting
        self.finished_count = 0
        self._thread = threading.Thread(target=self._monitor, name="aira-local-executor", daemon=True)
        self._thread.start()

    # -- the Executor API (called from the orchestrator's thread) ---------------------------------

    def submit(self, job: Job) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("executor is shut down")
            if job.id in self._runs or any(j.id == job.id for j in self._queue):
                raise UsageError(f"job id {job.id!r} is already queued or running")
            self._queue.append(job)
            self._queued_at[job.id] = self.clock()
            self._cv.notify_all()

    def poll(self, timeout: float = 0.0) -> list[tuple[str, Result]]:
        end = time.monotonic() + max(0.0, timeout)
        with self._cv:
            while not self._done and not self._closed:
                left = end - time.monotonic()
                if left <= 0 or (not self._runs and not self._queue):
                    break
                self._cv.wait(left)
            done, self._done = self._done, []
        return done

    @property
    def capacity(self) -> int:
        """Jobs worth keeping submitted so that every slot can take a full batch."""
        return self.slots * self.batch

    def running(self) -> int:
        with self._cv:
            return sum(len(r.members or [r.job]) for r in self._runs.values())

    def queued(self) -> int:
        with self._cv:
            return len(self._queue)

    def shutdown(self) -> None:
        """Kill everything running, drop the queue, stop the monitor."""
        with self._cv:
            self._closed = True
            self._queue.clear()
            runs = list(self._runs.values())
            for run in runs:
                run.proc.kill()
            self._cv.notify_all()
        self._thread.join(timeout=10)
        for run in runs:
            run.proc.poll()
            run.proc.cleanup()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # -- the monitor thread ---------------------------------------------------------------------

    def _monitor(self) -> None:
        while True:
            with self._cv:
                if self._closed:
                    return
                self._start_queued()
                finished = self._check_runs()
                if finished:
                    self._done.extend(finished)
                    self._cv.notify_all()
                self._cv.wait(self.tick_s)

    def _take_gpus(self, n: int) -> list[int] | None:
        """n free GPUs, round robin from where the last job started; None when not enough are free."""
        if self.gpus is None:
            return []
        if len(self._free_gpus) < n:
            return None
        order = sorted(self._free_gpus, key=lambda g: (self.gpus.index(g) - self._gpu_cursor) % len(self.gpus))
        taken = order[:n]
        for g in taken:
            self._free_gpus.remove(g)
        if taken:
            self._gpu_cursor = (self.gpus.index(taken[-1]) + 1) % len(self.gpus)
        return taken

    def _start_queued(self) -> None:
        # First job that fits: a GPU job waiting for devices does not hold back CPU jobs behind it.
        for job in list(self._queue):
            if len(self._runs) >= self.slots:
                return
            if self.gpus is not None and job.gpus > len(self.gpus):
                self._queue.remove(job)
                self._done.append((job.id, Result(
                    status=Status.INVALID,
                    error=f"job needs {job.gpus} GPUs, the executor has {len(self.gpus)}")))
                continue
            if job not in self._queue:  # taken into an earlier batch of this pass
                continue
            batchable = self.batch > 1 and job.batch_key and job.batch_fn and not job.sandbox
            if batchable:
                same = sum(o.batch_key == job.batch_key and o.gpus == job.gpus for o in self._queue)
                waited = self.clock() - self._queued_at.get(job.id, 0.0)
                if same < self.batch and waited < self.batch_wait_s:
                    continue  # the submitter may be adding the rest of the batch
            gpus = self._take_gpus(job.gpus)
            if gpus is None:
                continue
            self._queue.remove(job)
            members = [job]
            if batchable:
                for other in list(self._queue):
                    if len(members) >= self.batch:
                        break
                    if other.batch_key == job.batch_key and other.gpus == job.gpus:
                        self._queue.remove(other)
                        members.append(other)
            for m in members:
                self._queued_at.pop(m.id, None)
            try:
                self._runs[job.id] = self._launch(job, gpus, members)
                self.started_count += len(members)
            except (OSError, UsageError) as e:
                self._free_gpus.extend(gpus)
                for m in members:
                    self._done.append((m.id, Result(status=Status.CRASHED, error=f"could not start: {e}")))

    def _launch(self, job: Job, gpus: list[int], members: list[Job] | None = None) -> _Run:
        if members and len(members) > 1:
            return self._launch_batch(members, gpus)
        name = safe_name(job.id)
        log_path = (self.log_dir / f"{name}.log").resolve()
        log_path.write_bytes(b"")
        cuda = ",".join(map(str, gpus)) if self.gpus is not None else None
        if job.sandbox:
            workdir = Path(job.workdir or self.log_dir / f"{name}.work").resolve()
            workdir.mkdir(parents=True, exist_ok=True)
            job_path, result_path = workdir / "job.json", workdir / "result.json"
        else:
            job_path = (self.log_dir / f"{name}.job.json").resolve()
            result_path = (self.log_dir / f"{name}.result.json").resolve()
        result_path.unlink(missing_ok=True)
        job_path.write_text(json.dumps(job.to_dict()))
        argv = [sys.executable, "-m", "aira.agents.executors.worker", str(job_path), str(result_path)]
        if job.sandbox:
            limits = SandboxLimits(**{**self.sandbox_limits.__dict__, "timeout_s": job.timeout_s,
                                      "mem_mb": job.mem_limit_mb or self.sandbox_limits.mem_mb})
            extra = {"CUDA_VISIBLE_DEVICES": cuda} if cuda is not None else None
            # Inputs the job may read, copied read-only into workdir/data (a Job field once types.py has it).
            readonly = getattr(job, "readonly_paths", None) or ()
            proc: GroupProcess = SandboxProcess(argv, workdir=workdir, limits=limits, stdout_path=log_path,
                                                extra_env=extra, readonly_paths=readonly)
        else:
            proc = GroupProcess(argv, env=worker_env(cuda), cwd=job.workdir, stdout_path=log_path)
        return _Run(job=job, proc=proc, log_path=log_path, result_path=result_path, gpus=gpus,
                    started=self.clock(), deadline=self.clock() + job.timeout_s)

    def _launch_batch(self, members: list[Job], gpus: list[int]) -> _Run:
        job = members[0]
        name = f"{safe_name(job.id)}+{len(members) - 1}"
        log_path = (self.log_dir / f"{name}.log").resolve()
        log_path.write_bytes(b"")
        job_path = (self.log_dir / f"{name}.job.json").resolve()
        result_path = (self.log_dir / f"{name}.result.json").resolve()
        result_path.unlink(missing_ok=True)
        job_path.write_text(json.dumps({"batch": [m.to_dict() for m in members]}))
        argv = [sys.executable, "-m", "aira.agents.executors.worker", str(job_path), str(result_path)]
        cuda = ",".join(map(str, gpus)) if self.gpus is not None else None
        proc = GroupProcess(argv, env=worker_env(cuda), cwd=job.workdir, stdout_path=log_path)
        # the batch may take as long as its jobs one after the other
        return _Run(job=job, proc=proc, log_path=log_path, result_path=result_path, gpus=gpus,
                    started=self.clock(), deadline=self.clock() + sum(m.timeout_s for m in members),
                    members=members)

    def _check_runs(self) -> list[tuple[str, Result]]:
        now = self.clock()
        finished = []
        for job_id, run in list(self._runs.items()):
            if run.proc.poll() is not None:
                run.proc.cleanup()  # orphans left in its group (or, sandboxed, under its uid)
                del self._runs[job_id]  # the one place a slot is freed
                self._free_gpus.extend(run.gpus)
                if run.members:
                    self.finished_count += len(run.members)
                    finished.extend(self._batch_results(run))
                else:
                    self.finished_count += 1
                    finished.append((job_id, self._result(run)))
            elif run.term_at is None and now >= run.deadline:
                run.reason, run.term_at = "timed-out", now
                run.proc.terminate()
            elif run.term_at is not None and now >= run.term_at + self.grace_s:
                run.proc.kill()
        return finished

    def _batch_results(self, run: _Run) -> list[tuple[str, Result]]:
        """One Result per job of a batch: each its own, or the batch's failure for all of them."""
        results = None if run.reason == "timed-out" else read_batch_result(run.result_path)
        if results is not None and all(m.id in results for m in run.members):
            out = []
            for m in run.members:
                r = results[m.id]
                r.log_path = str(run.log_path)
                out.append((m.id, r))
            return out
        failed = self._result(run)  # why the process ended without results (timeout, memory, crash)
        return [(m.id, Result(status=failed.status, seconds=failed.seconds / len(run.members),
                              log_path=failed.log_path,
                              error=f"in a batch of {len(run.members)} jobs: {failed.error}"))
                for m in run.members]

    def _result(self, run: _Run) -> Result:
        job, proc = run.job, run.proc
        seconds = self.clock() - run.started
        tail = log_tail(run.log_path)
        if run.reason == "timed-out":
            return Result(status=Status.TIMED_OUT, seconds=seconds, log_path=str(run.log_path),
                          error=f"wall-clock limit of {job.timeout_s:g}s reached; killed the job's "
                                f"process group\n{tail}".rstrip())
        result = read_result(run.result_path)
        if result is not None:
            result.log_path = str(run.log_path)
            if result.status == Status.CRASHED and tail:
                result.error = tail  # the log ends with the whole traceback, and what came before it
            return result
        # No result file: the process died before writing one.
        how = describe_exit(proc.returncode)
        if job.sandbox:
            status, violation = classify(proc.returncode, timed_out=False, stderr=tail)
            status = Status.CRASHED if status == Status.OK else status
            error = f"{violation or 'crashed'} ({how})"
        elif any(h in tail for h in _MEMORY_HINTS) or proc.returncode == -9:
            limit = f"mem_limit_mb={job.mem_limit_mb}" if job.mem_limit_mb else "no mem limit set"
            status, error = Status.KILLED, f"memory limit ({how}; {limit})"
        else:
            status, error = Status.CRASHED, f"worker {how} without a result"
        return Result(status=status, seconds=seconds, log_path=str(run.log_path),
                      error=f"{error}\n{tail}".rstrip())
