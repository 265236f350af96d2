"""Proxy fidelity: does a Compose proxy rank patterns the same way across seeds and at a larger scale?

`aira compose fidelity --patterns calibration --proxy mad-cpu --fidelities small,large --seeds 2` trains
every pattern with every seed at every fidelity (one executor job each, cached on disk so an
interrupted run resumes for free) and reports, per fidelity, the seed-to-seed Spearman, the noise floor
(pooled std over seeds) and saturation (share of patterns within 2 noise floors of the ceiling or of
chance); across fidelities, the Spearman of the mean scores with a bootstrap interval, and the seconds
per evaluation. The statistics are `aira.compose.stats`.

Fidelities: `small` is the proxy as defined in `aira.tasks.compose.PROXIES`; `large` is its counterpart
with 4x the width (heads and FFN scaled with it, so head size and ratios are kept) and 4x the training
tokens (4x the steps at the same batch). The large learning rate is the small one / 2, as wider models
tolerate less (a fixed rule, so the counterpart is defined by the proxy alone).

Outputs in --out: `fidelity.json` (the figures, the shape the report renders), `fidelity-scores.json`
(every score per fidelity, pattern and seed) and `evaluations.jsonl`; all three are rewritten after each
evaluation, so partial results are readable while a long run goes on.

Measured figures per built-in proxy ship in `fidelity_table.json` next to this file; `measured_fidelity`
turns one into the line `aira compose run` prints, and `--record` writes a finished run's figures there.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aira.agents.base import Executor
from aira.compose.fidelity_figures import (  # noqa: F401  (re-exported: the figures are part of this module's API)
    baseline_comparison,
    best_count,
    composition_check,
    cross_fidelity,
    fidelity_figures,
    mean_reliability,
    metric_bounds,
    summarize,
    task_figures,
)
from aira.errors import UsageError
from aira.machine import WorkerPlan
from aira.tasks import proxies
from aira.tasks.proxies import Proxy, load_table, measured_entry, stale_entry, table_path

FIDELITIES = ("small", "large")
LARGE_WIDTH_FACTOR = 4
LARGE_TOKEN_FACTOR = 4
LARGE_LR_FACTOR = 0.5
# measured runs shipped as yardsticks for `--reference NAME` (their large evaluations are the expensive part)
REFERENCES_DIR = Path(__file__).with_name("references")


# ---------------------------------------------------------------- fidelities


def large_overrides(preset_name: str, factor: int = LARGE_WIDTH_FACTOR) -> dict:
    """ModelConfig overrides that widen a preset by `factor`, keeping head sizes and the FFN ratio."""
    from aira.models import get_preset

    m = get_preset(preset_name).model
    return {
        "d_model": m.d_model * factor,
        "n_heads": m.n_heads * factor,
        "n_kv_heads": m.n_kv_heads * factor,
        "ffn_dim": m.ffn_dim * factor,
    }


def fidelity_train(proxy, fidelity: str) -> dict:
    """The trainer kwargs (a `TrainConfig` minus pattern and seed) of a proxy at a fidelity."""
    from aira.models import get_preset
    from aira.train.budget import parse_budget, scaled_budget

    small = proxy.train_kwargs()
    if fidelity == "small":
        return small
    if fidelity != "large":
        raise UsageError(f"unknown fidelity {fidelity!r}; valid: {', '.join(FIDELITIES)}")
    b = parse_budget(proxy.budget)
    if b.kind == "seconds":
        raise UsageError(f"proxy {proxy.name} has a time budget; a large counterpart needs steps or tokens")
    budget = scaled_budget(proxy.budget, LARGE_TOKEN_FACTOR)
    lr = (proxy.setting("lr") if proxy.setting("lr") is not None else get_preset(proxy.preset).lr) * LARGE_LR_FACTOR
    return {**small, "budget": budget, "lr": lr, "overrides": large_overrides(proxy.preset)}


# ---------------------------------------------------------------- statistics


def _run_folder(spec: str) -> Path:
    """A fidelity run's folder: a path, or the name of a shipped reference."""
    d = Path(spec)
    if not d.exists() and "/" not in spec and (REFERENCES_DIR / spec).is_dir():
        return REFERENCES_DIR / spec
    return d


def _where_runs_are() -> str:
    shipped = ", ".join(sorted(x.name for x in REFERENCES_DIR.iterdir() if x.is_dir()))
    return f"give the --out folder of an `aira compose fidelity` run, or a shipped reference: {shipped}"


def load_reference(spec: str, train: dict) -> dict:
    """Another fidelity run's scores to rank against: `DIR` or `DIR:FIDELITY` (default: that run's last
    fidelity, e.g. the large one). Large evaluations are the expensive part of a check; a reference lets
    any number of cheap proxies be ranked against the same measured large scale without re-training it.
    `train`: this run's first fidelity, so that a MAD accuracy is never ranked against bits per byte."""
    path, fid = spec, ""
    if not Path(spec).exists() and ":" in spec:
        path, _, fid = spec.rpartition(":")
    d = _run_folder(path)
    try:
        meta = json.loads((d / "fidelity.json").read_text())
        scores = json.loads((d / "fidelity-scores.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"--reference {spec}: no fidelity.json and fidelity-scores.json in {d} "
                         f"({_where_runs_are()})") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"--reference {spec}: cannot read {d}: {e}") from None
    names = [f for f in meta.get("fidelities") or list(scores) if f in scores]
    fid = fid or (names[-1] if names else "")
    if fid not in scores or not isinstance(scores[fid], dict):
        raise UsageError(f"--reference {spec}: {d} holds no {fid or 'fidelity'} scores"
                         f"{' (it has: ' + ', '.join(names) + ')' if names else ''}")
    theirs = (meta.get("train") or {}).get(fid) or {}
    kind = str(train.get("task", "")).split(":")[0]
    if theirs.get("task") and str(theirs["task"]).split(":")[0] != kind:
        raise UsageError(f"--reference {spec}: its {fid} scores are for task {theirs['task']!r}, this run's for "
                         f"{train.get('task')!r}; their rankings are not comparable")
    def table(f):
        return {p: [float(x) for x in v] for p, v in scores[f].items() if isinstance(v, list) and v}

    where = f"shipped: {d.name}" if d.parent == REFERENCES_DIR else str(d)
    out = {"dir": where, "proxy": meta.get("proxy"), "fidelity": fid, "train": theirs or None, "scores": table(fid)}
    try:  # per-task scores (MAD), when the run wrote them: a run's tasks are ranked against the same tasks
        tasks = json.loads((d / "fidelity-tasks.json").read_text()).get(fid) or {}
        out["tasks"] = {t: {p: [float(x) for x in v] for p, v in tab.items() if isinstance(v, list) and v}
                        for t, tab in tasks.items() if isinstance(tab, dict)}
    except (OSError, ValueError, AttributeError):
        pass
    # the reference run's own first fidelity (its proxy as searched): the baseline a new design must beat
    if names and names[0] != fid and isinstance(scores.get(names[0]), dict) and scores[names[0]]:
        out["baseline"] = {"fidelity": names[0], "scores": table(names[0])}
    return out


# ---------------------------------------------------------------- the measured table


def _num(x, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "?"


def format_entry(e: dict) -> str:
    """One line from a table entry, naming only what was measured."""
    parts = []
    if e.get("seed_to_seed") is not None:
        space = f"{e['space']} " if e.get("space") else ""
        parts.append(
            f"seed-to-seed rho {_num(e['seed_to_seed'], '.2f')} ({e.get('patterns', '?')} {space}patterns"
            f" x {e.get('seeds', '?')} seeds)"
        )
    k = e.get("seeds_per_candidate") or 1
    if k > 1:
        if e.get("seed_to_seed_candidates") is not None:
            parts.append(f"{k}-seed candidates rho {_num(e['seed_to_seed_candidates'], '.2f')}")
        elif e.get("seed_to_seed_predicted") is not None:
            parts.append(f"{k}-seed candidates rho {_num(e['seed_to_seed_predicted'], '.2f')} (predicted)")
    if e.get("spearman") is not None:
        ci = e.get("ci") or [None, None]
        parts.append(
            f"small-to-large rho {_num(e['spearman'], '.2f')} [{_num(ci[0], '.2f')}, {_num(ci[1], '.2f')}]"
            f" ({e.get('large_patterns', '?')} patterns)"
        )
        if e.get("ceiling") is not None:
            parts.append(f"~{_num(e['ceiling'], '.2f')} at most given both sides' seed noise")
    else:
        parts.append("small-to-large not measured")
    if e.get("noise_floor") is not None:
        parts.append(f"noise floor {_num(e['noise_floor'], '.3f')}")
    if e.get("saturation") is not None:
        parts.append(f"{100 * e['saturation']:.0f}% saturated")
    if e.get("seconds_per_eval") is not None:
        per = f"{_num(e['seconds_per_eval'], '.0f')} s/eval"
        parts.append(per if k == 1 else f"{per} (one seed; a candidate is {k})")
    return ", ".join(parts) + f"; measured {e.get('date', '?')} on {e.get('machine', '?')}"


SEED_TARGET, SCALE_TARGET = 0.9, 0.8  # the figures a proxy should reach (docs/fidelity.md)


def fidelity_warnings(e: dict) -> list[str]:
    """What a user should know before trusting a measured proxy's ranking, one sentence each."""
    out = []
    k = e.get("seeds_per_candidate") or 1
    rho, how = (e.get("seed_to_seed_candidates"), "") if k > 1 else (e.get("seed_to_seed"), "")
    if rho is None and k > 1 and e.get("seed_to_seed_predicted") is not None:
        rho, how = e["seed_to_seed_predicted"], " (predicted from single seeds)"
    if rho is not None and rho < SEED_TARGET:
        out.append(f"candidates repeat their ranking across seeds with rho {rho:.2f}{how} only (target "
                   f"{SEED_TARGET}): close scores are noise, and the leaderboard marks them as ties")
    if e.get("saturation"):
        out.append(f"{e['saturation']:.0%} of its calibration patterns score within the noise of chance or of "
                   f"the ceiling, where it cannot rank them")
    if e.get("spearman") is None:
        out.append("its agreement with 4x wider, 4x longer training (small-to-large) is not measured: treat the "
                   "winners as candidates to check at a larger scale, not as results")
    elif e["spearman"] < SCALE_TARGET:
        ci = e.get("ci")
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        # an interval that holds 0 means the measurement cannot tell the proxy from a random ranking
        how = "shows no measurable agreement" if ci and ci[0] <= 0 else "agrees poorly"
        out.append(f"its ranking {how} with 4x wider, 4x longer training (rho {e['spearman']:.2f}{interval} on "
                   f"{e.get('large_patterns', '?')} patterns; target {SCALE_TARGET}): treat the winners as "
                   f"candidates to check at a larger scale, not as results")
        best = best_count({"counts": {c: {"spearman": v} for c, v in (e.get("count_spearman") or {}).items()}})
        if best is not None and best[1] > e["spearman"]:
            out.append(f"counting a pattern's {_code_name(best[0])} layers ranks that larger training better (|rho| "
                       f"{best[1]:.2f}, its sign read off the larger runs) than the proxy does (rho "
                       f"{e['spearman']:.2f}): weigh the proxy's preferences between mixes of primitives accordingly")
    return out


TRANSFER_FLOOR = 0.5  # below it a proxy's small-to-large ranking is called poor outright (the report's headline)


def fidelity_notice(proxy) -> dict:
    """What a run should say about its proxy's fidelity, as data: `aira compose run` prints it at the start,
    and the run's config.json keeps it (`resolved.proxy_fidelity`) for the report. `proxy`: a Proxy or the
    name of a built-in one. Keys: proxy, status (measured | stale | unmeasured), figures (one line or None),
    transfer (the small-to-large rho or None), warnings (sentences), measure (the command that measures it)."""
    from aira.tasks.compose import PROXIES

    if isinstance(proxy, str):
        proxy = PROXIES[proxy]
    how = f"`aira compose fidelity --proxy {proxy.source or proxy.name} --space SPACE --record`"
    out = {"proxy": proxy.name, "status": "measured", "figures": None, "transfer": None, "warnings": [],
           "measure": how}
    e = measured_entry(proxy)
    if e is None:
        old = stale_entry(proxy)
        out["status"] = "stale" if old is not None else "unmeasured"
        out["warnings"].append(
            f"proxy {proxy.name}'s settings changed after its fidelity was measured ({old.get('date')}); those "
            f"figures no longer apply (re-measure with {how})" if old is not None else
            f"proxy {proxy.name} has no measured fidelity figures; its ranking may be noise, and whether it "
            f"transfers to larger training is not measured (measure with {how})")
        return out
    out["figures"] = format_entry(e)
    out["transfer"] = e.get("spearman")
    warnings = fidelity_warnings(e)
    if e.get("spearman") is not None and e["spearman"] < TRANSFER_FLOOR:  # fidelity_warnings says "unmeasured"
        warnings.insert(0, f"its transfer to 4x wider, 4x longer training is below {TRANSFER_FLOOR} (rho "
                           f"{e['spearman']:.2f}): its ranking says little about larger models")
    out["warnings"] = [f"proxy {proxy.name}: {w}" for w in warnings]
    return out


def measured_fidelity(proxy) -> str | None:
    """The shipped figures of a proxy as one line, or None when it was never measured."""
    e = measured_entry(proxy)
    return format_entry(e) if e is not None else None


def table_entry(result: dict) -> dict:
    """The table entry of a finished fidelity.json."""
    from aira.tasks.compose import settings_fingerprint

    first = result["per_fidelity"][result["fidelities"][0]]
    train = (result.get("train") or {}).get(result["fidelities"][0])
    return {
        "status": "measured",
        "fingerprint": settings_fingerprint(train) if train else None,
        "date": result.get("date"),
        "machine": result.get("machine"),
        "command": result.get("command"),
        "space": result.get("space"),
        "layers": result.get("layers"),
        "patterns": first.get("patterns"),
        "seeds": first.get("seeds"),
        "seed_to_seed": result.get("seed_to_seed"),
        "seeds_per_candidate": result.get("seeds_per_candidate", 1),
        "seed_to_seed_candidates": result.get("seed_to_seed_candidates"),
        "seed_to_seed_predicted": result.get("seed_to_seed_predicted"),
        "noise_floor": result.get("noise_floor"),
        "saturation": result.get("saturation"),
        "seconds_per_eval": first.get("seconds_per_eval"),
        "spearman": result.get("spearman"),
        "ci": result.get("ci"),
        "large_patterns": result.get("compared_patterns"),
        "ceiling": (result.get("ceiling") or {}).get("spearman"),
        **_composition_entry(result.get("composition")),
    }


def _composition_entry(comp: dict | None) -> dict:
    if not comp or not comp.get("counts"):
        return {}
    given = comp.get("given_composition") or {}
    return {"count_spearman": {c: v.get("spearman") for c, v in comp["counts"].items()},
            "given_composition": given.get("spearman"), "given_composition_ci": given.get("ci")}


def record(result: dict, proxy, path: Path | None = None) -> Path:
    """Write a finished run's figures into its proxy's table (`table_path`); `proxy`: a Proxy or a name."""
    name = getattr(proxy, "name", proxy)
    path = path or (proxies.TABLE_PATH if isinstance(proxy, str) else table_path(proxy))
    table = load_table(path)
    table[name] = table_entry(result)
    path.write_text(json.dumps(table, indent=1) + "\n")
    return path


# ---------------------------------------------------------------- the command


def _parse_fidelities(text: str) -> list[str]:
    names = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in names if f not in FIDELITIES]
    if not names or bad:
        raise UsageError(f"--fidelities must be a comma list of {', '.join(FIDELITIES)}, got {text!r}")
    if len(set(names)) != len(names):
        raise UsageError(f"--fidelities names a fidelity twice: {text!r}")
    return names


def _machine() -> str:
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    # the load says how comparable the seconds are: on a shared machine they are not an idle core's
    return f"{os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f} at start), {dev}, {platform.machine()}"


@dataclass(kw_only=True)
class FidelityRun:
    """What `aira compose fidelity` measures (its flags, typed; the command layer builds it)."""

    patterns: str = "calibration"      # 'calibration' or a file with one pattern per line
    proxy: str = "mad-cpu"
    space: str = "attn-mlp-mamba"
    fidelities: str = "small,large"
    seeds: int | None = None           # per pattern at the first fidelity (default: twice the proxy's)
    large_seeds: int | None = None     # at the fidelities after the first (default: seeds)
    limit: int | None = None
    workers: int | None = None
    out: str = "runs/fidelity"
    layers: int = 16
    executor: str = "local"
    timeout: float | None = None       # seconds per small evaluation (default: the proxy's)
    record: bool = False
    reference: str | None = None       # DIR[:FIDELITY]
    cache: str | None = None
    batch: int = 1


@dataclass(kw_only=True)
class FidelityPlan:
    """A fidelity run resolved and checked before any work (`plan_fidelity`): what trains, where it goes."""

    proxy: Proxy
    fids: list[str]                    # the first is the proxy as searched
    patterns: list[str]
    n_seeds: dict[str, int]            # seeds per pattern at each fidelity
    trains: dict[str, dict]            # trainer settings (a TrainConfig minus pattern and seed) per fidelity
    bounds: dict[str, tuple]           # (ceiling, chance) of each fidelity's metric
    timeout: dict[str, float]          # seconds per evaluation at each fidelity
    reference: dict | None             # another run's scores to rank against (`load_reference`)
    workers: WorkerPlan
    cache_dir: str | None
    executor: str
    batch: int
    out: Path
    meta: dict                         # what fidelity.json says about the run besides its figures


@dataclass
class FidelityTally:
    """The scores as evaluations finish: per fidelity, pattern and seed (and per MAD task), training seconds,
    failures."""

    fids: list[str]
    scores: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    task_scores: dict[str, dict[str, dict[str, dict[int, float]]]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    done: int = 0

    def __post_init__(self):
        for f in self.fids:
            self.scores.setdefault(f, {})
            self.task_scores.setdefault(f, {})
            self.seconds.setdefault(f, [])

    def add(self, f: str, p: str, s: int, res) -> dict:
        """Count one evaluation's Result; returns its evaluations.jsonl row."""
        from aira.agents.types import Status

        self.done += 1
        m = res.metrics
        train_s = (m["tokens"] / m["tokens_per_s"]) if m.get("tokens") and m.get("tokens_per_s") else None
        row = {"fidelity": f, "pattern": p, "seed": s, "status": res.status.value, "metric": res.metric,
               "train_s": train_s, "job_s": res.seconds, "cached": m.get("cached"), "per_task": m.get("per_task"),
               "error": res.error[-300:] if res.error else ""}
        if res.status == Status.OK and res.metric is not None:
            self.scores[f].setdefault(p, {})[s] = res.metric
            for task, entry in (m.get("per_task") or {}).items():
                if isinstance(entry, dict) and isinstance(entry.get("metric"), (int, float)):
                    self.task_scores[f].setdefault(task, {}).setdefault(p, {})[s] = entry["metric"]
            if train_s is not None:
                self.seconds[f].append(train_s)
        else:
            self.failed.append({"fidelity": f, "pattern": p, "seed": s, "status": res.status.value})
        return row


def run_fidelity(args: FidelityRun) -> int:
    """`aira compose fidelity`: plan (every check before any work), evaluate (rewriting the files as results
    come), then the final figures with their intervals; exit 1 when an evaluation failed."""
    plan = plan_fidelity(args)
    executor = fidelity_executor(plan)
    print(f"aira compose fidelity: proxy {plan.proxy.name}, {len(plan.patterns)} patterns x seeds "
          f"{', '.join(f'{plan.n_seeds[f]} {f}' for f in plan.fids)} = "
          f"{sum(plan.n_seeds.values()) * len(plan.patterns)} evaluations, {plan.workers.describe()} -> {plan.out}",
          file=sys.stderr)
    tally = evaluate_fidelities(plan, executor)
    result = write_figures(plan, tally, final=True)
    print(format_result(result))
    if args.record:
        print(f"recorded in {record(result, plan.proxy)}", file=sys.stderr)
    return 0 if not tally.failed else 1


def plan_fidelity(args: FidelityRun) -> FidelityPlan:
    """Resolve and check a run's flags (UsageError on bad input, before any work); creates the out folder."""
    from aira.agents.executors import EXECUTORS
    from aira.compose.calibration import load_patterns
    from aira.machine import plan_workers
    from aira.tasks.compose import resolve_proxy, resolve_space
    from aira.train.cache import resolve_dir
    from aira.userfiles import make_out_dir

    fids = _parse_fidelities(args.fidelities)
    proxy = resolve_proxy(args.proxy)
    # by default, enough seeds to measure the agreement of candidates as the search scores them
    seeds = 2 * proxy.seeds if args.seeds is None else args.seeds
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {seeds}")
    workers = plan_workers(args.workers)
    cache_dir = resolve_dir(args.cache)
    large_seeds = seeds if args.large_seeds is None else args.large_seeds
    if large_seeds < 1:
        raise UsageError(f"--large-seeds must be at least 1, got {large_seeds}")
    alphabet = resolve_space(args.space)
    patterns = load_patterns(args.patterns, args.space, args.layers)
    if args.limit is not None:
        if args.limit < 3:
            raise UsageError(f"--limit must be at least 3 (a ranking needs 3 patterns), got {args.limit}")
        patterns = patterns[: args.limit]
    outside = [p for p in patterns if set(p) - set(alphabet)]
    if outside:
        raise UsageError(f"pattern {outside[0]} uses primitives outside the space {args.space} ({alphabet})")
    trains = {f: fidelity_train(proxy, f) for f in fids}
    reference = None
    if args.reference:
        reference = load_reference(args.reference, trains[fids[0]])
        shared = sum(p in reference["scores"] for p in patterns)
        if shared < 3:
            raise UsageError(f"--reference {args.reference}: it shares {shared} of these {len(patterns)} patterns; "
                             f"a ranking needs 3")
        if shared < len(patterns):
            print(f"note: the reference has {shared} of these {len(patterns)} patterns; it is compared on those",
                  file=sys.stderr)
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.executor not in EXECUTORS:
        raise UsageError(f"unknown executor {args.executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    out = make_out_dir(args.out, "--out")
    # the first fidelity is the proxy the search uses: all its seeds; a more expensive one may take fewer
    n_seeds = {f: seeds if f == fids[0] else large_seeds for f in fids}
    # large trains ~64x the FLOPs of small (4x width squared, 4x tokens)
    base_timeout = args.timeout or proxy.timeout_s
    meta = {
        "proxy": proxy.name,
        "space": args.space,
        "layers": args.layers,
        "fidelities": fids,
        "seeds_per_pattern": seeds,
        "seeds_per_fidelity": n_seeds,
        "seeds_per_candidate": proxy.seeds,
        "patterns_total": len(patterns),
        "date": datetime.date.today().isoformat(),
        "machine": _machine(),
        "command": "aira compose fidelity "
        + " ".join(sys.argv[3:] if sys.argv[1:3] == ["compose", "fidelity"] else sys.argv[1:]),
        "train": trains,
    }
    return FidelityPlan(proxy=proxy, fids=fids, patterns=patterns, n_seeds=n_seeds, trains=trains,
                        bounds={f: metric_bounds(trains[f]) for f in fids},
                        timeout={f: base_timeout * (1 if f == "small" else 64) for f in fids},
                        reference=reference, workers=workers, cache_dir=cache_dir, executor=args.executor,
                        batch=args.batch, out=out, meta=meta)


def fidelity_jobs(plan: FidelityPlan) -> list[tuple]:
    """(Job, (fidelity, pattern, seed)) for every evaluation: the first fidelity first (all its seeds), then the
    next, so partial results answer the cheap question first."""
    from aira.agents.types import Job
    from aira.tasks.compose import batch_fields

    todo = []
    for f in plan.fids:
        for s in range(plan.n_seeds[f]):
            for i, p in enumerate(plan.patterns):
                kwargs = {"pattern": p, "seed": s, "seeds": 1, "cache_dir": plan.cache_dir,
                          "threads": plan.workers.threads, "device": "auto", "train": plan.trains[f]}
                todo.append((Job(id=f"{f}-{i:03d}-s{s}", fn="aira.tasks.compose:evaluate_pattern",
                                 timeout_s=plan.timeout[f], kwargs=kwargs,
                                 **(batch_fields(kwargs) if plan.batch > 1 else {})), (f, p, s)))
    return todo


def fidelity_executor(plan: FidelityPlan) -> Executor:
    from aira.agents.executors import make_executor

    ex_kwargs = {"log_dir": plan.out / "jobs"} if plan.executor in ("local", "ray") else {}
    if plan.executor == "local" and plan.batch > 1:
        ex_kwargs["batch"] = plan.batch
    return make_executor(plan.executor, slots=plan.workers.workers, **ex_kwargs)


def evaluate_fidelities(plan: FidelityPlan, executor: Executor) -> FidelityTally:
    """Run every evaluation through the one job loop; after each, a line on stderr, its row appended to
    evaluations.jsonl and the partial figures rewritten (without bootstrap intervals)."""
    from aira.agents.jobs import run_jobs
    from aira.agents.types import Status

    todo = fidelity_jobs(plan)
    tally = FidelityTally(plan.fids)
    evals_path = plan.out / "evaluations.jsonl"
    evals_path.write_text("")
    t0 = time.time()

    def on_result(job, tag, res) -> None:
        f, p, s = tag
        row = tally.add(f, p, s, res)
        with evals_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        note = f"{res.metric:.4f}" if res.status == Status.OK and res.metric is not None else \
            f"{res.status.value}: {(res.error or '').strip().splitlines()[-1:] or ''}"
        print(f"[{tally.done}/{len(todo)} {time.time() - t0:.0f}s] {f} {p} seed {s}: {note}", file=sys.stderr)
        write_figures(plan, tally, final=False)

    run_jobs(executor, todo, on_result)
    return tally


def fidelity_tables(plan: FidelityPlan, tally: FidelityTally) -> tuple[dict, dict]:
    """(scores, per-task scores) per fidelity and pattern, seed by seed: only patterns with every seed count, so
    a partial file never mixes 1-seed and 2-seed means."""

    def full(table: dict[str, dict[int, float]], n: int) -> dict[str, list[float]]:
        return {p: [by_seed[s] for s in range(n)] for p, by_seed in table.items() if len(by_seed) == n}

    tables = {f: full(tally.scores[f], plan.n_seeds[f]) for f in tally.scores}
    tasks = {f: {t: full(tab, plan.n_seeds[f]) for t, tab in tally.task_scores.get(f, {}).items()}
             for f in tally.scores}
    return tables, tasks


def write_figures(plan: FidelityPlan, tally: FidelityTally, *, final: bool) -> dict:
    """The statistics of the scores so far, rewritten into fidelity.json, fidelity-scores.json and (MAD)
    fidelity-tasks.json. Bootstrap intervals of the composition and per-task figures only at the end
    (`final`): seconds per write would slow the training."""
    tables, tasks = fidelity_tables(plan, tally)
    meta = {**plan.meta, "failed": tally.failed, "complete": final or tally.done == len(plan.patterns) *
            sum(plan.n_seeds.values())}
    result = summarize(tables, plan.bounds, tally.seconds, meta=meta, group=meta.get("seeds_per_candidate", 1),
                       reference=plan.reference, tasks=tasks, intervals=final)
    _atomic(plan.out / "fidelity.json", json.dumps(result, indent=1) + "\n")
    _atomic(plan.out / "fidelity-scores.json", json.dumps(tables, indent=1) + "\n")
    if any(tasks.values()):
        _atomic(plan.out / "fidelity-tasks.json", json.dumps(tasks, indent=1) + "\n")
    return result


def _atomic(path: Path, text: str) -> None:
    from aira.fileio import write_atomic

    write_atomic(path, text)


def _ceiling_text(c: dict | None) -> str:
    """How much agreement the two sides' seed noise leaves room for (empty where a side has one seed)."""
    if not c or c.get("spearman") is None:
        return ""
    ra, rb = c["reliability"]
    text = (f"; at most ~{c['spearman']:.2f} expected even for an exact proxy (seed noise: means repeat "
            f"with {ra:.2f} and {rb:.2f})")
    if c["spearman"] < SCALE_TARGET:  # the check cannot show the target whatever the proxy: seeds first
        side = "large" if rb < ra else "small"
        text += f"; below the {SCALE_TARGET} target: more {side} seeds before another proxy design"
    return text


def _code_name(code: str) -> str:
    from aira.models.registry import get

    try:
        return get(code).name
    except UsageError:  # a code this install does not register (a file from another version): show it as is
        return code


def _composition_text(comp: dict | None, other: str) -> str:
    """Two indented lines: the primitive counts as rankings of `other`, and the agreement beyond them."""
    if not comp or not comp.get("counts"):
        return ""
    parts = []
    for code, v in comp["counts"].items():
        ci = v.get("ci") or [None, None]
        parts.append(f"{_code_name(code)} count {_num(v.get('spearman'), '+.3f')} "
                     f"[{_num(ci[0], '+.2f')}, {_num(ci[1], '+.2f')}]")
    text = f"    composition alone vs {other} ({comp['patterns']} patterns): " + ", ".join(parts)
    given = comp.get("given_composition")
    if given:
        ci = given.get("ci") or [None, None]
        text += (f"\n    beyond the composition (counts partialled out): rho {_num(given.get('spearman'), '.3f')} "
                 f"[{_num(ci[0], '.3f')}, {_num(ci[1], '.3f')}]")
    return text


def show_result(spec: str) -> str:
    """The printed summary of a finished fidelity run: its folder, or a shipped reference by name."""
    d = _run_folder(spec)
    try:
        r = json.loads((d / "fidelity.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"--show {spec}: no fidelity.json in {d} ({_where_runs_are()})") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"--show {spec}: cannot read {d / 'fidelity.json'}: {e}") from None
    if not isinstance(r, dict) or not isinstance(r.get("per_fidelity"), dict):
        raise UsageError(f"--show {spec}: {d / 'fidelity.json'} is not the output of `aira compose fidelity`")
    where = f"shipped reference {d.name}" if d.parent == REFERENCES_DIR else str(d)
    head = [f"{where}: {r.get('date', '?')} on {r.get('machine', '?')}"]
    if r.get("command"):
        head.append(f"  command: {r['command']}")
    if not r.get("complete", True):
        head.append("  (the run did not finish: these are the figures of the evaluations it completed)")
    return "\n".join(head + [format_result(r)])


def format_result(r: dict) -> str:
    lines = [
        f"proxy {r.get('proxy')}: {r.get('patterns_total')} patterns, {r.get('seeds_per_pattern')} seeds"
    ]
    for f, figs in r["per_fidelity"].items():
        sat = figs.get("saturation") or {}
        lo, hi = figs.get("score_range") or (None, None)
        lines.append(
            f"  {f:6s} seed-to-seed rho {_num(figs.get('seed_to_seed'), '.3f')}  noise floor "
            f"{_num(figs.get('noise_floor'), '.4f')}  saturated {_num(sat.get('saturated_share'), '.0%')}"
            f"  scores {_num(lo, '.3f')}..{_num(hi, '.3f')}  "
            f"{_num(figs.get('seconds_per_eval'), '.1f')} s/eval ({figs.get('evaluations')} evals)"
        )
    if r.get("compared"):
        ci = r.get("ci") or [None, None]
        lines.append(
            f"  {r['compared']}: rho {_num(r.get('spearman'), '.3f')} "
            f"[{_num(ci[0], '.3f')}, {_num(ci[1], '.3f')}]{_ceiling_text(r.get('ceiling'))}"
        )
        if line := _composition_text(r.get("composition"), r["compared"].split(" vs ")[-1].split(" (")[0]):
            lines.append(line)
    ref = r.get("reference")
    if ref:
        ci = ref.get("ci") or [None, None]
        first = next(iter(r["per_fidelity"]), "?")
        lines.append(
            f"  {first} vs reference {ref.get('against')} ({ref.get('patterns')} patterns): rho "
            f"{_num(ref.get('spearman'), '.3f')} [{_num(ci[0], '.3f')}, {_num(ci[1], '.3f')}]"
            f"{_ceiling_text(ref.get('ceiling'))}"
        )
        if line := _composition_text(ref.get("composition"), "the reference"):
            lines.append(line)
        for t, e in (ref.get("per_task") or {}).items():
            if e.get("spearman") is not None:
                ci = e.get("ci") or [None, None]
                lines.append(f"    {t} alone vs the reference's {t}: rho {_num(e['spearman'], '.3f')} "
                             f"[{_num(ci[0], '.3f')}, {_num(ci[1], '.3f')}] ({e.get('patterns')} patterns)")
        base = ref.get("baseline")
        if base and base.get("difference") is not None:
            bci = base.get("ci") or [None, None]
            lines.append(
                f"    against the same reference, {base['against']} (its own small side): rho "
                f"{_num(base.get('spearman'), '.3f')}; this run minus that {base['difference']:+.3f} "
                f"[{_num(bci[0], '+.3f')}, {_num(bci[1], '+.3f')}] (paired bootstrap, {base['patterns']} patterns)"
            )
    if r.get("per_task") and len(r["per_task"]) > 1:
        lines.append("  per task (seed-to-seed rho, saturated share, score range per fidelity; rho across them):")
        for task, e in r["per_task"].items():
            parts = []
            for f in r["per_fidelity"]:
                if f in e:
                    x = e[f]
                    lo, hi = x.get("score_range") or (None, None)
                    parts.append(f"{f} {_num(x.get('seed_to_seed'), '.2f')}, {_num(x.get('saturated_share'), '.0%')},"
                                 f" {_num(lo, '.2f')}..{_num(hi, '.2f')}")
            if e.get("spearman") is not None:
                ci = e.get("ci") or [None, None]
                parts.append(f"rho {_num(e['spearman'], '.2f')} [{_num(ci[0], '.2f')}, {_num(ci[1], '.2f')}]")
            lines.append(f"    {task:26s} " + " | ".join(parts))
    if r.get("failed"):
        lines.append(f"  {len(r['failed'])} evaluations failed (see evaluations.jsonl)")
    return "\n".join(lines)
