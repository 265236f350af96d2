"""The one job loop: every caller that evaluates through an executor (the orchestrator's search, compose
fidelity, halving, scaling, verify) submits Jobs here and takes (job, tag, result) back as they finish.

`JobLoop` is the dynamic form (submit while results come in, as a search does); `run_jobs` the static one
(a list of jobs, a callback per result, as a measurement does). Both keep the executor's batches full:
`capacity` is slots x batch for an executor that trains several jobs as one (`LocalExecutor(batch=K)`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aira.agents.base import Executor
from aira.agents.types import Job, Result


class JobLoop:
    def __init__(self, executor: Executor):
        self.executor = executor
        self._inflight: dict[str, tuple[Job, Any]] = {}

    @property
    def capacity(self) -> int:
        """Jobs worth keeping submitted: every slot busy, with a full batch where the executor batches."""
        return max(1, int(getattr(self.executor, "capacity", None) or getattr(self.executor, "slots", 1) or 1))

    def submit(self, job: Job, tag: Any = None) -> None:
        self._inflight[job.id] = (job, tag)
        self.executor.submit(job)

    def drain(self, timeout: float = 0.0) -> list[tuple[Job, Any, Result]]:
        """The jobs finished since the last call (waiting up to `timeout` for one); results for ids this loop
        did not submit (a duplicate, or another segment's) are dropped."""
        out = []
        for job_id, result in self.executor.poll(timeout):
            entry = self._inflight.pop(job_id, None)
            if entry is not None:
                out.append((entry[0], entry[1], result))
        return out

    def tags(self) -> list[Any]:
        return [tag for _, tag in self._inflight.values()]

    def __len__(self) -> int:
        return len(self._inflight)

    def close(self) -> None:
        """Kill what still runs and stop the executor."""
        self.executor.shutdown()

    def __enter__(self) -> JobLoop:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_jobs(executor: Executor, jobs: Iterable[tuple[Job, Any]],
             on_result: Callable[[Job, Any, Result], None], *, poll_s: float = 1.0) -> None:
    """Submit every (job, tag), call `on_result(job, tag, result)` as each finishes, and stop the executor at
    the end, or on an exception or Ctrl-C (what is still running is killed; what finished was handed over)."""
    with JobLoop(executor) as loop:
        for job, tag in jobs:
            loop.submit(job, tag)
        while len(loop):
            for job, tag, result in loop.drain(poll_s):
                on_result(job, tag, result)
