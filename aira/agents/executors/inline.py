"""Runs jobs in this process, one at a time, when `poll()` is called: for tests and debugging.

No isolation and no limits (timeouts, memory, sandbox are ignored): a job that hangs hangs the caller,
one that crashes the interpreter crashes it. Results are the same as the worker's.
"""

from __future__ import annotations

from collections import deque

from aira.agents.base import Executor
from aira.agents.executors.worker import run_job
from aira.agents.types import Job, Result


class InlineExecutor(Executor):
    slots = 1

    def __init__(self) -> None:
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def poll(self, timeout: float = 0.0) -> list[tuple[str, Result]]:
        """Run every queued job now (so `timeout` never matters) and return their results."""
        done = []
        while self._queue:
            job = self._queue.popleft()
            done.append((job.id, run_job(job)))
        return done

    def running(self) -> int:
        return 0

    def queued(self) -> int:
        return len(self._queue)

    def shutdown(self) -> None:
        self._queue.clear()
