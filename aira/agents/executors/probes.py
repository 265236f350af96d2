"""Tiny job functions that exercise an executor: sleep, crash, spawn, allocate, report the env.

Used by the executor tests and the Ray check; also handy to smoke-test a new
cluster (`Job(fn="aira.agents.executors.probes:env_report", ...)`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def sleep(seconds: float = 0.0, metric: float = 1.0) -> dict:
    time.sleep(seconds)
    return {"status": "ok", "metric": metric, "pid": os.getpid()}


def sleep_batch(jobs: list[dict]) -> list[dict]:
    """A batch of `sleep` jobs in one process: sleeps once (the longest), one result each."""
    time.sleep(max(j.get("seconds", 0.0) for j in jobs))
    return [{"status": "ok", "metric": j.get("metric", 1.0), "pid": os.getpid(), "batch": len(jobs)} for j in jobs]


def crash_batch(jobs: list[dict]) -> list[dict]:
    raise RuntimeError(f"batch of {len(jobs)} failed")


def crash(message: str = "boom", noise_lines: int = 0) -> dict:
    for i in range(noise_lines):
        print(f"training step {i}", flush=True)
    raise RuntimeError(message)


def spawn_grandchild(pid_file: str, sleep_s: float = 60.0) -> dict:
    """Start a child that starts a sleeping grandchild (its pid goes to `pid_file`), then wait."""
    code = ("import os, subprocess, sys, time\n"
            f"g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep({sleep_s})'])\n"
            f"open({pid_file!r}, 'w').write(str(g.pid))\n"
            f"time.sleep({sleep_s})\n")
    subprocess.Popen([sys.executable, "-c", code])
    time.sleep(sleep_s)
    return {"status": "ok", "metric": 0.0}


def allocate(mb: int) -> dict:
    """Touch `mb` megabytes (one bytearray): a MemoryError under a smaller RLIMIT_AS."""
    block = bytearray(mb * 1024 * 1024)
    return {"status": "ok", "metric": float(len(block) // (1024 * 1024))}


def env_report(names: list[str] | None = None) -> dict:
    names = names or ["CUDA_VISIBLE_DEVICES"]
    return {"status": "ok", "metric": 0.0, "env": {n: os.environ.get(n) for n in names},
            "uid": os.getuid(), "cwd": os.getcwd()}


def nan_metric(call_it_diverged: bool = True) -> dict:
    return {"status": "diverged" if call_it_diverged else "ok", "metric": float("nan")}


def exit_now(code: int = 3) -> dict:
    """Leave without a result, as a segfaulting extension or a stray os._exit would."""
    os._exit(code)


def cuda_report() -> dict:
    """How many CUDA devices this job sees (checks CUDA_VISIBLE_DEVICES on a GPU machine)."""
    import torch

    return {"status": "ok", "metric": float(torch.cuda.device_count())}


def parent_death_signal() -> dict:
    """The signal the kernel holds for this job's parent's death (worker.watch_parent sets it)."""
    from aira.agents.executors.worker import parent_death_signal as held

    return {"status": "ok", "metric": float(held()), "pid": os.getpid()}


def mark_and_sleep(path: str, seconds: float = 0.0, metric: float = 1.0) -> dict:
    """Write `path` (the job has started: its worker is set up), then sleep."""
    Path(path).write_text(str(os.getpid()))
    return sleep(seconds, metric)
