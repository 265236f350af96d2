"""Executors run `Job`s with hard limits and hand back `Result`s (see `aira.agents.base.Executor`).

- "local": a pool of subprocess slots on this machine (the default), sandbox for agent code;
- "ray": the same jobs as Ray tasks on a cluster (or a local Ray instance);
- "inline": in this process, no limits (tests, debugging).
"""

from __future__ import annotations

from typing import Any

from aira.agents.base import Executor
from aira.errors import UsageError

EXECUTORS = ("local", "ray", "inline")


def make_executor(name: str, slots: int = 1, **kw: Any) -> Executor:
    """An executor by name. `kw` goes to its constructor (gpus, log_dir, address, ...)."""
    if name == "local":
        from aira.agents.executors.local import LocalExecutor

        return LocalExecutor(slots=slots, **kw)
    if name == "ray":
        from aira.agents.executors.ray_executor import RayExecutor

        return RayExecutor(slots=slots, **kw)
    if name == "inline":
        from aira.agents.executors.inline import InlineExecutor

        return InlineExecutor(**kw)
    raise UsageError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
