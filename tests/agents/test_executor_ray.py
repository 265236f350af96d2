"""RayExecutor end to end on a local Ray instance: results, crash, timeout, slots."""

from __future__ import annotations

import time

import pytest

from aira.agents.types import Job, Status

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'aira[ray]')")

P = "aira.agents.executors.probes"


@pytest.mark.slow  # starting a local Ray instance alone takes 10-20 s on 2 shared cores
def test_ray_end_to_end(tmp_path):
    from aira.agents.executors import make_executor

    if ray.is_initialized():
        ray.shutdown()
    ex = make_executor("ray", slots=2, log_dir=tmp_path, grace_s=0.5,
                      init_kwargs={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False})
    try:
        ex.submit(Job(id="ok", fn=f"{P}:sleep", kwargs={"seconds": 0.2, "metric": 3.0}))
        ex.submit(Job(id="crash", fn=f"{P}:crash", kwargs={"message": "on ray"}))
        ex.submit(Job(id="hang", fn=f"{P}:sleep", kwargs={"seconds": 60}, timeout_s=1.0))
        assert ex.running() == 2 and ex.queued() == 1  # slots bound what is in flight
        out: dict = {}
        end = time.monotonic() + 60
        while len(out) < 3 and time.monotonic() < end:
            out.update(ex.poll(timeout=1.0))
        assert out["ok"].status == Status.OK and out["ok"].metric == 3.0
        assert out["crash"].status == Status.CRASHED and "RuntimeError: on ray" in out["crash"].error
        assert out["hang"].status == Status.TIMED_OUT and out["hang"].seconds >= 1.0
        assert (tmp_path / "ok.log").exists()
    finally:
        ex.shutdown()
    assert not ray.is_initialized()
