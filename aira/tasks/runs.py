"""Start or resume a search run named by its task (a registered name or a task folder).

The orchestrator (aira.agents, a layer below the tasks) runs a Task object it is handed; this module, in
the tasks layer, resolves the run config's task name into that object first. `start_or_resume` is the
flow every verb that starts or continues a search shares. Commands and library users call these; a caller
that built its Task already may pass it, or call the orchestrator directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aira.agents import orchestrator
from aira.agents.base import Executor, Task
from aira.agents.budget import Budget
from aira.agents.runfolder import RunConfig, RunSummary, check_run_folder, load_config
from aira.tasks.registry import get_task

RUN_RELATIVE = ("secret_dir",)  # task options naming a place in the run folder: stored relative to it


def run_task_kwargs(task_kwargs: dict, run_dir: str | Path) -> dict:
    """A stored config's task options with the run-relative ones (RUN_RELATIVE) resolved against `run_dir`,
    so a moved run folder keeps them; an absolute path (runs of earlier versions) is kept as it is."""
    return {k: str(Path(run_dir).resolve() / v) if k in RUN_RELATIVE and isinstance(v, str) else v
            for k, v in task_kwargs.items()}


def _task(config: RunConfig, run_dir: str | Path) -> Task:
    return get_task(config.task, **run_task_kwargs(config.task_kwargs, run_dir))


def run(config: RunConfig, *, task: Task | None = None, executor: Executor | None = None, **hooks) -> RunSummary:
    """A fresh run in `config.out` of `task`, or of the task `config.task` names."""
    return orchestrator.run(config, task=task or _task(config, config.out), executor=executor,
                            **hooks)


def resume(run_dir: str | Path, *, task: Task | None = None, executor: Executor | None = None,
           budget: Budget | str | None = None, add: Budget | str | None = None, quiet: bool | None = None,
           **hooks) -> RunSummary:
    """Continue a run; its task is rebuilt from the stored config unless given."""
    if task is None:
        config = load_config(run_dir)
        task = _task(config, run_dir)
    return orchestrator.resume(run_dir, task=task, executor=executor, budget=budget, add=add, quiet=quiet, **hooks)


def start_or_resume(
    out: str | Path, *, resume: bool, new_config: Callable[[], RunConfig] | None = None,
    make_task: Callable[[RunConfig], Task] | None = None,
    make_executor: Callable[[RunConfig, Task], Executor] | None = None, check_folder: bool = True,
    budget: Budget | str | None = None, add: Budget | str | None = None, quiet: bool | None = None,
    notes: dict | None = None, listeners: Callable[[RunConfig, Task], list] | None = None,
) -> tuple[RunSummary, RunConfig, Task]:
    """The one start/resume flow of the verbs that run a search: a fresh run of `new_config()` in `out`, or
    the run already there continued with its stored config (the stored settings win; `budget`, `add` and
    `quiet` are the only ones a resume may change).

    `new_config` is called only for a fresh run, after the folder check, so a verb's own checks of its flags
    come after "this folder already holds a run". `make_task` builds the task from the config (default: the
    registered task `config.task` names) and may refuse it with a UsageError; `make_executor` overrides the
    executor the config names. `check_folder=False` is for verbs without a --resume flag: the orchestrator
    then refuses a used folder itself, pointing at `aira runs resume`. Returns the summary, the config the
    run used and its task (for the caller's report)."""
    if check_folder:
        check_run_folder(out, resume=resume)
    if resume:
        config = load_config(out)
    elif new_config is None:
        raise TypeError("start_or_resume: a fresh run needs new_config")
    else:
        config = new_config()
    task = make_task(config) if make_task else _task(config, out)
    executor = make_executor(config, task) if make_executor else None
    hooks = {"listeners": lambda: listeners(config, task)} if listeners else {}
    if resume:
        summary = orchestrator.resume(out, task=task, executor=executor, budget=budget, add=add, quiet=quiet,
                                      **hooks)
    else:
        summary = orchestrator.run(config, task=task, executor=executor, notes=notes, **hooks)
    return summary, config, task
