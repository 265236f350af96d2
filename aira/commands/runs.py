"""`aira runs`: list, inspect, start and resume agent runs (run folders written by the orchestrator).

    aira runs ls [--root runs] [--json]
    aira runs show RUN [--json] [--top 10]
    aira runs start --task NAME|DIR [--task-arg KEY=VALUE ...] --agents SPEC... [--budget 2h,100evals]
                    [--workers N] [--executor local] --out DIR
    aira runs resume RUN [--budget ...]
    aira runs export RUN --to tensorboard|mlflow [--out DIR]

`show` opens the journal read-only, so it works while the run is still writing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aira.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="list, show, start and resume agent runs",
        description="List, show, start and resume agent runs.",
    )
    verbs = p.add_subparsers(dest="runs_verb", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    ls = verbs.add_parser("ls", help="list the runs under a folder")
    ls.add_argument("--root", default="runs", help="folder holding run folders (default: runs)")
    ls.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    ls.set_defaults(func=_ls)

    show = verbs.add_parser("show", help="noise floor, per-agent stats and leaderboard of a run")
    show.add_argument("run", help="run folder")
    show.add_argument("--json", action="store_true", help="print every node as JSON instead")
    show.add_argument("--top", type=int, default=10, help="leaderboard rows (default: 10)")
    show.set_defaults(func=_show)

    start = verbs.add_parser("start", help="start a run of agents on a task")
    start.add_argument("--task", required=True, help="registered task name or task folder path")
    start.add_argument(
        "--task-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option (value read as JSON where it parses); repeatable",
    )
    start.add_argument(
        "--agents",
        nargs="+",
        default=["greedy:offline"],
        metavar="SPEC",
        help="agent specs POLICY:LLM[?k=v&...] (default: greedy:offline)",
    )
    start.add_argument("--budget", default="", help="e.g. 2h,100evals,$5,timeout=10m,stop=kill")
    start.add_argument("--workers", type=int, default=1, help="executor slots (default: 1)")
    start.add_argument("--executor", default="local", help="local | inline | ray (default: local)")
    start.add_argument("--seed", type=int, default=0)
    start.add_argument("--noise-seeds", type=int, default=3, help="reference evaluations (default: 3)")
    start.add_argument("--improve-margin", default="noise", help="'noise' (one std) or a number")
    start.add_argument("--shared-memory", action="store_true", help="operators see every agent's nodes")
    start.add_argument("--out", required=True, help="run folder to create")
    start.add_argument("--quiet", action="store_true", help="no progress line")
    start.set_defaults(func=_start)

    ex = verbs.add_parser("export", help="write a run's curves as TensorBoard event files or an MLflow file store")
    ex.add_argument("run", help="run folder")
    ex.add_argument("--to", required=True, choices=["tensorboard", "mlflow"], help="the tracker's format")
    ex.add_argument("--out", default=None, metavar="DIR",
                    help="folder to write into (default: RUN/tensorboard or RUN/mlflow)")
    ex.set_defaults(func=_export)

    res = verbs.add_parser("resume", help="continue a stopped or crashed run")
    res.add_argument("run", help="run folder")
    res.add_argument("--budget", default=None,
                     help="replace the stored budget; it counts the whole run, earlier segments included")
    res.add_argument("--add", default=None, metavar="BUDGET",
                     help="extend the stored budget, e.g. --add 10m or --add 20evals")
    res.add_argument("--quiet", action="store_true", help="no progress line")
    res.set_defaults(func=_resume)


def _run_dir(path: str) -> Path:
    d = Path(path)
    if not (d / "config.json").is_file() or not (d / "journal.sqlite").is_file():
        raise UsageError(f"no run at {path} (expected config.json and journal.sqlite there)")
    return d


def _load(run: str):
    """(folder, config dict, task info, nodes); UsageError for a missing or corrupt run."""
    from aira.agents.journal import Journal
    from aira.agents.orchestrator import read_config
    from aira.agents.stats import TaskInfo

    d = _run_dir(run)
    config = read_config(d)
    try:
        info = TaskInfo(**config.get("resolved", {}).get("task", {"name": config["task"]}))
    except (TypeError, AttributeError) as e:
        raise UsageError(f"{d / 'config.json'} has a bad resolved task ({e})") from None
    with Journal(d, readonly=True) as j:
        return d, config, info, j.nodes()


def _ls(args) -> int:
    root = Path(args.root)
    if not root.is_dir():
        raise UsageError(f"no runs folder at {root}")
    from aira.agents.stats import REFERENCE, TaskInfo, best_node

    rows, items = [], []
    for d in sorted(
        p for p in root.iterdir() if (p / "config.json").is_file() and (p / "journal.sqlite").is_file()
    ):
        try:
            _, config, info, nodes = _load(str(d))
        except UsageError as e:  # one bad folder must not hide the others
            print(f"aira: skipping {d}: {e}", file=sys.stderr)
            continue
        best = best_node([n for n in nodes if n.operator != REFERENCE], TaskInfo(**info.to_dict()))
        state = "finished" if (d / "summary.json").is_file() else "stopped or running"
        items.append({"run": d.name, "path": str(d), "task": info.name, "nodes": len(nodes),
                      "best": None if best is None else best.metric, "best_node": best and best.id, "state": state,
                      "agents": config.get("agents", [])})
        rows.append(
            f"{d.name:<24} {info.name:<20} {len(nodes):>6} "
            f"{'-' if best is None else format(best.metric, '.4g'):>9}  {state:<18} "
            f"{' '.join(config.get('agents', []))}"
        )
    if getattr(args, "json", False):
        print(json.dumps(items, indent=1))
        return 0
    print(f"{'run':<24} {'task':<20} {'nodes':>6} {'best':>9}  {'state':<18} agents")
    print("\n".join(rows) if rows else f"(no runs under {root})")
    return 0


def _show(args) -> int:
    from aira.agents.stats import agent_stats, format_report, noise_floor

    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    d, config, info, nodes = _load(args.run)
    if args.json:
        floor = noise_floor(nodes, info)
        out = {
            "run": str(d),
            "task": info.to_dict(),
            "noise_floor": floor and floor.to_dict(),
            "agents": [s.to_dict() for s in agent_stats(nodes, info, floor)],
            "nodes": [
                {
                    "id": n.id,
                    "parents": n.parents,
                    "agent": n.agent,
                    "operator": n.operator,
                    "proposal": n.proposal,
                    "idea": n.idea,
                    "status": n.status.value,
                    "metric": n.metric,
                    "selection_metric": n.selection_metric,
                    "metrics": n.metrics,
                    "error": n.error,
                    "seconds": n.seconds,
                    "cost_usd": n.cost_usd,
                    "llm": n.llm,
                    "input_tokens": n.input_tokens,
                    "output_tokens": n.output_tokens,
                    "debug_depth": n.debug_depth,
                }
                for n in nodes
            ],
        }
        print(json.dumps(out, indent=1, default=str))
    else:
        print(f"run {d}  agents: {' '.join(config.get('agents', []))}")
        print(format_report(nodes, info, top=args.top))
    return 0


def _parse_task_args(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"bad --task-arg {item!r}: use KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _print_summary(s) -> None:
    best = s.best
    print(
        f"stopped: {s.stop_reason}; {s.evaluations} evaluations, {s.nodes} nodes, "
        f"{s.elapsed_s:.0f}s, ${s.cost_usd:.2f}"
    )
    if best:
        sel = best["selection_metric"]
        print(
            f"best (by the selection split): {best['id']} {best['agent']} search {best['metric']:.4g} "
            f"selection {'-' if sel is None else format(sel, '.4g')}"
        )
    print(f"see: aira runs show {s.run_dir}")


def _export(args) -> int:
    from aira.report.tracking import export_run

    d = _run_dir(args.run)
    out = Path(args.out) if args.out else d / args.to
    try:
        path = export_run(d, args.to, out)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e}") from None
    how = f"tensorboard --logdir {out}" if args.to == "tensorboard" else f"mlflow ui --backend-store-uri {out / 'mlruns'}"
    print(f"exported: {path}  (open with: {how})")
    return 0


def _start(args) -> int:
    from aira.agents.orchestrator import RunConfig
    from aira.tasks.runs import start_or_resume
    from aira.userfiles import check_out_dir

    check_out_dir(args.out, "--out")

    def new_config() -> RunConfig:
        return RunConfig(
            task=args.task,
            task_kwargs=_parse_task_args(args.task_arg),
            agents=args.agents,
            executor=args.executor,
            slots=args.workers,
            budget=args.budget,
            seed=args.seed,
            noise_seeds=args.noise_seeds,
            improve_margin=args.improve_margin,
            shared_memory=args.shared_memory,
            out=args.out,
            quiet=args.quiet,
        )

    # no --resume flag here: the orchestrator refuses a used folder, pointing at `aira runs resume`
    summary, _, _ = start_or_resume(args.out, resume=False, new_config=new_config, check_folder=False)
    _print_summary(summary)
    return 0


def _resume(args) -> int:
    from aira.agents.orchestrator import read_config
    from aira.commands.design import DESIGN_TASKS, run_design
    from aira.tasks.runs import start_or_resume

    d = _run_dir(args.run)
    task = read_config(d)["task"]
    if task in DESIGN_TASKS and getattr(args, "add", None):
        raise UsageError(f"--add extends a search run's budget; {d} is a {task} run: give --budget instead")
    if task in DESIGN_TASKS:
        # a design run has more than the journal to reattach (autoresearch's keep/reset git loop, the LRA
        # report): its own verb resumes it, with the same stored settings
        print(f"aira: {d} is a {task} run: resuming it as `aira design run {task} --out {d} --resume`",
              file=sys.stderr)
        return run_design(task, d, resume=True, budget=args.budget or None, quiet=args.quiet)
    summary, _, _ = start_or_resume(args.run, resume=True, budget=args.budget, add=getattr(args, "add", None),
                                    quiet=args.quiet or None)
    _print_summary(summary)
    return 0
