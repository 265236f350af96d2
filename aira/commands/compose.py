"""`aira compose`: the AIRA-Compose pipeline.

    aira compose run --space attn-mlp --proxy mad --agents greedy:offline ... --budget 10m --out runs/c1 [--json]
    aira compose aggregate runs/c1 [--method n0|n1|n2|nall|best] [--clusters 5] [--json]
    aira compose extrapolate runs/c1 | --pattern P  --target 350M|1B|3B --strategy stack|stretch [--json]
    aira compose scaling --patterns P1,P2 --budgets C1,C2 --sizes 32,48,64
    aira compose fidelity --patterns calibration --proxy mad-cpu --fidelities small,large --seeds 2
    aira compose fidelity ... --fidelities small --reference runs/fid-large   ranked against a measured large run
    aira compose fidelity --show mad-cpu-large                  the figures of a finished run or shipped reference
    aira compose halving runs/c1 [--eta 3] [--rungs 2]     the best candidates, trained longer
    aira compose verify runs/c1 [--target small] [--budget TOKENS] [--seeds 3]   the winner against the
                                                           baselines, parameter-matched, on held-out text
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aira.commands.runs import track_flags, tracking_listeners
from aira.errors import UsageError
from aira.userfiles import check_out_dir, make_out_dir, read_text

DEFAULT_AGENTS = ["greedy:offline", "evolutionary:offline"]
CONTROLS = ["random:offline", "bo:offline", "baselines:offline"]
END_TARGET = "1B"  # a finished search's winner is extrapolated to this preset


def register(sub) -> None:
    p = sub.add_parser("compose", help="AIRA-Compose: search, aggregate and extrapolate layer patterns",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="compose_verb", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    r = verbs.add_parser("run", help="agentic search over layer patterns, with baselines and controls",
                         description="Search layer patterns with agents: every candidate is trained as a small "
                         "proxy model and scored by the harness; random search, Bayesian optimisation and "
                         "named baselines run beside the agents as controls. The run folder (--out) gets the "
                         "journal, the aggregated pattern and its 1B extrapolation; `aira report OUT` draws "
                         "it. The proxy's measured fidelity is printed first: read its warnings.")
    r.add_argument("--space", default="attn-mlp",
                   help="attn-mlp | attn-mlp-mamba | attn-mlp-deltanet | a comma list of primitives (default: attn-mlp, as in "
                        "`aira demo`)")
    r.add_argument("--proxy", default="mad",
                   help="mad | lm | mad-cpu | mad-gpu | lm-cpu | lm-gpu, or a proxy file FILE.json / FILE.toml "
                        "(docs/fidelity.md, 'Your own proxy'; default: mad)")
    r.add_argument("--primitive", action="append", default=[], metavar="X=SOURCE",
                   help="promote a mechanism to primitive X (an unused upper-case letter) and add it to the space: "
                        "SOURCE is an LRA attention.py (its contract, honouring causal=True) or an `aira design "
                        "run lra-...` folder (its best node that passes); checked for causality, shapes, finite "
                        "values and caps before the run (repeatable; docs/architecture.md, 'Promoted primitives')")
    r.add_argument("--layers", type=int, default=16, help="layers of every candidate pattern (default: 16)")
    r.add_argument("--agents", nargs="+", default=DEFAULT_AGENTS, metavar="SPEC",
                   help=f"agent specs POLICY:LLM (default: {' '.join(DEFAULT_AGENTS)})")
    r.add_argument("--no-controls", action="store_true",
                   help="do not add random search, Bayesian optimisation and the baselines")
    r.add_argument("--budget", default="10m,timeout=10m", help="e.g. 10m, 2h,200evals, $5 (default: 10m)")
    r.add_argument("--workers", type=int, default=None,
                   help="parallel evaluations (default: one per usable CPU core, or per GPU with a GPU proxy)")
    r.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (default: 1, or OMP_NUM_THREADS)")
    r.add_argument("--batch", type=int, default=1, metavar="K",
                   help="candidates a worker trains as one (stacked models; local executor; default: 1). "
                        "Scores agree with K=1 to float tolerance; `bench/throughput.py` measures the gain")
    r.add_argument("--executor", default="local",
                   help="where evaluations run: local (worker processes on this machine), ray (tasks on a Ray "
                        "cluster, see --ray-address) or inline (in this process, one at a time: debugging) "
                        "(default: local)")
    r.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --executor ray: the cluster to join, e.g. auto or ray://HOST:10001 (default: "
                        "start a local Ray)")
    r.add_argument("--seeds", type=int, default=None,
                   help="training seeds per candidate, the mean is the score (default: the proxy's)")
    r.add_argument("--noise-seeds", type=int, default=3,
                   help="seeds of the reference pattern trained first: their spread is the noise floor, the "
                        "margin below which two scores are a tie; with fewer than 3 the proxy's measured "
                        "noise is used where it has one (default: 3)")
    r.add_argument("--seed", type=int, default=0, help="seed of the agents and the reference (default: 0)")
    r.add_argument("--cache", default=None,
                   help="evaluation cache folder, shared across runs, or 'off' (default: $AIRA_CACHE, else "
                        "~/.cache/aira/evaluations; `aira cache info|clear`)")
    r.add_argument("--shared-memory", action="store_true", help="agents see each other's results")
    r.add_argument("--promote", default=None, metavar="K[:EVERY]",
                   help="multi-fidelity search: after every EVERY evaluations (default 10) and at the end, the best "
                        "K candidates by the hidden selection score are re-evaluated at the proxy's large fidelity "
                        "(4x width, 4x tokens, ~64x the cost; docs/fidelity.md); they count against the wall clock, "
                        "not --budget's evaluations, agents never see them, and the final pick ranks them first")
    r.add_argument("--out", default="runs/compose", help="run folder to create (default: runs/compose)")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    track_flags(r)
    r.add_argument("--json", action="store_true",
                   help="print one JSON object (summary, aggregate, extrapolation) on stdout; the rest on stderr")
    r.set_defaults(func=_run)

    a = verbs.add_parser("aggregate", help="Composer's N_c vote over a run's top candidates")
    a.add_argument("run", help="a Compose run folder")
    a.add_argument("--method", default="n0", help="n0 | n1 | n2 | nall | best (default: n0)")
    a.add_argument("--clusters", type=int, default=5, help="clusters of top candidates (default: 5)")
    a.add_argument("--prefix", default="", help="pin the first layers (e.g. A; default: none)")
    a.add_argument("--json", action="store_true", help="print the aggregation as JSON")
    a.set_defaults(func=_aggregate)

    e = verbs.add_parser("extrapolate", help="stack or stretch a pattern to 350M / 1B / 3B")
    e.add_argument("run", nargs="?", help="run folder (uses its aggregate.json, else its best pattern)")
    e.add_argument("--pattern", default=None, help="a pattern instead of a run's (default: the run's)")
    e.add_argument("--target", default="1B", help="350M | 1B | 3B (default: 1B)")
    e.add_argument("--strategy", default="stretch", help="stack | stretch (default: stretch)")
    e.add_argument("--out", default=None, help="JSON file (default: RUN/extrapolate-TARGET-STRATEGY.json)")
    e.add_argument("--json", action="store_true", help="print the extrapolation as JSON")
    e.set_defaults(func=_extrapolate)

    s = verbs.add_parser("scaling", help="isoFLOP study: compute-optimal frontiers per architecture")
    s.add_argument("--patterns", required=True, help="comma list of patterns (the first is the reference)")
    s.add_argument("--budgets", required=True, help="comma list of training FLOP budgets, e.g. 2e12,6e12,2e13")
    s.add_argument("--sizes", default="32,48,64,96", help="comma list of widths d_model (default: 32,48,64,96)")
    s.add_argument("--task", default="lm:shakespeare")
    s.add_argument("--tokenizer", default="bytes")
    s.add_argument("--eval-tokens", type=int, default=32_768, help="validation tokens per model")
    s.add_argument("--cache", default=None, help="evaluation cache folder, or 'off' (default: the shared one)")
    s.add_argument("--executor", default="inline", help="inline (this process, default) | local")
    s.add_argument("--workers", type=int, default=None, help="parallel trainings with --executor local")
    s.add_argument("--out", default="runs/scaling")
    s.set_defaults(func=_scaling)

    f = verbs.add_parser("fidelity", help="rank agreement of a proxy across seeds and fidelities")
    f.add_argument("--patterns", default="calibration", help="'calibration' or a file with one pattern per line")
    f.add_argument("--proxy", default="mad-cpu", help="a built-in proxy or a proxy file (default: mad-cpu)")
    f.add_argument("--space", default="attn-mlp-mamba")
    f.add_argument("--fidelities", default="small,large")
    f.add_argument("--seeds", type=int, default=None,
                   help="seeds per pattern (default: twice the proxy's seeds per candidate)")
    f.add_argument("--large-seeds", type=int, default=None,
                   help="seeds per pattern at the fidelities after the first (default: --seeds)")
    f.add_argument("--limit", type=int, default=None, help="use only the first N patterns")
    f.add_argument("--workers", type=int, default=None, help="parallel evaluations (default: one per usable core)")
    f.add_argument("--out", default="runs/fidelity")
    f.add_argument("--layers", type=int, default=16, help="layers of the calibration patterns (default: 16)")
    f.add_argument("--executor", default="local", help="local | inline (default: local)")
    f.add_argument("--timeout", type=float, default=None, help="seconds per small evaluation (default: proxy's)")
    f.add_argument("--cache", default=None,
                   help="evaluation cache folder, or 'off' (default: the shared one, as for compose run)")
    f.add_argument("--batch", type=int, default=1, metavar="K",
                   help="evaluations a worker trains as one (local executor; default: 1)")
    f.add_argument("--record", action="store_true", help="write the figures into the shipped fidelity table")
    f.add_argument("--reference", default=None, metavar="DIR[:FIDELITY]",
                   help="also rank the first fidelity against another fidelity run's scores (default: its last "
                        "fidelity), e.g. a large run measured once, to try cheap proxies against it")
    f.add_argument("--show", default=None, metavar="DIR",
                   help="print the figures of a finished fidelity run (its --out folder) or of a shipped "
                        "reference (e.g. mad-cpu-large) and exit; trains nothing")
    f.set_defaults(func=_fidelity)

    h = verbs.add_parser("halving", help="successive halving: a run's best candidates, trained longer")
    h.add_argument("run", help="a finished `aira compose run` folder")
    h.add_argument("--eta", type=int, default=3, help="each rung keeps 1/eta of the patterns and trains them eta "
                                                      "times longer than the rung before (default: 3)")
    h.add_argument("--rungs", type=int, default=2, help="rungs after the search itself (default: 2)")
    h.add_argument("--top", type=int, default=None, help="start from the run's best N candidates only")
    h.add_argument("--workers", type=int, default=None, help="parallel evaluations (default: one per usable core)")
    h.add_argument("--executor", default="local", help="local | inline (default: local)")
    h.set_defaults(func=_halving)

    v = verbs.add_parser("verify", help="is the winner really better? it and the baselines, several seeds, "
                                        "held-out text")
    v.add_argument("run", help="a Compose run folder (its aggregate.json), or a folder for verify.json with --pattern")
    v.add_argument("--pattern", default=None, help="verify this pattern instead of the run's aggregate")
    v.add_argument("--target", default="small",
                   help="width: small | 350M | 1B (the run's pattern extrapolated to it) | 3B, or tiny for a CPU "
                        "smoke test (default: small)")
    v.add_argument("--budget", default=None,
                   help="training tokens per model, e.g. 20M tokens (default: 20 per non-embedding parameter of "
                        "Llama's alternation); a time (300s) is accepted with a warning")
    v.add_argument("--seeds", type=int, default=3, help="seeds per pattern, the same for every pattern (default: 3)")
    v.add_argument("--baselines", default="all",
                   help="comma list of llama, composer-stacked, composer-stretched, nemotron, or all (default); "
                        "Llama's alternation is always trained, as the reference")
    v.add_argument("--data", default="shakespeare", help="byte-level corpus (aira.data.text; default: shakespeare)")
    v.add_argument("--eval-tokens", type=int, default=262_144, help="tokens scored per split (default: 262144)")
    v.add_argument("--min-gain", type=float, default=0.02,
                   help="bits per byte a difference must reach to count, besides 2x the seed spread (default: 0.02)")
    v.add_argument("--workers", type=int, default=None, help="parallel trainings (default: one per usable core)")
    v.add_argument("--threads", type=int, default=None, help="torch threads per training (default: 1)")
    v.add_argument("--executor", default="local", help="local | inline (default: local)")
    v.add_argument("--cache", default=None,
                   help="evaluation cache folder, or 'off' (default: the shared one, as for compose run)")
    v.set_defaults(func=_verify)


def promote_primitives(specs: list[str], proxy: str, device: str = "auto") -> list:
    """The Promotions of `--primitive X=SOURCE` flags, each checked against the Compose contract at the
    proxy's sizes in a sandboxed child: one line and exit 2 on the first problem, before anything is
    written. The same child measures X's counts at the proxy's width and at the end-of-run extrapolation's."""
    from aira.models import get_preset
    from aira.tasks.promoted import contract_failure, load_promoted, parse_spec, proxy_model_config
    from aira.tasks.promoted_score import check_scorable
    from aira.tasks.proxies import pick_proxy

    if not specs:
        return []
    chosen = pick_proxy(proxy, device)[0]
    # a proxy the harness cannot score X's candidates on: refused before any sandboxed child runs
    check_scorable(chosen.train_kwargs(), "".join(parse_spec(s)[0] for s in specs))
    cfg = proxy_model_config(chosen)
    target = get_preset(END_TARGET).model
    also = [(target, target.max_seq_len)]
    verdicts = {}  # a design run folder's pick was checked while picking: one sandboxed child each

    def check(p):
        verdicts[p.sha256] = contract_failure(p, cfg, also)
        return verdicts[p.sha256]

    promos, seen = [], set()
    for spec in specs:
        letter, where = parse_spec(spec)
        if letter in seen:
            raise UsageError(f"--primitive: {letter} is given twice")
        seen.add(letter)
        promo = load_promoted(letter, where, check=check)
        why = verdicts[promo.sha256] if promo.sha256 in verdicts else check(promo)
        if why is not None:
            raise UsageError(f"--primitive {letter}={where}: fails the Compose contract: {why}")
        promos.append(promo)
    return promos


def _print_promoted(task, out: Path) -> None:
    """Say where each promoted primitive came from, and copy it into the run folder (a fresh run only)."""
    from aira.models import registry
    from aira.models.mechanism import describe_origin
    from aira.tasks.promoted import measured_counts, proxy_model_config, write_run_copy

    cfg = proxy_model_config(task.proxy)
    counts = {}
    for letter, promo in task.primitives.items():  # the stubs' counts: measured by the contract check's child
        counts[letter] = c = measured_counts(registry.get(letter).cls, cfg)
        print(f"promoted {letter}: {describe_origin(promo.origin)}, sha256 {promo.sha256[:12]}; per layer at "
              f"the proxy's width {c['params']:,} parameters ({c['params'] / c['attention_params']:.2f}x A), "
              f"{c['flops_per_token']:.3g} training FLOPs per token ({c['flops_per_token'] / c['attention_flops_per_token']:.2f}x A); "
              f"candidates with {letter} train in a sandbox and are scored by the harness on secret rows, "
              f"outside the shared cache", file=sys.stderr)
    if not (out / "journal.sqlite").exists():  # else the orchestrator refuses the used folder
        write_run_copy(out, list(task.primitives.values()), counts)


def _text_or_json(args: argparse.Namespace, fn) -> int:
    """`fn(args)`, which prints for a person and returns a dict; with --json its text goes to stderr and the
    dict to stdout, as one JSON object, for a script."""
    if not getattr(args, "json", False):
        fn(args)
        return 0
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):
        result = fn(args)
    print(json.dumps(result, indent=1, default=str))
    return 0


def _run(args: argparse.Namespace) -> int:
    return _text_or_json(args, _search)


def _search(args: argparse.Namespace) -> dict:
    from aira.agents.journal import Journal
    from aira.agents.runfolder import RunConfig, parse_promote
    from aira.agents.stats import TaskInfo, format_report
    from aira.compose.fidelity import fidelity_notice, fidelity_train
    from aira.machine import plan_workers
    from aira.tasks.compose import ComposeTask
    from aira.tasks.promoted_score import SECRET_DIR
    from aira.tasks.runs import run_task_kwargs, start_or_resume
    from aira.train.cache import resolve_dir

    out = Path(args.out)
    check_out_dir(out, "--out")
    listeners = tracking_listeners(args, out, resume=False)  # a bad --track or a missing package: exit 2 now
    plan = plan_workers(args.workers, getattr(args, "threads", None))
    batch = 1 if getattr(args, "batch", None) is None else args.batch
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    task_kwargs = {"space": args.space, "proxy": args.proxy, "layers": args.layers, "seeds": args.seeds,
                   "threads": plan.threads, "cache_dir": resolve_dir(args.cache), "batch": batch > 1}
    promoted = promote_primitives(getattr(args, "primitive", None) or [], args.proxy)
    if promoted:  # their candidates' select rows come from a secret seed kept in RUN/secret (0700)
        task_kwargs["primitives"] = {p.letter: p.to_json() for p in promoted}
        task_kwargs["secret_dir"] = SECRET_DIR  # relative to the run folder: a moved run keeps its secret
    task = ComposeTask(**run_task_kwargs(task_kwargs, out))
    promote_spec = getattr(args, "promote", None)  # `aira demo` calls this with its own flags
    promote = parse_promote(promote_spec)
    if promote:  # the large fidelity's settings, stored with the run: a resume promotes at the same ones
        task_kwargs["promote_train"] = fidelity_train(task.proxy, "large")
        task = ComposeTask(**run_task_kwargs(task_kwargs, out))
    task_kwargs["seeds"] = task.seeds  # stored resolved, so a resumed run keeps it whatever the proxy's default
    # stored resolved: a resume keeps the proxy `mad` / `lm` chose, and a proxy file by its absolute path
    task_kwargs["proxy"] = task.proxy.source or task.proxy.name
    agents = list(args.agents) + ([] if args.no_controls else [c for c in CONTROLS if c not in args.agents])
    offline = all(a.split("?")[0].endswith(":offline") or ":" not in a for a in agents)
    executor_kwargs = {"address": args.ray_address} if args.executor == "ray" and args.ray_address else {}
    if args.executor == "local" and batch > 1:
        executor_kwargs["batch"] = batch
    # the config checks the budget, agents, executor and counts: before anything is printed or run
    cfg = RunConfig(task="compose", task_kwargs=task_kwargs, agents=agents, executor=args.executor,
                    slots=plan.workers, executor_kwargs=executor_kwargs, budget=args.budget, seed=args.seed,
                    noise_seeds=args.noise_seeds, shared_memory=args.shared_memory, promote=promote_spec,
                    out=str(out), quiet=args.quiet)
    chosen = f" (chosen for --proxy {args.proxy}: {task.proxy_choice})" if task.proxy_choice else ""
    print(f"aira compose: space {args.space} ({', '.join(task.alphabet)}), {args.layers} layers, proxy "
          f"{task.proxy.name}{chosen}: {task.proxy.description}; {task.seeds} seed{'s' if task.seeds > 1 else ''} "
          f"per candidate (the score is their mean)", file=sys.stderr)
    print(f"agents: {' '.join(agents)}{'  (offline: search moves, no LLM)' if offline else ''}; "
          f"{plan.describe()}{f', {batch} candidates trained as one per worker' if batch > 1 else ''}; "
          f"budget {args.budget}", file=sys.stderr)
    notice = fidelity_notice(task.proxy)
    _print_fidelity(task.proxy)
    if promote:
        _print_promotion(task, *promote)
    if promoted:
        _print_promoted(task, out)
    # no --resume flag here: the orchestrator refuses a used folder, pointing at `aira runs resume`
    summary, _, _ = start_or_resume(out, resume=False, new_config=lambda: cfg, make_task=lambda _: task,
                                    check_folder=False, notes={"proxy_fidelity": notice}, listeners=listeners)
    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    print(format_report(nodes, TaskInfo.of(task), top=10))
    print(f"\nstopped: {summary.stop_reason}; {summary.evaluations} evaluations in {summary.elapsed_s:.0f}s")
    result = {**summary.to_dict(), "proxy_fidelity": notice, "aggregate": None, "extrapolate": None}
    if any(n.status.value == "ok" and n.operator not in ("reference", "baseline") for n in nodes):
        result["aggregate"] = _aggregated(argparse.Namespace(run=str(out), method="n0", clusters=5, prefix=""))
        result["extrapolate"] = _extrapolated(argparse.Namespace(run=str(out), pattern=None, target=END_TARGET,
                                                                 strategy="stretch", out=None))
    print(f"next: aira report {out}")
    return result


def _halving(args: argparse.Namespace) -> int:
    from aira.compose.halving import format_halving, run_halving

    result = run_halving(args.run, eta=args.eta, rungs=args.rungs, top=args.top, workers=args.workers,
                         executor=args.executor, log=lambda m: print(m, file=sys.stderr))
    print(format_halving(result))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from aira.compose.verify import VerifySettings, main, parse_baselines
    from aira.train.cache import resolve_dir

    settings = VerifySettings(target=args.target, budget=args.budget, seeds=args.seeds,
                              baselines=parse_baselines(args.baselines), corpus=args.data,
                              eval_tokens=args.eval_tokens, min_gain=args.min_gain, workers=args.workers,
                              threads=args.threads, executor=args.executor, cache_dir=resolve_dir(args.cache))
    return main(args.run, settings, pattern=args.pattern)


def _print_promotion(task, k: int, every: int) -> None:
    train = task.promote_train
    est = task.seconds_per_eval()
    cost = f", ~{est[0] * task.promote_cost:.0f}s each by the proxy's measured seconds" if est else ""
    print(f"promote: after every {every} evaluations and when the search ends, the best {k} candidates by the "
          f"hidden selection score are re-evaluated at the large fidelity (width {train['overrides']['d_model']}, "
          f"{train['budget']}, lr {train['lr']:g}: ~{task.promote_cost:.0f}x a candidate{cost}); they count against "
          f"the wall clock, not the evaluation budget; agents never see their scores; the final pick ranks "
          f"promoted candidates first, by their large score", file=sys.stderr)


def _print_fidelity(proxy) -> None:
    """The proxy's measured figures and warnings on stderr; `proxy`: a Proxy or a built-in proxy's name."""
    from aira.compose.fidelity import fidelity_notice

    notice = fidelity_notice(proxy)
    if notice["figures"]:
        print(f"proxy fidelity ({notice['proxy']}): {notice['figures']}", file=sys.stderr)
    for w in notice["warnings"]:
        print(f"warning: {w}", file=sys.stderr)


def _load_candidates(run: str):
    from aira.agents.stats import TaskInfo
    from aira.compose.aggregate import Candidate
    from aira.compose.halving import load_run

    config, entries = load_run(run)
    info = TaskInfo(**config["resolved"]["task"])
    # one candidate per distinct pattern (its mean score), so a re-evaluated pattern does not vote twice
    return [Candidate(e.pattern, e.score) for e in entries], info


def _aggregate(args: argparse.Namespace) -> int:
    return _text_or_json(args, _aggregated)


def _aggregated(args: argparse.Namespace) -> dict:
    """Aggregate a run's candidates into RUN/aggregate.json; prints one line, returns what it wrote."""
    from aira.compose.aggregate import METHODS, aggregate
    from aira.models import compress_pattern

    if args.method not in METHODS:
        raise UsageError(f"unknown aggregation method {args.method!r}; valid: {', '.join(METHODS)}")
    if args.clusters < 1:
        raise UsageError(f"--clusters must be at least 1, got {args.clusters}")
    cands, info = _load_candidates(args.run)
    agg = aggregate(cands, method=args.method, lower_is_better=info.lower_is_better, clusters=args.clusters,
                    prefix=args.prefix)
    path = Path(args.run) / "aggregate.json"
    path.write_text(json.dumps(agg.to_dict(), indent=1) + "\n")
    print(f"aggregate ({args.method} over {len(agg.top)} top candidates of {len(cands)}): {agg.pattern} "
          f"= {compress_pattern(list(agg.pattern))}")
    return {"file": str(path), "method": args.method, "candidates": len(cands), **agg.to_dict()}


def _extrapolate(args: argparse.Namespace) -> int:
    return _text_or_json(args, _extrapolated)


def _extrapolated(args: argparse.Namespace) -> dict:
    """Extrapolate a pattern to a target size (into a JSON file when there is a run or --out); prints one
    line, and the JSON itself when it is written nowhere (without --json, which prints it anyway)."""
    from aira.compose.extrapolate import extrapolate
    from aira.tasks.promoted import run_promotions

    pattern = args.pattern
    if args.run:
        run_promotions(Path(args.run))  # a run's promoted letters parse and count (stubs, recorded counts)
    if args.out:
        if Path(args.out).is_dir():
            raise UsageError(f"--out {args.out} is a folder; give a file name")
        check_out_dir(Path(args.out).parent, "--out")
    if pattern is None:
        if not args.run:
            raise UsageError("give a run folder or --pattern")
        agg = Path(args.run) / "aggregate.json"
        if agg.is_file():
            pattern = json.loads(read_text(agg, "aggregate file"))["pattern"]
        else:
            cands, info = _load_candidates(args.run)
            if not cands:
                raise UsageError(f"run {args.run} has no finished candidates")
            pattern = (min if info.lower_is_better else max)(cands, key=lambda c: c.score).pattern
    e = extrapolate(pattern, args.target, args.strategy)
    out = Path(args.out) if args.out else (Path(args.run) / f"extrapolate-{e.target}-{args.strategy}.json"
                                           if args.run else None)
    d = e.to_dict()
    if out:
        make_out_dir(out.parent, "--out")
        out.write_text(json.dumps(d, indent=1) + "\n")
    print(f"extrapolate ({args.strategy} to {e.target}): {d['compressed']}  {d['layers']} layers, "
          f"{e.params / 1e6:.1f}M params ({e.non_embedding_params / 1e6:.1f}M non-embedding vs "
          f"{e.target_non_embedding / 1e6:.1f}M for {e.reference}), {e.flops_per_token / 1e9:.2f} GFLOPs/token"
          + (f" -> {out}" if out else ""))
    if not out and not getattr(args, "json", False):
        print(json.dumps(d, indent=1))
    return {"file": str(out) if out else None, **d}


def _scaling(args: argparse.Namespace) -> int:
    from aira.compose.study import run_scaling

    return run_scaling(patterns=args.patterns, budgets=args.budgets, sizes=args.sizes, task=args.task,
                       tokenizer=args.tokenizer, eval_tokens=args.eval_tokens, out=args.out, cache=args.cache,
                       executor=args.executor, workers=args.workers)


def _fidelity(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from aira.compose.fidelity import FidelityRun, run_fidelity, show_result

    if args.show:
        print(show_result(args.show))
        return 0
    return run_fidelity(FidelityRun(**{f.name: getattr(args, f.name) for f in fields(FidelityRun)}))
