"""How many CPU cores this process may use, and how evaluations share them.

A proxy evaluation is a small model whose matrix products are too small to gain from a second thread on a
shared machine (measured on 2 shared cores: 2 threads were 3-12x slower than 1 under load), so the default
is one torch thread per worker and one worker per usable core. "Usable" is the smallest of:
- the cores this process may run on (`os.sched_getaffinity`: taskset, cpusets, Slurm),
- the container's CPU quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
- `os.cpu_count()`.
`OMP_NUM_THREADS`, when set, is the threads per worker (torch's own convention), so fewer workers fit.
Explicit `workers` / `threads` always win; a plan with more threads than cores in total says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from aira.errors import UsageError


def _cgroup_quota(root: Path) -> float | None:
    """CPUs the cgroup quota allows (fractional), or None when there is no quota."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores(*, cgroup_root: str | Path = "/sys/fs/cgroup") -> tuple[int, str]:
    """(cores, what limited them): the affinity mask, the cgroup quota and cpu_count, whichever is least."""
    counts = {"cpu_count": os.cpu_count() or 1}
    if hasattr(os, "sched_getaffinity"):
        counts["affinity"] = len(os.sched_getaffinity(0))
    quota = _cgroup_quota(Path(cgroup_root))
    if quota is not None:
        counts["cgroup quota"] = max(1, math.floor(quota))
    n = min(counts.values())
    why = [k for k, v in counts.items() if v == n and k != "cpu_count"]
    return n, why[0] if why else "cpu_count"


def _env_threads() -> int | None:
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw.split(",")[0])
    except ValueError:
        return None
    return n if n >= 1 else None


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    threads: int        # torch threads per worker
    cores: int          # usable cores
    limited_by: str     # what set `cores` (affinity, cgroup quota, cpu_count)

    @property
    def oversubscribed(self) -> bool:
        return self.workers * self.threads > self.cores

    def describe(self) -> str:
        s = (f"{self.workers} worker{'s' if self.workers != 1 else ''} x {self.threads} thread"
             f"{'s' if self.threads != 1 else ''} on {self.cores} usable core{'s' if self.cores != 1 else ''} "
             f"({self.limited_by})")
        if self.oversubscribed:
            s += f"; oversubscribed: {self.workers * self.threads} threads on {self.cores} cores run slower each"
        return s


def plan_workers(workers: int | None = None, threads: int | None = None, *,
                 cores: tuple[int, str] | None = None) -> WorkerPlan:
    """Workers and threads per worker for parallel evaluations (see the module docstring)."""
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    n, why = cores or usable_cores()
    if threads is None:
        threads = _env_threads() or 1
        if workers is not None:  # a thread budget set by OMP_NUM_THREADS still fits the workers asked for
            threads = max(1, min(threads, n // workers))
    if workers is None:
        workers = max(1, n // threads)
    return WorkerPlan(workers=workers, threads=threads, cores=n, limited_by=why)
