"""Start or resume a search run named by its task (a registered name or a task folder).

The orchestrator (aira.agents, a layer below the tasks) runs a Task object it is handed; this module, in
the tasks layer, resolves the run config's task name into that object first. Commands and library users
call these; a caller that built its Task already may call the orchestrator directly.
"""

from __future__ import annotations

from pathlib import Path

from aira.agents import orchestrator
from aira.agents.base import Executor, Task
from aira.agents.budget import Budget
from aira.agents.orchestrator import RunConfig, RunSummary
from aira.tasks.registry import get_task


def run(config: RunConfig, *, task: Task | None = None, executor: Executor | None = None, **hooks) -> RunSummary:
    """A fresh run in `config.out` of `task`, or of the task `config.task` names."""
    return orchestrator.run(config, task=task or get_task(config.task, **config.task_kwargs), executor=executor,
                            **hooks)


def resume(run_dir: str | Path, *, task: Task | None = None, executor: Executor | None = None,
           budget: Budget | str | None = None, add: Budget | str | None = None, quiet: bool | None = None,
           **hooks) -> RunSummary:
    """Continue a run; its task is rebuilt from the stored config unless given."""
    if task is None:
        config = orchestrator.load_config(run_dir)
        task = get_task(config.task, **config.task_kwargs)
    return orchestrator.resume(run_dir, task=task, executor=executor, budget=budget, add=add, quiet=quiet, **hooks)
