"""`aira design eval|run lra-<task>`: the LRA tasks' side of the design verb (aira/commands/design.py).

    aira design eval lra-listops --file attention.py [--preset smoke|cpu|gpu] [--setting ...] [--json]
    aira design run  lra-listops --agents greedy:offline --budget 20m --workers 2 --out runs/lra1

`eval` scores one file through the same sandbox and evaluator as a run (the full-softmax baseline
without --file); `run` runs agents, prints the leaderboard and writes `lra_report.md` in the run folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aira.errors import UsageError
from aira.tasks.files import proposal_from_file

# Flags of the shared design parser that only autoresearch understands.
_NOT_LRA = {"data": "--data", "time_budget": "--time-budget", "cache_dir": "--cache-dir",
            "literature": "--literature"}


def _task_kwargs(args) -> dict:
    for attr, flag in _NOT_LRA.items():
        if getattr(args, attr, None):
            raise UsageError(f"{flag} is not an LRA option (LRA trains a fixed number of steps on "
                             f"{args.task}'s data; see --preset and --data-dir)")
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is not a folder")
    kw = {"preset": args.preset or "cpu", "setting": getattr(args, "setting", None) or "fixed",
          "allow_unsafe": bool(args.unsafe_no_sandbox)}
    if args.data_dir:
        kw["data_dir"] = str(Path(args.data_dir).resolve())
    return kw


def eval_command(args) -> int:
    from aira.tasks.lra.task import EDITABLE, LraTask, evaluate_job

    task = LraTask(args.task, **_task_kwargs(args))
    proposal = proposal_from_file(task, args.file, EDITABLE)
    job = task.make_job(proposal, seed=args.seed, job_id="eval")
    if not args.json:
        print(f"aira: training {args.file or 'the full-softmax baseline'} on {task.name} (preset "
              f"{task.preset.name}, {task.setting} setting) in the sandbox...", file=sys.stderr)
    result = evaluate_job(**job.kwargs | {"work_dir": None, "echo": True})
    if args.json:
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


def run_command(args) -> int:
    from aira.agents.journal import Journal
    from aira.agents.orchestrator import RunConfig, check_run_folder, load_config, resume, run
    from aira.agents.stats import TaskInfo, format_report
    from aira.tasks.lra.report import write_report
    from aira.tasks.lra.task import LraTask

    out = Path(args.out)
    check_run_folder(out, resume=args.resume)
    if args.resume:  # the stored settings win: the run keeps its task, agents and evaluator
        config = load_config(out)
        if config.task != args.task:
            raise UsageError(f"{out} is a run of {config.task}, not {args.task}")
        task = LraTask(config.task, **config.task_kwargs)
        summary = resume(out, task=task, budget=args.budget or None, quiet=args.quiet)
    else:
        kwargs = _task_kwargs(args) | {"work_dir": str((out / "work").resolve())}
        config = RunConfig(task=args.task, task_kwargs=kwargs, agents=args.agents, executor=args.executor,
                           slots=args.workers, budget=args.budget, seed=args.seed,
                           noise_seeds=args.noise_seeds, improve_margin=args.improve_margin, out=str(out),
                           quiet=args.quiet)
        task = LraTask(args.task, **kwargs)
        summary = run(config, task=task)
    report = write_report(out)
    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    print(format_report(nodes, TaskInfo.of(task)))
    if task.standin:
        print("note: STAND-IN data or sizes: scores are not comparable with published LRA numbers")
    print(f"aira: run folder {out} (stop: {summary.stop_reason}); report section {report}", file=sys.stderr)
    return 0
