"""The LRA tasks' side of `aira design eval|run lra-<task>` (the flags are read in aira/commands/design.py).

`evaluate_file` scores one file through the same sandbox and evaluator as a run (the full-softmax baseline
without a file); `run_search` runs agents, prints the leaderboard and writes `lra_report.md` in the run
folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aira.errors import UsageError
from aira.tasks.files import proposal_from_file

if TYPE_CHECKING:
    from aira.agents.runfolder import RunConfig


def evaluate_file(task_name: str, file: str | None, *, task_kwargs: dict, seed: int = 0,
                  as_json: bool = False) -> int:
    """Train `file` (None: the baseline) on `task_name` with LraTask(`task_kwargs`) and print the result;
    0 when it scored."""
    from aira.tasks.lra.task import EDITABLE, LraTask, evaluate_job

    task = LraTask(task_name, **task_kwargs)
    proposal = proposal_from_file(task, file, EDITABLE)
    job = task.make_job(proposal, seed=seed, job_id="eval")
    if not as_json:
        print(f"aira: training {file or 'the full-softmax baseline'} on {task.name} (preset "
              f"{task.preset.name}, {task.setting} setting) in the sandbox...", file=sys.stderr)
    result = evaluate_job(**job.kwargs | {"work_dir": None, "echo": True})
    if as_json:
        print(json.dumps(result, indent=1, default=str))
    else:
        shown = ("status", "val_accuracy", "test_accuracy", "error")
        for key in shown:
            if key in result and result[key] != "":
                print(f"{key}: {result[key]}")
        for key, value in result.items():
            if key not in shown and key not in ("metric", "selection_metric", "traceback"):
                print(f"{key}: {value}")
        if result.get("standin"):
            print("note: STAND-IN data or sizes: not comparable with published LRA numbers")
    return 0 if result.get("status") == "ok" else 1


def run_search(out: Path, *, task_name: str, resume: bool, new_config: Callable[[], RunConfig] | None = None,
               budget: str | None = None, quiet: bool = False, listeners=None) -> int:
    """Start (from `new_config()`) or resume the agent run of `task_name` in `out`, then print its
    leaderboard and write its report section."""
    from aira.agents.journal import Journal
    from aira.agents.stats import TaskInfo, format_report
    from aira.tasks.lra.report import write_report
    from aira.tasks.lra.task import LraTask
    from aira.tasks.runs import start_or_resume

    def make_task(config: RunConfig) -> LraTask:
        if config.task != task_name:  # on resume: the stored settings win, the task among them
            raise UsageError(f"{out} is a run of {config.task}, not {task_name}")
        return LraTask(config.task, **config.task_kwargs)

    summary, _, task = start_or_resume(out, resume=resume, new_config=new_config, make_task=make_task,
                                       budget=budget, quiet=quiet, listeners=listeners)
    report = write_report(out)
    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    print(format_report(nodes, TaskInfo.of(task)))
    if task.standin:
        print("note: STAND-IN data or sizes: scores are not comparable with published LRA numbers")
    print(f"aira: run folder {out} (stop: {summary.stop_reason}); report section {report}", file=sys.stderr)
    return 0
