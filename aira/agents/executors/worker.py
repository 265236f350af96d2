"""Runs one job in this process: `python -m aira.agents.executors.worker JOB_JSON RESULT_JSON`.

Every executor ends here (the local pool and Ray in a subprocess, the inline executor in-process):
import the job's "package.module:function", call it with the job's kwargs, and write the Result as
JSON atomically (tmp file + rename) so the harness never reads half a file.

- An exception becomes status "crashed"; the error keeps the traceback's last lines, and the whole
  traceback goes to stderr (the job's log).
- A `MemoryError` (usually the RLIMIT_AS set here from `job.mem_limit_mb`) becomes "killed" with
  error "memory limit ...".
- NaN metrics are the function's call: it returns status "diverged" when it decides so.
- The job ends itself when the process that started it is gone (`watch_parent`): jobs lead their own
  sessions, so a harness killed with SIGKILL (or by the OOM killer) would otherwise leave them running.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aira.agents.types import Job, Result, Status

TRACEBACK_LINES = 12


def load_fn(spec: str) -> Callable[..., Any]:
    """'package.module:function' -> the function (attribute paths like 'mod:Class.method' work)."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"job fn {spec!r} is not 'package.module:function'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"job fn {spec!r} is not callable")
    return obj


def limit_memory(mem_mb: int | None) -> None:
    """Cap this process's address space (soft and hard, so the job cannot raise it again)."""
    if mem_mb:
        n = int(mem_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (n, n))


_orphaned = threading.Event()


def _end_group() -> None:
    """SIGKILL this job's process group, this process included, where it leads one (the local pool
    starts every job as a session leader; elsewhere, e.g. under Ray, the group is not the job's)."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)


# Linux tells a process at once that its parent died when asked with prctl(PR_SET_PDEATHSIG). It signals
# when the parent *thread* that started it ends (the local executor starts jobs from its monitor thread),
# so the signal only wakes the watcher, which checks that the parent process is really gone; polling
# getppid() stays as the fallback (other systems, or a signal lost to a race at start).
PDEATHSIG = signal.SIGUSR2
_PR_SET_PDEATHSIG, _PR_GET_PDEATHSIG = 1, 2
_parent_gone = threading.Event()


def _prctl(option: int, arg) -> int | None:
    """prctl(2) through the C library; None where there is none (not Linux) or the call fails."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return None if libc.prctl(option, arg, 0, 0, 0) != 0 else 0
    except (OSError, AttributeError):
        return None


def parent_death_signal() -> int:
    """The signal this process gets when its parent dies (0: none), as the kernel holds it."""
    import ctypes

    sig = ctypes.c_int(0)
    return sig.value if _prctl(_PR_GET_PDEATHSIG, ctypes.byref(sig)) == 0 else 0


def watch_parent(interval_s: float = 0.25, grace_s: float = 3.0) -> None:
    """Stop this job when its parent dies: an interrupt first (so `finally` blocks, the sandbox's kill of
    its uid among them, run, and `main` then ends the job's process group), SIGKILL after `grace_s`.
    The kernel's parent-death signal wakes the watcher at once where there is one (Linux); it polls
    every `interval_s` otherwise."""
    parent = os.getppid()
    if parent <= 1:
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(PDEATHSIG, lambda signum, frame: _parent_gone.set())
        _prctl(_PR_SET_PDEATHSIG, int(PDEATHSIG))

    def loop() -> None:
        while os.getppid() == parent:  # also true after a signal sent because the parent *thread* ended
            _parent_gone.wait(interval_s)
            _parent_gone.clear()
        _orphaned.set()
        sys.stderr.write(f"worker: the process that started this job ({parent}) is gone; stopping the job\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(grace_s)
        _end_group()

    threading.Thread(target=loop, name="watch-parent", daemon=True).start()


def _tail(text: str, lines: int = TRACEBACK_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_job(job: Job) -> Result:
    """Call the job's function here and turn whatever happens into a Result (never raises)."""
    t0 = time.perf_counter()
    try:
        out = load_fn(job.fn)(**job.kwargs)
        if isinstance(out, Result):
            result = out
        elif isinstance(out, dict):
            result = Result.from_dict(out)
        else:
            raise TypeError(f"{job.fn} returned {type(out).__name__}, expected a dict for Result.from_dict")
    except MemoryError:
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        limit = f" (mem_limit_mb={job.mem_limit_mb})" if job.mem_limit_mb else ""
        result = Result(status=Status.KILLED, error=f"memory limit{limit}: MemoryError\n{_tail(tb, 4)}")
    except BaseException as e:  # noqa: BLE001 - a job's failure is data, SystemExit included
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        result = Result(status=Status.CRASHED, error=_tail(tb) or repr(e))
    if not result.seconds:
        result.seconds = time.perf_counter() - t0
    return result


def run_batch(jobs: list[Job]) -> dict[str, Result]:
    """Call the jobs' shared `batch_fn` once with their kwargs; one Result per job (never raises). A batch
    that fails fails each of its jobs with the same error."""
    t0 = time.perf_counter()
    try:
        outs = load_fn(jobs[0].batch_fn)([j.kwargs for j in jobs])
        if not isinstance(outs, list) or len(outs) != len(jobs):
            raise TypeError(f"{jobs[0].batch_fn} returned {type(outs).__name__}, expected a list of "
                            f"{len(jobs)} result dicts")
        results = {j.id: (o if isinstance(o, Result) else Result.from_dict(o)) for j, o in zip(jobs, outs)}
    except BaseException as e:  # noqa: BLE001 - a job's failure is data
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        status = Status.KILLED if isinstance(e, MemoryError) else Status.CRASHED
        results = {j.id: Result(status=status, error=_tail(tb) or repr(e)) for j in jobs}
    share = (time.perf_counter() - t0) / len(jobs)
    for r in results.values():
        r.seconds = r.seconds or share
    return results


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy / torch scalars and arrays
        return o.tolist()
    return str(o)


def _write_json(path: str | Path, obj: Any) -> None:
    """Write atomically: a reader sees no file or the whole file."""
    from aira.fileio import write_atomic

    write_atomic(path, json.dumps(obj, default=_jsonable), fsync=True)


def write_result(path: str | Path, result: Result) -> None:
    _write_json(path, result.to_dict())


def write_batch_result(path: str | Path, results: dict[str, Result]) -> None:
    _write_json(path, {"batch": {k: r.to_dict() for k, r in results.items()}})


def read_batch_result(path: str | Path) -> dict[str, Result] | None:
    try:
        with open(path) as f:
            return {k: Result.from_dict(d) for k, d in json.load(f)["batch"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def read_result(path: str | Path) -> Result | None:
    """The Result a worker wrote, or None when there is none (or it is not valid JSON)."""
    try:
        with open(path) as f:
            return Result.from_dict(json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.stderr.write("usage: python -m aira.agents.executors.worker JOB_JSON RESULT_JSON\n")
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    if "batch" in spec:  # several jobs, one process: {"batch": [job, ...]} -> {"batch": {id: result}}
        jobs = [Job.from_dict(d) for d in spec["batch"]]
        limit_memory(max((j.mem_limit_mb or 0) for j in jobs) or None)
        watch_parent()
        write_batch_result(argv[1], run_batch(jobs))
    else:
        job = Job.from_dict(spec)
        limit_memory(job.mem_limit_mb)
        watch_parent()
        write_result(argv[1], run_job(job))
    sys.stdout.flush()
    if _orphaned.is_set():
        _end_group()  # what the job started dies with it
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
