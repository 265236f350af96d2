"""Successive halving over a finished Compose run: the best candidates, trained longer.

A search scores every candidate at the proxy's budget, where the noise floor is large next to the
differences between the best few. Successive halving spends more compute only where it can change the
answer: rung 0 is the search itself; rung k keeps the best `ceil(n / eta)` patterns of rung k-1 (at
least `keep_min`) and trains each with `eta ** k` times the proxy's training budget, with the proxy's
seeds, data and model. The last rung's order is the promoted ranking.

Scores are read on the hidden selection split, like the final pick of `aira compose run`: agents never
see them. Evaluations go through the run's own cache, so an interrupted halving resumes for free.

    aira compose halving RUN [--eta 3] [--rungs 2] [--workers 2]

writes `RUN/halving.json` (rungs, each with its budget and its patterns' scores) and prints the table;
`aira report RUN` shows it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from aira.errors import UsageError
from aira.train.budget import scaled_budget


@dataclass
class Entry:
    pattern: str
    score: float | None          # mean over seeds, selection split (search split if it has none)
    search_score: float | None   # mean over seeds, the search split
    seed_std: float | None = None
    status: str = "ok"
    error: str = ""


@dataclass
class Rung:
    index: int
    factor: int                  # x the proxy's training budget
    budget: str
    entries: list[Entry] = field(default_factory=list)

    def ranked(self, lower_is_better: bool) -> list[Entry]:
        ok = [e for e in self.entries if e.status == "ok" and e.score is not None]
        return sorted(ok, key=lambda e: e.score if lower_is_better else -e.score)


def rung_sizes(n: int, eta: int, rungs: int, keep_min: int = 2) -> list[int]:
    """Candidates per rung, rung 0 first: each keeps ceil(previous / eta), never fewer than keep_min
    (nor more than it had); a rung that would keep as many as the one before ends the schedule."""
    if eta < 2:
        raise UsageError(f"--eta must be at least 2, got {eta}")
    if rungs < 1:
        raise UsageError(f"--rungs must be at least 1, got {rungs}")
    sizes = [n]
    for _ in range(rungs):
        keep = min(sizes[-1], max(keep_min, math.ceil(sizes[-1] / eta)))
        if keep == sizes[-1] and len(sizes) > 1:
            break
        sizes.append(keep)
    return sizes


def load_run(run: str | Path) -> tuple[dict, list[Entry]]:
    """(a Compose run's config, its candidates as rung 0: one per pattern, the mean over re-evaluations;
    the search's reference and baseline evaluations, and its promotions, are not candidates)."""
    from aira.agents.journal import Journal
    from aira.agents.stats import PROMOTE

    d = Path(run)
    if not (d / "journal.sqlite").is_file() or not (d / "config.json").is_file():
        raise UsageError(f"no run at {run} (expected config.json and journal.sqlite there)")
    config = json.loads((d / "config.json").read_text())
    if config.get("task") != "compose":
        raise UsageError(f"{run} is a {config.get('task')!r} run, not a Compose run")
    with Journal(d, readonly=True) as j:
        nodes = j.nodes()
    by_pattern: dict[str, list[tuple[float, float]]] = {}
    for n in nodes:
        # promotions (`compose run --promote`) are scores at another fidelity, not candidates of this scale
        if n.status.value != "ok" or n.metric is None or n.operator in ("reference", "baseline", PROMOTE):
            continue
        sel = n.selection_metric if n.selection_metric is not None else n.metric
        by_pattern.setdefault(str(n.proposal), []).append((sel, n.metric))
    entries = [Entry(p, sum(s for s, _ in v) / len(v), sum(m for _, m in v) / len(v)) for p, v in by_pattern.items()]
    return config, entries


def run_halving(run: str | Path, *, eta: int = 3, rungs: int = 2, top: int | None = None, workers: int | None = None,
                executor: str = "local", log=print) -> dict:
    """Promote the run's best candidates through `rungs` rungs of eta-times longer training."""
    from aira.agents.executors import make_executor
    from aira.agents.jobs import run_jobs
    from aira.agents.types import Status
    from aira.tasks.compose import ComposeTask
    from aira.tasks.runs import run_task_kwargs

    d = Path(run)
    config, entries = load_run(d)
    task_kwargs = config["task_kwargs"]
    lower = bool(config.get("resolved", {}).get("task", {}).get("lower_is_better", False))
    if len(entries) < 2:
        raise UsageError(f"{run} has {len(entries)} scored candidate(s); successive halving needs at least 2")
    from aira.machine import plan_workers

    plan = plan_workers(workers)
    workers, threads = plan.workers, plan.threads
    cache = task_kwargs.get("cache_dir")
    if not cache or not Path(cache).is_dir():  # a relative path stored by a run started elsewhere
        cache = str(d / "cache")
    task = ComposeTask(**{**run_task_kwargs(task_kwargs, d), "threads": threads, "cache_dir": cache})
    r0 = Rung(0, 1, task.proxy.budget, entries)
    pool = r0.ranked(lower)
    if top is not None:
        if top < 2:
            raise UsageError(f"--top must be at least 2, got {top}")
        pool = pool[:top]
    sizes = rung_sizes(len(pool), eta, rungs)
    done_rungs = [r0]
    log(f"aira compose halving: {len(entries)} candidates; rungs keep {' -> '.join(map(str, sizes))} "
        f"patterns at {', '.join(f'{eta ** k}x' for k in range(len(sizes)))} the proxy budget "
        f"({task.proxy.budget}), {task.seeds} seed(s) each")
    ex_kwargs = {"log_dir": d / "halving-jobs"} if executor in ("local", "ray") else {}
    t0 = time.time()
    try:
        for k in range(1, len(sizes)):
            factor = eta ** k
            rung = Rung(k, factor, scaled_budget(task.proxy.budget, factor))
            jobs = [(task.make_job(e.pattern, seed=0, job_id=f"rung{k}-{i:03d}", budget_factor=factor), e.pattern)
                    for i, e in enumerate(pool[: sizes[k]])]

            def on_result(job, pattern, res, rung=rung, k=k, n=len(jobs)) -> None:
                m = res.metrics
                ok = res.status == Status.OK and res.metric is not None
                rung.entries.append(Entry(pattern, m.get("selection_metric", res.metric) if ok else None,
                                          res.metric if ok else None, m.get("seed_std"), res.status.value,
                                          (res.error or "")[-300:]))
                log(f"[rung {k} {len(rung.entries)}/{n} {time.time() - t0:.0f}s] {pattern}: "
                    + (f"{rung.entries[-1].score:.4f}" if ok else f"{res.status.value} {res.error[-120:]}"))

            # a fresh executor per rung: run_jobs stops it when the rung is done
            run_jobs(make_executor(executor, slots=workers, **ex_kwargs), jobs, on_result)
            done_rungs.append(rung)
            pool = rung.ranked(lower)
            _write(d, done_rungs, eta, lower, task)
    except KeyboardInterrupt:
        _write(d, done_rungs, eta, lower, task)
        raise
    return _write(d, done_rungs, eta, lower, task)


def _write(d: Path, rungs: list[Rung], eta: int, lower: bool, task) -> dict:
    out = {
        "eta": eta,
        "proxy": task.proxy.name,
        "seeds": task.seeds,
        "lower_is_better": lower,
        "score": "hidden selection split, mean over seeds",
        "rungs": [{"rung": r.index, "factor": r.factor, "budget": r.budget,
                   "ranked": [vars(e) for e in r.ranked(lower)],
                   "failed": [vars(e) for e in r.entries if e.status != "ok" or e.score is None]} for r in rungs],
    }
    last = rungs[-1].ranked(lower)
    out["promoted"] = last[0].pattern if last and len(rungs) > 1 else None
    (d / "halving.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def format_halving(result: dict) -> str:
    """The rungs as a table: each promoted pattern's score at every rung it reached."""
    rungs = result["rungs"]
    order = [e["pattern"] for e in rungs[-1]["ranked"]]
    for r in reversed(rungs[:-1]):  # then the ones dropped earlier, best first
        order += [e["pattern"] for e in r["ranked"] if e["pattern"] not in order]
    scores = [{e["pattern"]: e["score"] for e in r["ranked"]} for r in rungs]
    head = "  ".join(f"{'rung ' + str(r['rung']) + ' (' + r['budget'] + ')':>20}" for r in rungs)
    lines = [f"{'pattern':<24}{head}"]
    for p in order[: max(10, len(rungs[-1]["ranked"]))]:
        cells = "  ".join(f"{scores[i][p]:>20.4f}" if p in scores[i] else f"{'-':>20}" for i in range(len(rungs)))
        lines.append(f"{p:<24}{cells}")
    if result.get("promoted"):
        lines.append(f"promoted: {result['promoted']} (best at {rungs[-1]['budget']})")
    return "\n".join(lines)
