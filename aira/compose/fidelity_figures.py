"""The figures of a fidelity run, from its score tables alone (no training): per fidelity (seed-to-seed
Spearman, noise floor, saturation), across fidelities (Spearman with a bootstrap interval and the ceiling
both sides' seed noise allows), against the patterns' composition (each primitive count's own ranking and
the agreement beyond it), per MAD task, and against another run's scores (`summarize` assembles
fidelity.json). Split from `aira.compose.fidelity`, which trains, prints and keeps the measured table,
and re-exports these names. The statistics are `aira.compose.stats`."""

from __future__ import annotations

import math

# chance accuracy of each MAD task, as a share of the content vocabulary: recall answers are values
# (half the vocabulary), copying / compression / memorization answers range over all content tokens
_MAD_CHANCE_DIVISOR = {
    "in_context_recall": 0.5,
    "fuzzy_in_context_recall": 0.5,
    "noisy_in_context_recall": 0.5,
    "selective_copying": 1.0,
    "compression": 1.0,
    "memorization": 1.0,
}


def metric_bounds(train: dict) -> tuple[float | None, float | None]:
    """(ceiling, chance) of the proxy's metric: MAD accuracy has both; bits per byte has neither that
    a pattern could plausibly reach, so LM saturation is not defined (None, None)."""
    task = str(train.get("task", ""))
    if not task.startswith("mad"):
        return None, None
    if train.get("mad_score", "accuracy") == "loglik":
        return 1.0, 0.0  # certainty on every answer; a uniform guess over the vocabulary
    from aira.data.mad import resolve_settings
    from aira.data.madlab import MadLabSettings, answer_alphabet
    from aira.train.sources import parse_task, split_mad_name

    chances = []
    for name in parse_task(task).names:
        base, own = split_mad_name(name)
        s = resolve_settings(own or train.get("mad_settings", "cpu"))
        if isinstance(s, MadLabSettings):  # MAD-lab's per-task vocabularies hold special tokens
            chances.append(1 / answer_alphabet(base, s.task(base)))
        else:
            chances.append(1 / (s.vocab_size * _MAD_CHANCE_DIVISOR[base]))
    return 1.0, sum(chances) / len(chances)


def _finite(x) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def fidelity_figures(table: dict[str, list[float]], *, ceiling: float | None, chance: float | None,
                     group: int = 1) -> dict:
    """Per-fidelity figures from pattern -> scores per seed (seed order shared by all patterns).

    `group` is the number of seeds a search averages per candidate (the proxy's `seeds`): the figures a
    search sees are those of `group`-seed means. `seed_to_seed_candidates` measures them from disjoint seed
    groups (needs 2 x group seeds); `seed_to_seed_predicted` is the Spearman-Brown estimate from one seed."""
    from aira.compose import stats

    full = {p: v for p, v in table.items() if v}
    out: dict = {"patterns": len(full), "seeds": min((len(v) for v in full.values()), default=0)}
    means = [sum(v) / len(v) for v in full.values()]
    out["mean_score"] = sum(means) / len(means) if means else None
    out["score_range"] = [min(means), max(means)] if means else None
    multi = {p: v for p, v in full.items() if len(v) >= 2}
    out["seed_to_seed"] = _finite(stats.seed_to_seed_spearman(multi)) if len(multi) >= 2 else None
    out["noise_floor"] = stats.noise_floor(multi) if multi else None
    out["seeds_per_candidate"] = group
    out["seed_to_seed_candidates"] = out["seed_to_seed"] if group == 1 else None
    out["seed_to_seed_predicted"] = None
    if group > 1 and out["seed_to_seed"] is not None:
        out["seed_to_seed_predicted"] = _finite(stats.spearman_brown(out["seed_to_seed"], group))
        grouped = {p: v for p, v in full.items() if len(v) >= 2 * group}
        if len(grouped) >= 2:
            out["seed_to_seed_candidates"] = _finite(stats.grouped_seed_to_seed_spearman(grouped, group))
    out["candidate_noise"] = out["noise_floor"] / math.sqrt(group) if out["noise_floor"] is not None else None
    if full and (ceiling is not None or chance is not None):  # bits per byte has neither: undefined
        sat = stats.saturation(full, ceiling=ceiling, chance=chance)
        out["saturation"] = {
            k: sat[k]
            for k in ("saturated_share", "ceiling_share", "chance_share", "noise", "at_ceiling", "at_chance")
        }
    else:
        out["saturation"] = None
    out["ceiling"], out["chance"] = ceiling, chance
    return out


def mean_reliability(table: dict[str, list[float]]) -> dict:
    """How well the per-pattern seed means of a table would repeat on fresh seeds: the seed-to-seed Spearman
    of single seeds (measured on the patterns with two or more), carried to the mean number of seeds per
    pattern by Spearman-Brown. An estimate (a table can mix 1- and 2-seed patterns); None without 2 seeds on
    at least 3 patterns."""
    from aira.compose import stats

    multi = {p: v for p, v in table.items() if len(v) >= 2}
    seeds = sum(len(v) for v in table.values()) / len(table) if table else 0.0
    if len(multi) < 3:
        return {"single": None, "seeds": seeds, "reliability": None, "patterns": len(multi)}
    single = stats.seed_to_seed_spearman(multi)
    rel = stats.spearman_brown(single, seeds) if math.isfinite(single) else float("nan")
    return {"single": _finite(single), "seeds": seeds, "reliability": _finite(rel), "patterns": len(multi)}


def cross_fidelity(a: dict[str, list[float]], b: dict[str, list[float]], *, seed: int = 0) -> dict:
    """Spearman (with a 95% bootstrap interval) of the mean scores of the patterns two fidelities share, and
    the most that Spearman could be expected to reach given both sides' seed noise (`ceiling`, None
    unless each side holds 2 seeds for at least 3 shared patterns)."""
    from aira.compose.stats import attenuation_ceiling, bootstrap_spearman

    common = [p for p in a if a[p] and b.get(p)]
    if len(common) < 3:
        return {"spearman": None, "ci": None, "patterns": len(common), "ceiling": None}
    xs = [sum(a[p]) / len(a[p]) for p in common]
    ys = [sum(b[p]) / len(b[p]) for p in common]
    rho, lo, hi = bootstrap_spearman(xs, ys, seed=seed)
    ra = mean_reliability({p: a[p] for p in common})
    rb = mean_reliability({p: b[p] for p in common})
    ceiling = None
    if ra["reliability"] is not None and rb["reliability"] is not None:
        ceiling = {"spearman": _finite(attenuation_ceiling(ra["reliability"], rb["reliability"])),
                   "reliability": [ra["reliability"], rb["reliability"]], "seeds": [ra["seeds"], rb["seeds"]],
                   "seed_to_seed": [ra["single"], rb["single"]], "patterns": [ra["patterns"], rb["patterns"]]}
    return {"spearman": _finite(rho), "ci": [_finite(lo), _finite(hi)], "patterns": len(common), "ceiling": ceiling}


def composition_check(a: dict[str, list[float]], b: dict[str, list[float]], *, seed: int = 0,
                      intervals: bool = True) -> dict:
    """What the patterns' composition alone says about fidelity b, and what a says beyond it.

    `counts`: for each primitive code, the Spearman (95% bootstrap interval) of how many layers of it a
    pattern has against b's mean scores: a ranking that costs nothing to compute. A proxy whose agreement
    with b is below a count's has measured nothing the composition did not already say (the sign of a
    count's rho is read off b, so the best count is an optimistic baseline).
    `given_composition`: the Spearman of a's and b's means with every code's count partialled out
    (`stats.partial_spearman`, linear in the count ranks): whether a ranks the orderings of a composition,
    not only the mix, the way b does. None below 3 shared patterns, or where nothing is left once the
    counts are taken out. `intervals=False` skips the bootstrap (intervals None): the figures a run
    rewrites after every evaluation, where a second of bootstrapping per write would slow the training."""
    from aira.compose.stats import bootstrap_partial_spearman, bootstrap_spearman, partial_spearman, spearman

    common = [p for p in a if a[p] and b.get(p)]
    if len(common) < 3:
        return {"patterns": len(common), "counts": {}, "given_composition": None}
    xs = [sum(a[p]) / len(a[p]) for p in common]
    ys = [sum(b[p]) / len(b[p]) for p in common]
    codes = sorted({c for p in common for c in p})
    counts = {c: [float(p.count(c)) for p in common] for c in codes}
    # two primitives in patterns of one length: the second count is the first reversed, so only one is shown
    shown = codes[:1] if len(codes) == 2 and len({len(p) for p in common}) == 1 else codes
    out_counts = {}
    for c in shown:
        col = counts[c]
        if len(set(col)) < 2:
            continue  # every pattern has as many: no ranking
        rho, lo, hi = bootstrap_spearman(col, ys, seed=seed) if intervals else (spearman(col, ys), None, None)
        out_counts[c] = {"spearman": _finite(rho), "ci": [_finite(lo), _finite(hi)]}
    covs = list(counts.values())
    rho, lo, hi = (bootstrap_partial_spearman(xs, ys, covs, seed=seed) if intervals
                   else (partial_spearman(xs, ys, covs), None, None))
    given = None if _finite(rho) is None else {"spearman": _finite(rho), "ci": [_finite(lo), _finite(hi)]}
    return {"patterns": len(common), "counts": out_counts, "given_composition": given}


def task_figures(tasks: dict[str, dict[str, dict[str, list[float]]]], trains: dict[str, dict], *,
                 intervals: bool = True) -> dict:
    """Per MAD task of a proxy (`tasks`: fidelity -> task -> pattern -> per-seed scores): each fidelity's
    seed-to-seed Spearman, noise floor, saturated share (against the task's own chance) and score range,
    and the first-to-last Spearman of that task alone. Which tasks carry a ranking that survives the
    larger scale, and which are noise or saturated, is what a proxy's design is tuned on (docs/fidelity.md)."""
    from aira.compose.stats import spearman

    names = list(tasks)
    out: dict = {}
    for task in dict.fromkeys(t for f in names for t in tasks[f]):
        entry: dict = {}
        for f in names:
            table = tasks[f].get(task) or {}
            if not table:
                continue
            _, chance = metric_bounds({**trains[f], "task": f"mad:{task}"})
            ceiling = 1.0 if chance is not None else None
            figs = fidelity_figures(table, ceiling=ceiling, chance=chance)
            sat = figs.get("saturation") or {}
            entry[f] = {"seed_to_seed": figs["seed_to_seed"], "noise_floor": figs["noise_floor"],
                        "saturated_share": sat.get("saturated_share"), "score_range": figs["score_range"],
                        "chance": chance}
        if len(names) >= 2 and tasks[names[0]].get(task) and tasks[names[-1]].get(task):
            if intervals:
                c = cross_fidelity(tasks[names[0]][task], tasks[names[-1]][task])
                entry["spearman"], entry["ci"] = c["spearman"], c["ci"]
            else:
                a, b = tasks[names[0]][task], tasks[names[-1]][task]
                common = [p for p in a if a[p] and b.get(p)]
                entry["spearman"] = (_finite(spearman([sum(a[p]) / len(a[p]) for p in common],
                                                      [sum(b[p]) / len(b[p]) for p in common]))
                                     if len(common) >= 3 else None)
                entry["ci"] = None
        out[task] = entry
    return out


def best_count(comp: dict | None) -> tuple[str, float] | None:
    """(code, |rho|) of the primitive count that ranks the other fidelity best, or None."""
    counts = {c: v["spearman"] for c, v in ((comp or {}).get("counts") or {}).items()
              if isinstance(v, dict) and v.get("spearman") is not None}
    if not counts:
        return None
    code = max(counts, key=lambda c: abs(counts[c]))
    return code, abs(counts[code])


def baseline_comparison(run: dict[str, list[float]], baseline: dict[str, list[float]],
                        reference: dict[str, list[float]], *, seed: int = 0) -> dict:
    """Does this run rank like the reference better than the reference run's own small side does? Both
    against the reference on the patterns all three hold, and their difference with a paired bootstrap
    interval over patterns (with 20 patterns, differences of a few tenths are within the noise)."""
    from aira.compose.stats import paired_bootstrap_spearman_difference, spearman

    common = [p for p in run if run[p] and baseline.get(p) and reference.get(p)]
    if len(common) < 3:
        return {"patterns": len(common), "spearman": None, "run_spearman": None, "difference": None, "ci": None,
                "baseline_at_least_as_good": None}

    def means(t):
        return [sum(t[p]) / len(t[p]) for p in common]

    xs, bs, ys = means(run), means(baseline), means(reference)
    d = paired_bootstrap_spearman_difference(xs, bs, ys, seed=seed)
    return {"patterns": len(common), "spearman": _finite(spearman(bs, ys)), "run_spearman": _finite(spearman(xs, ys)),
            "difference": _finite(d["difference"]), "ci": [_finite(x) for x in d["ci"]],
            "baseline_at_least_as_good": _finite(d["b_at_least_as_good"])}


def summarize(
    scores: dict[str, dict[str, list[float]]],
    bounds: dict[str, tuple],
    seconds: dict[str, list[float]],
    *,
    meta: dict | None = None,
    group: int = 1,
    reference: dict | None = None,
    tasks: dict | None = None,
    intervals: bool = True,
) -> dict:
    """fidelity.json: headline keys (the report shows them first) for the first fidelity and the first-to-
    last comparison, then everything per fidelity. `scores`: fidelity -> pattern -> per-seed scores."""
    names = list(scores)
    per = {}
    for f in names:
        figs = fidelity_figures(scores[f], ceiling=bounds[f][0], chance=bounds[f][1], group=group)
        secs = seconds.get(f) or []
        figs["seconds_per_eval"] = sum(secs) / len(secs) if secs else None
        figs["evaluations"] = len(secs)
        per[f] = figs
    first = per[names[0]] if names else {}
    cross = cross_fidelity(scores[names[0]], scores[names[-1]]) if len(names) >= 2 else {}
    sat = first.get("saturation") or {}
    out = {
        "spearman": cross.get("spearman"),
        "ci": cross.get("ci"),
        "seed_to_seed": first.get("seed_to_seed"),
        "noise_floor": first.get("noise_floor"),
        "saturation": sat.get("saturated_share"),
        "seeds_per_candidate": group,
        "seed_to_seed_candidates": first.get("seed_to_seed_candidates"),
        "seed_to_seed_predicted": first.get("seed_to_seed_predicted"),
    }
    if cross:
        out["compared"] = f"{names[0]} vs {names[-1]} ({cross['patterns']} patterns)"
        out["compared_patterns"] = cross["patterns"]
        out["ceiling"] = cross.get("ceiling")
        out["composition"] = composition_check(scores[names[0]], scores[names[-1]], intervals=intervals)
    if reference is not None and names:
        ref = cross_fidelity(scores[names[0]], reference["scores"])
        out["reference"] = {
            "against": f"{reference.get('proxy')} {reference['fidelity']} ({reference['dir']})",
            "spearman": ref["spearman"], "ci": ref["ci"], "patterns": ref["patterns"], "train": reference["train"],
            "ceiling": ref.get("ceiling"),
            "composition": composition_check(scores[names[0]], reference["scores"], intervals=intervals),
        }
        mine = (tasks or {}).get(names[0]) or {}
        shared = [t for t in mine if t in (reference.get("tasks") or {})]
        if shared:
            out["reference"]["per_task"] = {}
            for t in shared:
                c = (cross_fidelity(mine[t], reference["tasks"][t]) if intervals
                     else {"spearman": None, "ci": None, "patterns": None})
                out["reference"]["per_task"][t] = {"spearman": c["spearman"], "ci": c["ci"], "patterns": c["patterns"]}
        if reference.get("baseline"):
            out["reference"]["baseline"] = baseline_comparison(scores[names[0]], reference["baseline"]["scores"],
                                                               reference["scores"])
            out["reference"]["baseline"]["against"] = f"{reference.get('proxy')} {reference['baseline']['fidelity']}"
    out.update(meta or {})
    out["per_fidelity"] = per
    if tasks and any(tasks.get(f) for f in names):
        trains = (meta or {}).get("train") or {}
        out["per_task"] = task_figures({f: tasks.get(f) or {} for f in names}, {f: trains.get(f) or {} for f in names},
                                       intervals=intervals)
    return out
