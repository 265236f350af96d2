"""The one job loop: tags come back with their results, unknown ids are dropped, the executor is stopped."""

import pytest

from aira.agents.base import Executor
from aira.agents.jobs import JobLoop, run_jobs
from aira.agents.types import Job, Result, Status


class FakeExecutor(Executor):
    """Finishes jobs in reverse order of submission, two per poll; reports one stray id."""

    slots, capacity = 2, 6

    def __init__(self):
        self.queue, self.stopped, self.strays = [], False, 1

    def submit(self, job):
        self.queue.append(job)

    def poll(self, timeout=0.0):
        out = [(j.id, Result(status=Status.OK, metric=float(j.kwargs["x"]))) for j in self.queue[-2:][::-1]]
        self.queue = self.queue[:-2]
        if self.strays:
            self.strays -= 1
            out.append(("nobody", Result(status=Status.OK)))
        return out

    def shutdown(self):
        self.stopped = True


def test_run_jobs_hands_back_every_result_with_its_tag_and_stops_the_executor():
    ex = FakeExecutor()
    seen = []
    run_jobs(ex, [(Job(id=f"j{i}", fn="m:f", kwargs={"x": i}), f"tag{i}") for i in range(5)],
             lambda job, tag, r: seen.append((job.id, tag, r.metric)), poll_s=0)
    assert sorted(seen) == [(f"j{i}", f"tag{i}", float(i)) for i in range(5)]
    assert seen[0] == ("j4", "tag4", 4.0) and ex.stopped


def test_a_failing_callback_still_stops_the_executor():
    ex = FakeExecutor()

    def boom(job, tag, r):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(ex, [(Job(id="a", fn="m:f", kwargs={"x": 1}), None)], boom, poll_s=0)
    assert ex.stopped


def test_job_loop_counts_what_is_in_flight_and_knows_the_capacity():
    loop = JobLoop(FakeExecutor())
    assert loop.capacity == 6
    for i in range(3):
        loop.submit(Job(id=f"j{i}", fn="m:f", kwargs={"x": i}), tag=i)
    assert len(loop) == 3 and sorted(loop.tags()) == [0, 1, 2]
    got = loop.drain()
    assert [(j.id, t) for j, t, _ in got] == [("j2", 2), ("j1", 1)] and len(loop) == 1
