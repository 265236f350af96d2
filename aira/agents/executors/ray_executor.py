"""The same job interface on Ray: each job is a Ray task that runs the usual worker subprocess.

Inside the task a one-slot `LocalExecutor` does the work, so every limit holds exactly as on one machine
(own process group, wall-clock kill of the whole tree, memory limit, sandbox for `sandbox=True`). Ray
only places the task: `num_gpus=job.gpus` (Ray then sets CUDA_VISIBLE_DEVICES, which the worker
inherits) and one CPU. At most `slots` tasks are in flight; the rest wait in our queue, so `submit()`
never blocks. Logs are written under `log_dir` on the node that ran the job.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from pathlib import Path
from typing import Any

from aira.agents.base import Executor
from aira.agents.types import Job, Result, Status
from aira.errors import UsageError


def run_one(job_dict: dict, log_dir: str, grace_s: float = 2.0) -> dict:
    """Run one job to completion with a one-slot LocalExecutor (the body of the Ray task)."""
    from aira.agents.executors.local import LocalExecutor

    job = Job.from_dict(job_dict)
    with LocalExecutor(slots=1, gpus=None, log_dir=log_dir, grace_s=grace_s) as ex:
        ex.submit(job)
        while True:
            for job_id, result in ex.poll(timeout=1.0):
                if job_id == job.id:
                    return result.to_dict()


def _ray():
    try:
        import ray
    except ImportError as e:
        raise UsageError("the ray executor needs Ray: pip install 'aira[ray]'") from e
    return ray


@functools.cache
def _remote_run_one():
    return _ray().remote(max_retries=0)(run_one)


class RayExecutor(Executor):
    """Jobs as Ray tasks. `address`: a cluster ("auto", "ray://host:10001"); None starts a local Ray."""

    def __init__(self, slots: int = 1, address: str | None = None, log_dir: str | Path = "runs/jobs",
                 *, grace_s: float = 2.0, init_kwargs: dict[str, Any] | None = None):
        if slots < 1:
            raise UsageError(f"executor slots must be >= 1, got {slots}")
        ray = _ray()
        self.slots = slots
        self.log_dir = str(Path(log_dir).resolve())
        self.grace_s = grace_s
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address, **(init_kwargs or {}))
        self._queue: deque[Job] = deque()
        self._inflight: dict[Any, Job] = {}  # ObjectRef -> job

    def submit(self, job: Job) -> None:
        if any(j.id == job.id for j in [*self._queue, *self._inflight.values()]):
            raise UsageError(f"job id {job.id!r} is already queued or running")
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        remote = _remote_run_one()
        while self._queue and len(self._inflight) < self.slots:
            job = self._queue.popleft()
            ref = remote.options(num_cpus=1, num_gpus=job.gpus, name=f"aira-job-{job.id}").remote(
                job.to_dict(), self.log_dir, self.grace_s)
            self._inflight[ref] = job

    def poll(self, timeout: float = 0.0) -> list[tuple[str, Result]]:
        ray = _ray()
        done: list[tuple[str, Result]] = []
        end = time.monotonic() + max(0.0, timeout)
        while self._inflight:
            wait_s = max(0.0, end - time.monotonic()) if not done else 0.0
            ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=wait_s)
            if not ready:
                break
            for ref in ready:
                job = self._inflight.pop(ref)
                try:
                    result = Result.from_dict(ray.get(ref))
                except Exception as e:  # noqa: BLE001 - the task or its node died: a failed job
                    last = (str(e).strip().splitlines() or [""])[-1]
                    result = Result(status=Status.CRASHED, error=f"ray task failed: {type(e).__name__}: {last}")
                done.append((job.id, result))
            self._dispatch()
        return done

    def running(self) -> int:
        return len(self._inflight)

    def queued(self) -> int:
        return len(self._queue)

    def shutdown(self) -> None:
        ray = _ray()
        self._queue.clear()
        for ref in list(self._inflight):
            # Not force: the task gets KeyboardInterrupt and its LocalExecutor kills the job's group;
            # force would kill the Ray worker and orphan the job (it runs in its own session).
            ray.cancel(ref, force=False)
        self._inflight.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
