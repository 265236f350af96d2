"""`aira design`: AIRA-Design tasks, where agents write code that a frozen harness scores.

    aira design eval TASK [--file F] [--preset P] [--json] ...   score one file (the baseline by default)
    aira design run  TASK --agents SPEC... --budget B --out DIR   an agent run on the task
    aira design promote RUN [--node ID] --as X [--to FILE]   an LRA run's mechanism as Compose primitive X

The flags below are shared; this module reads them (a task refuses those it does not understand) and calls
the task's library functions, `evaluate_file` and `run_search` in aira/tasks/<task>/design.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aira.commands.runs import track_flags, tracking_listeners
from aira.errors import UsageError

if TYPE_CHECKING:
    from aira.agents.runfolder import RunConfig

DESIGN_TASKS = ("autoresearch", *(f"lra-{t}" for t in ("listops", "text", "retrieval", "image", "pathfinder")))

# Flags of the shared design parser that only autoresearch understands.
_NOT_LRA = {"data": "--data", "time_budget": "--time-budget", "cache_dir": "--cache-dir",
            "literature": "--literature"}


def _check_task(name: str) -> None:
    if name not in DESIGN_TASKS:
        raise UsageError(f"unknown design task {name!r}: use one of {', '.join(sorted(DESIGN_TASKS))}")


def _lra_kwargs(args) -> dict:
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


def _autoresearch_kwargs(args) -> dict:
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
    return kw


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
    ev.set_defaults(func=_eval)

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
    track_flags(run)
    run.set_defaults(func=_run)

    pr = verbs.add_parser("promote", help="make an LRA design run's mechanism a Compose primitive",
                          description="Write a design run's best mechanism (by the hidden test score, among the "
                          "nodes that pass the Compose contract: causal with causal=True, shapes, finite values, "
                          "caps) or the node --node as FILE, with FILE.origin.json naming the run, node and score; "
                          "then `aira compose run --primitive X=FILE` adds it to a search space.")
    pr.add_argument("run", help="an `aira design run lra-...` folder")
    pr.add_argument("--node", default=None, help="the node to promote (default: the best that passes)")
    pr.add_argument("--as", dest="letter", required=True, metavar="X",
                    help="the primitive code it will have: an upper-case letter no built-in uses")
    pr.add_argument("--to", default=None, metavar="FILE", help="where to write it (default: RUN/promoted-X.py)")
    pr.add_argument("--proxy", default="mad",
                    help="the Compose proxy whose sizes the contract is checked at (default: mad)")
    pr.set_defaults(func=_promote)


def _eval(args) -> int:
    _check_task(args.task)
    if args.task == "autoresearch":
        from aira.tasks.autoresearch.design import evaluate_file

        return evaluate_file(args.file, task_kwargs=_autoresearch_kwargs(args), seed=args.seed, as_json=args.json)
    from aira.tasks.lra.design import evaluate_file

    return evaluate_file(args.task, args.file, task_kwargs=_lra_kwargs(args), seed=args.seed, as_json=args.json)


def _run(args) -> int:
    from aira.agents.runfolder import RunConfig
    from aira.userfiles import check_out_dir

    _check_task(args.task)
    check_out_dir(args.out, "--out")  # a file in its place is refused before any data is staged
    out = Path(args.out)

    def new_config() -> RunConfig:  # called only for a fresh run: a resumed one keeps its stored settings
        if args.task == "autoresearch":
            kwargs = _autoresearch_kwargs(args) | {"literature": args.literature}
        else:
            kwargs = _lra_kwargs(args)
        kwargs["work_dir"] = str((out / "work").resolve())
        return RunConfig(task=args.task, task_kwargs=kwargs, agents=args.agents, executor=args.executor,
                         slots=args.workers, budget=args.budget, seed=args.seed, noise_seeds=args.noise_seeds,
                         improve_margin=args.improve_margin, out=str(out), quiet=args.quiet)

    listeners = tracking_listeners(args, out, resume=args.resume)
    return run_design(args.task, out, resume=args.resume, new_config=new_config, budget=args.budget or None,
                      quiet=args.quiet, listeners=listeners)


def _promote(args) -> int:
    import sys

    from aira.commands.compose import promote_primitives
    from aira.models.mechanism import describe_origin, sha256
    from aira.tasks.promoted import (
        Promotion,
        check_letter,
        contract_failure,
        node_source,
        proxy_model_config,
        write_promoted,
    )
    from aira.tasks.proxies import pick_proxy
    from aira.userfiles import check_out_dir

    run = Path(args.run)
    if not run.is_dir():
        raise UsageError(f"{args.run} is not a design run folder")
    to = Path(args.to) if args.to else run / f"promoted-{args.letter}.py"
    if to.is_dir():
        raise UsageError(f"--to {to} is a folder; give a file name")
    check_out_dir(to.parent, "--to")
    if args.node is None:
        promo = promote_primitives([f"{args.letter}={run}"], args.proxy)[0]
    else:
        origin, source = node_source(run, args.node)
        promo = Promotion(check_letter(args.letter), source, sha256(source), origin)
        why = contract_failure(promo, proxy_model_config(pick_proxy(args.proxy, "auto")[0]))
        if why is not None:
            raise UsageError(f"--node {args.node}: fails the Compose contract: {why}")
    write_promoted(promo, to)
    print(f"aira: wrote {to} ({describe_origin(promo.origin)}); use it with "
          f"`aira compose run --primitive {promo.letter}={to} ...`", file=sys.stderr)
    return 0


def run_design(task: str, out: Path, *, resume: bool, new_config: Callable[[], RunConfig] | None = None,
               budget: str | None = None, quiet: bool = False, listeners=None) -> int:
    """Start or resume a design task's agent run in `out` (`aira runs resume` of a design run comes here)."""
    _check_task(task)
    if task == "autoresearch":
        from aira.tasks.autoresearch.design import run_search

        return run_search(out, resume=resume, new_config=new_config, budget=budget, quiet=quiet, listeners=listeners)
    from aira.tasks.lra.design import run_search

    return run_search(out, task_name=task, resume=resume, new_config=new_config, budget=budget, quiet=quiet,
                      listeners=listeners)
