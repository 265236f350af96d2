"""The AIRA-Compose task: propose a layer pattern; the harness trains it as a proxy model and scores it.

Spaces: `attn-mlp` (A, M: the AIRAformer family), `attn-mlp-mamba` (A, M, S: the AIRAhybrid family),
`attn-mlp-deltanet` (A, M, D: Gated DeltaNet hybrids, as in Qwen3-Next and Kimi Linear), or any
registered primitives by code or name ("A,M,W", "attn,mlp,swa", "A,D,E"). Patterns have `layers`
layers (16 by default).

Proxies (`proxy=`): `mad` and `lm` pick, for the machine's device kind, the family's proxy with the best
measured transfer (`aira.tasks.proxies.choose_proxy`); `mad-cpu`, `mad-gpu`,
`lm-cpu`, `lm-gpu` name one (`mad-cpu-ladder` is an experimental CPU alternative, docs/fidelity.md).
Each fixes the model preset, the data, the training budget and the score, so a candidate is its pattern
alone. The metric is on the search split; the hidden selection split is scored in the same job and
never shown to agents.

Evaluations are cached on disk (`aira.train.cache`, shared across runs), keyed by the resolved training
settings, seed, device type and evaluator version: a duplicate pattern is not re-trained. `seeds=k` trains k seeds per pattern and reports their mean (and spread); by default a proxy's
own `seeds`, the number its measured fidelity figures were reached with.

Promotion (`promote_train=`): the trainer settings of a higher fidelity, resolved by the caller (`aira
compose run --promote` hands it `aira.compose.fidelity.fidelity_train(proxy, "large")`, a layer above);
`promotion_job` evaluates a candidate with them, through the same job function and cache.

Promoted primitives (`primitives=`, aira/tasks/promoted.py): {letter: Promotion JSON}, an LRA mechanism's
source with its sha256 and origin, stored in the run's config so a resume uses the recorded copy. Each
letter joins the space, registered here as a stub (counts only, measured in a sandbox; its code never runs
in this process). A candidate that uses one is scored as LRA scores an agent's file
(aira/tasks/promoted_score.py): trained in one sandbox, its models' outputs taken in another on the public
val rows (audited for causality) and on select rows drawn from the run's secret seed, sent without their
future (`secret_dir`: a 0700 folder in the run folder, stored relative to it; a temporary one without
it), scored by the job's own process, which never runs the mechanism's code; outside the shared
evaluation cache, never batched. MAD proxies only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import tempfile
import weakref
from typing import Any

from aira.agents.base import ProposalSpace, Task
from aira.agents.types import Job
from aira.errors import UsageError
from aira.tasks.patterns import PatternSpace
from aira.tasks.proxies import (  # noqa: F401 - the proxies are this task's vocabulary; callers import them here
    PROXIES,
    Proxy,
    choose_proxy,
    is_proxy_file,
    load_proxy_file,
    measured_entry,
    pick_proxy,
    resolve_proxy,
    settings_fingerprint,
)
from aira.train.result import TrainResult

SPACES = {"attn-mlp": "AM", "attn-mlp-mamba": "AMS", "attn-mlp-deltanet": "AMD"}
PROMOTE_COST = 64.0  # the large fidelity's evaluation / a candidate's: 4x width squared x 4x tokens


def resolve_space(space: str) -> str:
    """The alphabet of primitive codes of a named space or a comma list of codes / names."""
    from aira.models.registry import get

    if space in SPACES:
        return SPACES[space]
    codes = [get(item).code for item in space.replace(" ", ",").split(",") if item.strip()]
    if len(codes) < 2:
        raise UsageError(f"a search space needs at least two primitives, got {space!r}; "
                         f"named spaces: {', '.join(SPACES)}")
    return "".join(dict.fromkeys(codes))


def baseline_patterns(alphabet: str, layers: int) -> dict[str, str]:
    """The baselines every Compose run evaluates beside the agents, cut or stacked to `layers`."""
    from aira.models.pattern import stack_pattern

    def fit(p: str) -> str:
        return stack_pattern(p, layers / len(p))[:layers]

    out = {}
    if "A" in alphabet and "M" in alphabet:
        out["llama-3.2 (AM alternation)"] = fit("AM")
        out["composer 2A+4M (stacked)"] = fit("AAMMMM")
        out["composer 2A5M2A3M1A3M (stretched)"] = fit("AAMMMMMAAMMMAMMM")
    if {"A", "M", "S"} <= set(alphabet):
        # Nemotron-H style: Mamba-2 and MLP layers with ~8% attention (one A per 16 layers, mid-depth).
        base = ("SM" * layers)[:layers]
        mid = (layers // 2) & ~1
        out["nemotron-h style (~8% attention)"] = base[:mid] + "A" + base[mid + 1:]
    ffn = "E" if "E" in alphabet else "M" if "M" in alphabet else ""
    if {"A", "D"} <= set(alphabet) and ffn:
        # Qwen3-Next (model card of Qwen3-Next-80B-A3B: 12 x (3 x (Gated DeltaNet -> MoE) -> 1 x (Gated
        # Attention -> MoE))) and Kimi Linear (arXiv 2510.26692: 3 KDA, a Gated DeltaNet with per-channel
        # decay, to 1 MLA, each with an MoE MLP) interleave the same way: three linear-attention layers,
        # then one global attention layer, every mixer followed by its MLP. In aira's codes both read
        # (D f)x3 A f, f the MoE (E) when the space has it, else M; their attention variants (gated
        # attention, MLA without RoPE) are approximated by A.
        out[f"qwen3-next / kimi-linear 3:1 (D{ffn}D{ffn}D{ffn}A{ffn})"] = fit(f"D{ffn}D{ffn}D{ffn}A{ffn}")
    return out


class ComposeTask(Task):
    proposal_kind = "pattern"

    def __init__(self, *, space: str = "attn-mlp", proxy: str = "mad", layers: int = 16, seeds: int | None = None,
                 threads: int | None = None, cache_dir: str | None = None, device: str = "auto",
                 timeout_s: float | None = None, batch: bool = False, promote_train: dict | None = None,
                 promote_cost: float = PROMOTE_COST, primitives: dict | None = None, secret_dir: str | None = None):
        from aira.tasks.promoted import Promotion, register_stub
        from aira.tasks.promoted_score import check_scorable

        if layers < 1 or layers > 64:
            raise UsageError(f"layers must be between 1 and 64, got {layers}")
        self.primitives = {k: Promotion(**v) for k, v in (primitives or {}).items()}
        for promo in self.primitives.values():  # stubs: the mechanism's code runs in the jobs' sandboxes only
            register_stub(promo, masked=[secret_dir] if secret_dir else ())
        self.space_name, self.alphabet = space, resolve_space(space)
        added = "".join(c for c in self.primitives if c not in self.alphabet)
        if added:  # the promoted letters join the space; another space's measured figures do not apply
            self.space_name, self.alphabet = f"{space}+{added}", self.alphabet + added
        self.proxy, self.proxy_choice = pick_proxy(proxy, device)  # choice: why `mad` / `lm` became it
        if self.primitives:
            check_scorable(self.proxy.train_kwargs(), "".join(self.primitives))
            if promote_train:
                check_scorable(promote_train, "".join(self.primitives))
            if secret_dir is None:  # no run folder: a secret for this task object only
                secret_dir = tempfile.mkdtemp(prefix="aira-compose-secret-")
                weakref.finalize(self, shutil.rmtree, secret_dir, True)
        self.secret_dir = secret_dir
        seeds = self.proxy.seeds if seeds is None else seeds
        if seeds < 1:
            raise UsageError(f"seeds must be at least 1, got {seeds}")
        self.layers, self.seeds, self.threads, self.device = layers, seeds, threads, device
        self.cache_dir = cache_dir
        self.batch = batch  # jobs carry a batch key: an executor with batch > 1 trains several as one
        self.timeout_s = timeout_s or self.proxy.timeout_s * seeds
        self.lower_is_better = self.proxy.lower_is_better
        self.name = f"compose-{self.space_name}-{self.proxy.name}"
        # stored in the run's config, so a resumed run promotes at the settings it started with
        self.promote_train, self.promote_cost = promote_train, promote_cost
        self.promotion_fidelity = "large" if promote_train else None

    @property
    def measured_noise(self) -> float | None:
        """Std of a candidate's score from the proxy's shipped fidelity figures (pooled over the calibration
        patterns, divided by sqrt(seeds) for a mean of seeds), when they were measured in this space at this
        depth; the run's noise floor uses it when it has fewer than 3 reference seeds of its own."""
        e = measured_entry(self.proxy)
        if e is None or e.get("noise_floor") is None:
            return None
        if e.get("space") != self.space_name or e.get("layers") != self.layers:
            return None
        return float(e["noise_floor"]) / self.seeds ** 0.5

    def seconds_per_eval(self) -> tuple[float, str] | None:
        """The proxy's shipped training seconds per seed (docs/fidelity.md) x seeds per candidate, when
        measured in this space (Mamba-2 layers cost ~2.5x on a CPU, so another space's figure would mislead)."""
        e = measured_entry(self.proxy)
        if e is None or not e.get("seconds_per_eval") or e.get("space") != self.space_name:
            return None
        return (float(e["seconds_per_eval"]) * self.seeds,
                f"{self.proxy.name}'s training seconds per seed x {self.seeds}, measured {e.get('date', '?')} on "
                f"{e.get('machine', '?')}")

    def describe(self) -> str:
        from aira.models.registry import get

        prims = "\n".join(f"  {c} = {get(c).name}: {(get(c).cls.__doc__ or '').strip().splitlines()[0]}"
                          for c in self.alphabet)
        if self.lower_is_better:
            metric = "validation bits per byte (lower is better)"
        else:
            if self.proxy.setting("mad_score") == "loglik":
                metric = ("mean log-likelihood score on the answer positions of the MAD tasks (1 - cross-entropy / "
                          "ln(vocabulary size): 0 for a uniform guess, 1 for certainty on every right answer)")
            else:
                metric = "mean accuracy on the answer positions of the MAD tasks"
            if self.proxy.setting("curve_points"):
                metric += (f", averaged over {self.proxy.setting('curve_points')} evenly spaced points of training (the "
                           f"learning-curve area: it rewards learning fast as well as learning well)")
            metric += " (higher is better)"
        return (
            f"Design a {self.layers}-layer language-model backbone as a layer pattern: one primitive per "
            f"layer, each a pre-norm residual sublayer x + f(RMSNorm(x)).\nPrimitives:\n{prims}\n"
            f"Write the pattern as a string of {self.layers} codes (e.g. {('AM' * self.layers)[:self.layers]}); "
            f"repetition like (AM)x{self.layers // 2} is accepted.\n"
            f"Proxy: {self.proxy.description}. Every candidate is trained from scratch with the same budget, "
            f"data and optimiser; the width is fixed, so more of an expensive primitive is not free.\n"
            f"Metric: {metric}."
        )

    def canonical(self, proposal: Any) -> str:
        from aira.models import parse_pattern

        return "".join(parse_pattern(str(proposal)))

    def validate(self, proposal: Any) -> str | None:
        if not isinstance(proposal, str):
            return f"the proposal must be a pattern string, got {type(proposal).__name__}"
        try:
            codes = self.canonical(proposal)
        except UsageError as e:
            return str(e)
        if len(codes) != self.layers:
            return f"the pattern must have exactly {self.layers} layers, got {len(codes)}"
        bad = sorted(set(codes) - set(self.alphabet))
        if bad:
            return f"primitive(s) {', '.join(bad)} are not in this space ({', '.join(self.alphabet)})"
        return None

    def make_job(self, proposal: Any, *, seed: int, job_id: str, budget_factor: int = 1,
                 train: dict | None = None, cost: float = 1.0) -> Job:
        """The evaluation job of a pattern; `budget_factor` trains it that many times longer (halving);
        `train` replaces the proxy's trainer settings (another fidelity), whose job costs about `cost` times
        a candidate's (its timeout scales with it)."""
        train = dict(train) if train is not None else self.proxy.train_kwargs()
        if budget_factor != 1:
            from aira.train.budget import scaled_budget

            train["budget"] = scaled_budget(train["budget"], budget_factor)
        kwargs = {"pattern": self.canonical(proposal), "seed": seed, "seeds": self.seeds,
                  "cache_dir": self.cache_dir, "threads": self.threads, "device": self.device, "train": train}
        used = sorted(set(kwargs["pattern"]) & set(self.primitives))
        if used:  # the mechanism's code runs in two sandboxes; this job's process scores (promoted_score.py)
            from aira.tasks.promoted import measured_json
            from aira.tasks.promoted_score import MEM_MB, SCORE_TIMEOUT_FRACTION, hidden_seed

            del kwargs["cache_dir"]
            timeout = self.timeout_s * budget_factor * cost
            kwargs.update(primitives={c: self.primitives[c].to_json() for c in used}, timeout_s=timeout,
                          measured={c: measured_json(self.primitives[c]) for c in used},
                          secret_path=str(hidden_seed(self.secret_dir)), masked=[str(self.secret_dir)],
                          mem_mb=None if self.proxy.needs_gpu else MEM_MB)
            return Job(id=job_id, fn="aira.tasks.promoted_score:evaluate_promoted", kwargs=kwargs,
                       timeout_s=timeout * (1 + SCORE_TIMEOUT_FRACTION) + 120.0,
                       gpus=1 if self.proxy.needs_gpu else 0)
        return Job(id=job_id, fn="aira.tasks.compose:evaluate_pattern", kwargs=kwargs,
                   timeout_s=self.timeout_s * budget_factor * cost, gpus=1 if self.proxy.needs_gpu else 0,
                   **(batch_fields(kwargs) if self.batch else {}))

    def promotion_job(self, proposal: Any, *, seed: int, job_id: str) -> Job:
        """The candidate at the promotion fidelity (`promote_train`), same seeds, job function and cache."""
        if not self.promote_train:
            raise UsageError("this Compose task was built without a promotion fidelity (promote_train)")
        return self.make_job(proposal, seed=seed, job_id=job_id, train=self.promote_train, cost=self.promote_cost)

    def reference(self) -> str:
        return ("AM" * self.layers)[: self.layers] if "A" in self.alphabet and "M" in self.alphabet \
            else self.alphabet[0] * self.layers

    def baselines(self) -> dict[str, str]:
        return baseline_patterns(self.alphabet, self.layers)

    def space(self) -> ProposalSpace:
        return PatternSpace(self.layers, self.alphabet)


def _cache_key(pattern: str, train: dict, seed: int, device_type: str = "cpu") -> str:
    """Keyed on what the settings resolve to, not their names, so a retuned preset is a cache miss."""
    from aira.train.cache import cache_key
    from aira.train.trainer import TrainConfig

    return cache_key(TrainConfig(pattern=pattern, seed=seed, **train), device_type)


def evaluate_pattern(*, pattern: str, seed: int = 0, seeds: int = 1, cache_dir: str | None = None,
                     threads: int | None = None, device: str = "auto", train: dict, batch: bool = False) -> dict:
    """The frozen evaluation (a Job's function): train `seeds` seeds of the pattern, average the scores.
    `batch`: train the seeds (and a MAD proxy's tasks) as one (aira.train.batched). A pattern with a
    promoted primitive goes to aira.tasks.promoted_score.evaluate_promoted instead."""
    return evaluate_patterns(items=[{"pattern": pattern, "seed": seed}], seeds=seeds, cache_dir=cache_dir,
                             threads=threads, device=device, train=train, batch=batch)[0]


def evaluate_patterns(*, items: list[dict], seeds: int = 1, cache_dir: str | None = None,
                      threads: int | None = None, device: str = "auto", train: dict, batch: bool = True) -> list[dict]:
    """Several evaluations in one process (an executor's batch of jobs): `items` holds each one's pattern and
    first seed; with `batch` every model of every item trains as one. One result per item, as
    `evaluate_pattern` returns it."""
    from aira.train.cache import cached_train_many
    from aira.train.trainer import TrainConfig

    if threads is None and os.environ.get("AIRA_THREADS"):
        threads = int(os.environ["AIRA_THREADS"])
    cfgs = [TrainConfig(pattern=it["pattern"], seed=s, threads=threads, device=device, progress=False, **train)
            for it in items for s in range(it["seed"], it["seed"] + seeds)]
    pairs = cached_train_many(cfgs, cache_dir, batch=batch)
    return [_seed_mean(pairs[i * seeds:(i + 1) * seeds], seeds) for i in range(len(items))]


def batch_fields(kwargs: dict) -> dict:
    """The Job fields that let an executor batch `evaluate_pattern` jobs which differ only in pattern and
    seed (`evaluate_batch` then trains them as one)."""
    shared = {k: v for k, v in kwargs.items() if k not in ("pattern", "seed")}
    key = hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"batch_key": f"compose:{key}", "batch_fn": "aira.tasks.compose:evaluate_batch"}


def evaluate_batch(jobs: list[dict]) -> list[dict]:
    """An executor's batch (`Job.batch_fn`): the kwargs of `evaluate_pattern` jobs that share everything but
    the pattern and seed (their `batch_key` says so), trained as one."""
    first = {k: v for k, v in jobs[0].items() if k not in ("pattern", "seed")}
    return evaluate_patterns(items=[{"pattern": j["pattern"], "seed": j.get("seed", 0)} for j in jobs],
                             **{**first, "batch": True})


def _seed_mean(pairs: list[tuple[TrainResult, bool]], seeds: int) -> dict:
    """The job's result: the mean over the candidate's seeds of their TrainResults, and its first seed's figures."""
    runs = [r for r, _ in pairs]
    cached = sum(hit for _, hit in pairs)
    bad = [r for r in runs if not r.ok]
    first = runs[0]
    metrics = {k: getattr(first, k) for k in ("metric_name", "params", "non_embedding_params", "flops_per_token",
                                              "tokens", "steps", "tokens_per_s", "peak_mem_mb", "device")}
    metrics.update(seeds=seeds, cached=cached, seed_metrics=[r.metric for r in runs],
                   per_task=first.per_task_dict())
    if first.batched:
        metrics["batched"] = first.batched
    if bad:
        return {"status": bad[0].status, "error": bad[0].error, **metrics}
    vals = [r.metric for r in runs]
    metrics["seed_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"status": "ok", "metric": statistics.fmean(vals),
            "selection_metric": statistics.fmean(r.selection_metric for r in runs), **metrics}
