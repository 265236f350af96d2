"""`aira design`: AIRA-Design tasks, where agents write code that a frozen harness scores.

    aira design eval TASK [--file F] [--preset P] [--json] ...   score one file (the baseline by default)
    aira design run  TASK --agents SPEC... --budget B --out DIR   an agent run on the task

A task is looked up by name in DESIGN_TASKS: a module with `eval_command(args) -> int` and
`run_command(args) -> int`. The flags below are shared; a task reads those it understands.
"""

from __future__ import annotations

import importlib

from aira.errors import UsageError

DESIGN_TASKS = {
    "autoresearch": "aira.tasks.autoresearch.cli",
    **{f"lra-{t}": "aira.tasks.lra.cli" for t in ("listops", "text", "retrieval", "image", "pathfinder")},
}


def _task_module(name: str):
    if name not in DESIGN_TASKS:
        raise UsageError(f"unknown design task {name!r}: use one of {', '.join(sorted(DESIGN_TASKS))}")
    return importlib.import_module(DESIGN_TASKS[name])


def _common(p) -> None:
    p.add_argument("task", help=f"design task: {', '.join(sorted(DESIGN_TASKS))}")
    p.add_argument("--preset", default=None,
                   help="size / budget preset of the task (autoresearch: test | cpu (default) | gpu; "
                        "lra-*: smoke | cpu (default) | gpu)")
    p.add_argument("--setting", choices=("fixed", "configurable"), default=None,
                   help="lra-*: fixed (default: attention.py only) or configurable (attention.py may set "
                        "model and optimiser SETTINGS within the preset's caps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None,
                   help="corpus name or path (autoresearch: shakespeare | pycode | PATH)")
    p.add_argument("--data-dir", default=None,
                   help="autoresearch: folder of parquet shards with a `text` column; lra-*: LRA's released "
                        "files for the task (see docs/lra.md)")
    p.add_argument("--time-budget", type=float, default=None, help="training seconds (default: the preset's)")
    p.add_argument("--cache-dir", default=None, help="tokenized data cache (default: ~/.cache/aira/data)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run agent code without isolation where no namespace is available")


def register(sub) -> None:
    p = sub.add_parser("design", help="AIRA-Design: agents write code scored by a frozen harness",
                       description="AIRA-Design tasks: score one file, or run agents on a task.")
    verbs = p.add_subparsers(dest="design_verb", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    ev = verbs.add_parser("eval", help="score one file through the task's sandbox and evaluator")
    _common(ev)
    ev.add_argument("--file", default=None, help="the file to score (default: the task's baseline)")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.set_defaults(func=lambda args: _task_module(args.task).eval_command(args))

    run = verbs.add_parser("run", help="run agents on a design task")
    _common(run)
    run.add_argument("--agents", nargs="+", default=["greedy:offline"], metavar="SPEC",
                     help="agent specs POLICY:LLM[?k=v&...] (default: greedy:offline)")
    run.add_argument("--budget", default="", help="e.g. 2h,100evals,$5,stop=kill")
    run.add_argument("--workers", type=int, default=1, help="executor slots (default: 1)")
    run.add_argument("--executor", default="local", help="local | inline | ray (default: local)")
    run.add_argument("--noise-seeds", type=int, default=3, help="baseline re-runs for the noise floor")
    run.add_argument("--improve-margin", default="noise", help="'noise' (one std of the floor) or a number")
    run.add_argument("--literature", default=None, metavar="DIR",
                     help="folder of papers / notes (.txt, .md) the operators may search")
    run.add_argument("--out", required=True, help="run folder to create (or to continue, with --resume)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out with its stored settings (--budget replaces its budget)")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.set_defaults(func=_run)


def _run(args) -> int:
    from aira.userfiles import check_out_dir

    task = _task_module(args.task)
    check_out_dir(args.out, "--out")  # a file in its place is refused before any data is staged
    return task.run_command(args)
