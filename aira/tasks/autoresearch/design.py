"""The autoresearch task's side of `aira design eval|run autoresearch` (the flags are read in
aira/commands/design.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aira.tasks.files import proposal_from_file

if TYPE_CHECKING:
    from aira.agents.runfolder import RunConfig


def evaluate_file(file: str | None, *, task_kwargs: dict, seed: int = 0, as_json: bool = False) -> int:
    """Train `file` (None: the baseline train.py) with AutoresearchTask(`task_kwargs`) and print the result;
    0 when it scored."""
    from aira.tasks.autoresearch.evaluate import evaluate_script
    from aira.tasks.autoresearch.task import EDITABLE, AutoresearchTask

    task = AutoresearchTask(**task_kwargs)
    proposal = proposal_from_file(task, file, EDITABLE)
    job = task.make_job(proposal, seed=seed, job_id="eval")
    # on stderr, so that --json's stdout stays one JSON document: a gpu evaluation is silent for minutes
    print(f"aira: training {file or 'the baseline train.py'} (preset {task.preset.name}, "
          f"{task.preset.time_budget_s:g} s budget, killed after {task.preset.kill_after_s:g} s) in the sandbox...",
          file=sys.stderr)
    result = evaluate_script(**job.kwargs, echo=True)
    if as_json:
        print(json.dumps(result, indent=1, default=str))
    else:
        for key in ("status", "val_bpb", "selection_metric", "error"):
            if key in result:
                print(f"{'heldout_bpb' if key == 'selection_metric' else key}: {result[key]}")
        for key, value in result.items():
            if key not in ("status", "val_bpb", "selection_metric", "error", "metric"):
                print(f"{key}: {value}")
    return 0 if result.get("status") == "ok" else 1


def run_search(out: Path, *, resume: bool, new_config: Callable[[], RunConfig] | None = None,
               budget: str | None = None, quiet: bool = False, listeners=None) -> int:
    """Start (from `new_config()`) or resume the agent run in `out` with the keep/reset git loop attached,
    then print the final report."""
    from aira.agents.executors import make_executor
    from aira.tasks.autoresearch.loop import ExperimentLoop, LoopExecutor
    from aira.tasks.autoresearch.report import final_report
    from aira.tasks.autoresearch.task import AutoresearchTask
    from aira.tasks.runs import start_or_resume

    loop: ExperimentLoop | None = None

    def loop_executor(config: RunConfig, task: AutoresearchTask) -> LoopExecutor:
        nonlocal loop
        loop = ExperimentLoop(out, task.baseline, margin=config.improve_margin)
        loop.sync_journal()  # catch up with anything journaled while the loop was not attached
        kw = {"log_dir": str(out / "jobs")} if config.executor == "local" else {}
        return LoopExecutor(make_executor(config.executor, config.slots, **kw), loop)

    summary, _, _ = start_or_resume(out, resume=resume, new_config=new_config,
                                    make_task=lambda config: AutoresearchTask(**config.task_kwargs),
                                    make_executor=loop_executor, budget=budget, quiet=quiet,
                                    listeners=listeners)
    loop.sync_journal()
    print(final_report(out))
    print(f"aira: run folder {out} (stop: {summary.stop_reason}); results.tsv, progress.png, report.md, "
          f"experiments/ (git)", file=sys.stderr)
    return 0
