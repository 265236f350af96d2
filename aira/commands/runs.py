"""`aira runs`: list, inspect, start and resume agent runs (run folders written by the orchestrator).

    aira runs ls [--root runs] [--json]
    aira runs show RUN [--json] [--top 10]
    aira runs start --task NAME|DIR [--task-arg KEY=VALUE ...] --agents SPEC... [--budget 2h,100evals]
                    [--workers N] [--executor local] --out DIR
    aira runs resume RUN [--budget ...] [--add 10m]
    aira runs export RUN --to tensorboard|mlflow [--out DIR]
    aira runs pause RUN | continue RUN | stop RUN [--kill] | add-budget RUN 10m     steer a live run
    aira runs guide RUN "TEXT" | --file NOTE.md | --show                            the guidance LLM agents read

`show` opens the journal read-only, so it works while the run is still writing. Steering writes files
into the run folder (aira.agents.steering) that the live run reads between jobs.
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
    track_flags(start)
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
    track_flags(res, resume=True)
    res.set_defaults(func=_resume)

    for verb, text in (("pause", ("a live run starts no new job (in-flight ones finish and are recorded); its "
                                  "budget's clock stops until `continue`")),
                       ("continue", "a paused live run starts jobs again"),
                       ("stop", ("a live run stops as a spent budget would: no new job, in-flight ones waited "
                                 "for (--kill: killed), every finished result kept, the summary written"))):
        v = verbs.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        v.add_argument("run", help="run folder of a live run")
        if verb == "stop":
            v.add_argument("--kill", action="store_true", help="kill in-flight jobs instead of waiting for them")
        v.set_defaults(func=_control, action=verb)
    ab = verbs.add_parser("add-budget", help="extend a live run's budget (a stopped run: `resume --add`)")
    ab.add_argument("run", help="run folder of a live run")
    ab.add_argument("budget", help="what to add: 10m, 20evals, $5 or a comma list")
    ab.set_defaults(func=_control, action="add-budget")

    g = verbs.add_parser("guide", help="set the guidance note LLM agents read at their next step",
                         description="Write RUN/guidance.md (atomically): the LLM operators of the run include it "
                         "in their next prompts, and the journal records each version and the nodes that read it. "
                         "Offline agents cannot read prose. An editor works too: save RUN/guidance.md.")
    g.add_argument("run", help="run folder")
    g.add_argument("text", nargs="?", default=None, help="the note (or --file)")
    g.add_argument("--file", default=None, help="read the note from this file")
    g.add_argument("--clear", action="store_true", help="withdraw the guidance (an empty note)")
    g.add_argument("--show", action="store_true", help="print each guidance version and who read it")
    g.set_defaults(func=_guide)


def track_flags(p, *, resume: bool = False) -> None:
    """--track and --track-uri, shared by the verbs that run a search (`compose run`, `runs start|resume`)."""
    if resume:
        p.add_argument("--track", action="append", default=None, metavar="TRACKER",
                       help="add experiment tracking to a run that had none (a run that had it continues it)")
    else:
        p.add_argument("--track", action="append", default=None, metavar="TRACKER",
                       help="log every evaluation live and the summary at the end to mlflow, tensorboard or wandb "
                            "(repeatable or a comma list); mlflow and tensorboard write under the run folder "
                            "unless --track-uri says otherwise, wandb runs offline unless you configured it")
    p.add_argument("--track-uri", default=None, metavar="URI",
                   help="mlflow: its tracking URI (default: a file store at RUN/mlruns); tensorboard: the log "
                        "folder (default: RUN/tensorboard)")


def _run_dir(path: str) -> Path:
    d = Path(path)
    if not (d / "config.json").is_file() or not (d / "journal.sqlite").is_file():
        raise UsageError(f"no run at {path} (expected config.json and journal.sqlite there)")
    return d


def _load(run: str):
    """(folder, config dict, task info, nodes); UsageError for a missing or corrupt run."""
    from aira.agents.journal import Journal
    from aira.agents.runfolder import read_config
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


def tracking_listeners(args, out: str | Path, *, resume: bool):
    """The `listeners` factory for start_or_resume from --track / --track-uri (and, on a resume, the trackers
    RUN/tracking.json records); None when the run is not tracked. Bad flags or a missing package: UsageError
    here, before the run starts."""
    from aira.report.trackers import check_stored, make_trackers, parse_track

    kinds = parse_track(getattr(args, "track", None))
    have = check_stored(out) if resume else []
    if not kinds and not have:
        return None
    uri = getattr(args, "track_uri", None)

    def listeners(config, task) -> list:
        trackers = make_trackers(out, kinds, uri=uri, config=config, lower_is_better=task.lower_is_better)
        if trackers and not config.quiet:
            print(f"aira: tracking to {', '.join(t.name for t in trackers)} (ids in {Path(out) / 'tracking.json'})",
                  file=sys.stderr)
        return trackers

    return listeners


def _live(run: str) -> Path:
    from aira.agents.journal import writer_pid

    d = _run_dir(run)
    if writer_pid(d) is None:
        raise UsageError(f"{d} is not running (no process holds its writer.lock): `aira runs resume {d}` continues "
                         f"it, with `--add BUDGET` for more budget")
    return d


def _control(args) -> int:
    from aira.agents.steering import Request, check_request, write_request

    check_request(args.action, getattr(args, "budget", ""))  # bad input first: one line, exit 2
    d = _live(args.run)
    req = Request(action=args.action, budget=getattr(args, "budget", "") or "", kill=getattr(args, "kill", False))
    write_request(d, req)
    print(f"queued: {args.action}{' ' + req.budget if req.budget else ''} for {d} (request {req.id}); the run "
          f"applies it between jobs and says so on its console and in its journal")
    return 0


def _guide(args) -> int:
    from aira.agents.journal import Journal
    from aira.agents.journal import writer_pid
    from aira.agents.steering import GUIDANCE_FILE, check_guidance, guidance_log, write_guidance
    from aira.userfiles import read_text

    d = _run_dir(args.run)
    given = sum(x is not None and x is not False for x in (args.text, args.file, args.clear or None,
                                                           args.show or None))
    if given != 1:
        raise UsageError("give exactly one of: the note as TEXT, --file NOTE.md, --clear or --show")
    if args.show:
        with Journal(d, readonly=True) as j:
            log = guidance_log(j)
        current = d / GUIDANCE_FILE
        for g in log:
            print(f"v{g['version']} sha256 {g['sha256'][:12]} ({g.get('bytes', 0)} bytes): read by "
                  f"{', '.join(g['read_by']) or 'no node yet'}; not read by {len(g['not_read_by'])} node(s) "
                  f"(offline agents, policy-chosen proposals)")
        if not log:
            print("no guidance version journaled yet")
        if current.is_file():
            print(f"{current}:\n{current.read_text(errors='replace')}")
        return 0
    text = "" if args.clear else read_text(args.file, "--file") if args.file else args.text
    check_guidance(text)
    path = write_guidance(d, text)
    print(f"wrote {path} ({len(text.encode('utf-8'))} bytes); "
          + ("a live run reads it before its next step" if writer_pid(d) else
             "the run is not live: it is read when the run resumes"))
    return 0


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
    from aira.agents.runfolder import RunConfig
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

    listeners = tracking_listeners(args, args.out, resume=False)
    # no --resume flag here: the orchestrator refuses a used folder, pointing at `aira runs resume`
    summary, _, _ = start_or_resume(args.out, resume=False, new_config=new_config, check_folder=False,
                                    listeners=listeners)
    _print_summary(summary)
    return 0


def _resume(args) -> int:
    from aira.agents.runfolder import read_config
    from aira.commands.design import DESIGN_TASKS, run_design
    from aira.tasks.runs import start_or_resume

    d = _run_dir(args.run)
    task = read_config(d)["task"]
    if task in DESIGN_TASKS and getattr(args, "add", None):
        raise UsageError(f"--add extends a search run's budget; {d} is a {task} run: give --budget instead")
    listeners = tracking_listeners(args, d, resume=True)
    if task in DESIGN_TASKS:
        # a design run has more than the journal to reattach (autoresearch's keep/reset git loop, the LRA
        # report): its own verb resumes it, with the same stored settings
        print(f"aira: {d} is a {task} run: resuming it as `aira design run {task} --out {d} --resume`",
              file=sys.stderr)
        return run_design(task, d, resume=True, budget=args.budget or None, quiet=args.quiet, listeners=listeners)
    summary, _, _ = start_or_resume(args.run, resume=True, budget=args.budget, add=getattr(args, "add", None),
                                    quiet=args.quiet or None, listeners=listeners)
    _print_summary(summary)
    return 0
