"""`aira design eval|run autoresearch`: the task's side of the design verb (aira/commands/design.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aira.errors import UsageError
from aira.tasks.files import proposal_from_file


def _task_kwargs(args, **extra) -> dict:
    kw = {"preset": args.preset or "cpu", "time_budget_s": args.time_budget, "cache_dir": args.cache_dir,
          "allow_unsafe": args.unsafe_no_sandbox}
    if args.data_dir:
        if not Path(args.data_dir).is_dir():
            raise UsageError(f"--data-dir {args.data_dir} is not a folder")
        kw["data_dir"] = args.data_dir
    elif args.data:
        from aira.data.text import list_corpora

        name = args.data.strip()
        if name.partition(":")[0] not in list_corpora() and not Path(name).expanduser().exists():
            # refused here, not after the sandbox has started (load_corpus says the same)
            raise UsageError(f"unknown corpus {args.data!r}: use {', '.join(list_corpora())}, or a path to a "
                             ".txt/.md/.parquet file or a folder of them")
        kw["data"] = args.data
    return {**kw, **extra}


def eval_command(args) -> int:
    from aira.tasks.autoresearch.evaluate import evaluate_script
    from aira.tasks.autoresearch.task import EDITABLE, AutoresearchTask

    task = AutoresearchTask(**_task_kwargs(args))
    proposal = proposal_from_file(task, args.file, EDITABLE)
    job = task.make_job(proposal, seed=args.seed, job_id="eval")
    # on stderr, so that --json's stdout stays one JSON document: a gpu evaluation is silent for minutes
    print(f"aira: training {args.file or 'the baseline train.py'} (preset {task.preset.name}, "
          f"{task.preset.time_budget_s:g} s budget, killed after {task.preset.kill_after_s:g} s) in the sandbox...",
          file=sys.stderr)
    result = evaluate_script(**job.kwargs, echo=True)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        for key in ("status", "val_bpb", "selection_metric", "error"):
            if key in result:
                print(f"{'heldout_bpb' if key == 'selection_metric' else key}: {result[key]}")
        for key, value in result.items():
            if key not in ("status", "val_bpb", "selection_metric", "error", "metric"):
                print(f"{key}: {value}")
    return 0 if result.get("status") == "ok" else 1


def run_command(args) -> int:
    from aira.agents.executors import make_executor
    from aira.agents.orchestrator import RunConfig, check_run_folder, load_config, resume, run
    from aira.tasks.autoresearch.loop import ExperimentLoop, LoopExecutor
    from aira.tasks.autoresearch.report import final_report
    from aira.tasks.autoresearch.task import AutoresearchTask

    out = Path(args.out)
    check_run_folder(out, resume=args.resume)
    if args.resume:  # the stored settings win: the run must keep its task, agents and evaluator
        config = load_config(out)
        kwargs = config.task_kwargs
    else:
        kwargs = _task_kwargs(args, literature=args.literature, work_dir=str((out / "work").resolve()))
        config = RunConfig(task="autoresearch", task_kwargs=kwargs, agents=args.agents,
                           executor=args.executor, slots=args.workers, budget=args.budget, seed=args.seed,
                           noise_seeds=args.noise_seeds, improve_margin=args.improve_margin, out=str(out),
                           quiet=args.quiet)
    task = AutoresearchTask(**kwargs)
    loop = ExperimentLoop(out, task.baseline, margin=config.improve_margin)
    loop.sync_journal()  # catch up with anything journaled while the loop was not attached
    kw = {"log_dir": str(out / "jobs")} if config.executor == "local" else {}
    executor = LoopExecutor(make_executor(config.executor, config.slots, **kw), loop)
    if args.resume:
        summary = resume(out, task=task, executor=executor, budget=args.budget or None, quiet=args.quiet)
    else:
        summary = run(config, task=task, executor=executor)
    loop.sync_journal()
    print(final_report(out))
    print(f"aira: run folder {out} (stop: {summary.stop_reason}); results.tsv, progress.png, report.md, "
          f"experiments/ (git)", file=sys.stderr)
    return 0
