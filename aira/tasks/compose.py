"""The AIRA-Compose task: propose a layer pattern; the harness trains it as a proxy model and scores it.

Spaces: `attn-mlp` (A, M: the AIRAformer family), `attn-mlp-mamba` (A, M, S: the AIRAhybrid family), or
any registered primitives by code or name ("A,M,W", "attn,mlp,swa"). Patterns have `layers` layers
(16 by default).

Proxies (`proxy=`): `mad` and `lm` pick their CPU or GPU preset from the machine; `mad-cpu`, `mad-gpu`,
`lm-cpu`, `lm-gpu` name one (`mad-cpu-ladder` is an experimental CPU alternative, docs/fidelity.md).
Each fixes the model preset, the data, the training budget and the score, so a candidate is its pattern
alone. The metric is on the search split; the hidden selection split is scored in the same job and
never shown to agents.

Evaluations are cached on disk (`aira.train.cache`, shared across runs), keyed by the resolved training
settings, seed, device type and evaluator version: a duplicate pattern is not re-trained. `seeds=k` trains k seeds per pattern and reports their mean (and spread); by default a proxy's
own `seeds`, the number its measured fidelity figures were reached with.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aira.agents.base import ProposalSpace, Task
from aira.agents.types import Job
from aira.errors import UsageError
from aira.tasks.patterns import PatternSpace

SPACES = {"attn-mlp": "AM", "attn-mlp-mamba": "AMS"}


@dataclass(frozen=True, kw_only=True)
class Proxy:
    name: str
    task: str
    preset: str
    budget: str
    mad_settings: str = "cpu"
    tokenizer: str = "bpe"
    vocab_size: int = 8192
    lr: float | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    curve_points: int = 0      # MAD: score the learning-curve area over this many points (0: final score)
    mad_score: str = "accuracy"  # MAD: accuracy | loglik (aira.train.sources.MAD_SCORES)
    timeout_s: float = 900.0   # per seed
    seeds: int = 1             # seeds a search trains per candidate (their mean is the score)
    description: str = ""
    extra: dict = field(default_factory=dict)
    source: str = ""           # the file a user-defined proxy was read from ("" for a built-in one)

    def train_kwargs(self) -> dict:
        kw = {"task": self.task, "preset": self.preset, "budget": self.budget, "mad_settings": self.mad_settings,
              "tokenizer": self.tokenizer, "vocab_size": self.vocab_size}
        for k in ("lr", "batch_size", "seq_len", "curve_points"):
            if getattr(self, k):
                kw[k] = getattr(self, k)
        if self.mad_score != "accuracy":  # absent by default, so the cache keys of accuracy proxies are unchanged
            kw["mad_score"] = self.mad_score
        return kw


# Step budgets, not seconds, so that a score does not depend on how loaded the machine is.
PROXIES = {
    # v3 (docs/fidelity.md); mad-cpu-ladder below was measured as its successor and not adopted
    "mad-cpu": Proxy(name="mad-cpu", task="mad:selective_copying,compression,memorization", preset="tiny",
                     mad_settings="cpu32", budget="384steps", lr=3e-3, timeout_s=300, seeds=2,
                     description="three MAD tasks (selective copying, compression, memorization of 4,096 keys), "
                                 "sequence length 32, width 64, 128 steps each"),
    # experimental (docs/fidelity.md, "v4"): no memorization, scored by the learning-curve area so the large
    # fidelity does not tie at the ceiling; small-to-large 0.43 vs v3's 0.33, but the all-MLP and
    # 1-attention patterns sit at chance, so it is not the default
    "mad-cpu-ladder": Proxy(name="mad-cpu-ladder", task="mad:selective_copying@copy16,selective_copying,compression",
                            preset="tiny", mad_settings="cpu32", budget="384steps", lr=3e-3, curve_points=6,
                            timeout_s=300, seeds=2,
                            description="experimental: selective copying at two difficulties (2 of 16, 4 of 32 "
                                        "tokens) and compression, width 64, 128 steps each, scored by the "
                                        "learning-curve area (6 points)"),
    "mad-gpu": Proxy(name="mad-gpu", task="mad", preset="mad", mad_settings="default", budget="3000steps",
                     description="aira's causal, teacher-forced variants of the six MAD tasks at MAD's default "
                                 "sizes (vocabulary 16, length 128; not MAD-lab's rules, which are the "
                                 "`madlab` MAD settings), width 128, 500 steps each"),
    # 1,000 steps and 2 seeds: 2-seed candidates rank with rho 0.92 (500 steps: 0.89; docs/fidelity.md)
    "lm-cpu": Proxy(name="lm-cpu", task="lm:shakespeare", preset="tiny", tokenizer="bytes", budget="1000steps",
                    lr=3e-3, timeout_s=600, seeds=2,
                    description="byte-level LM on Shakespeare, width 64, 1,000 steps"),
    # For tests and smoke runs only: seconds per evaluation, rankings not meaningful.
    "smoke": Proxy(name="smoke", task="mad:in_context_recall", preset="tiny", mad_settings="tiny", budget="8steps",
                   lr=3e-3, timeout_s=120, description="smoke test: one MAD task, 8 steps (not a real proxy)"),
    "lm-gpu": Proxy(name="lm-gpu", task="lm:shakespeare", preset="small", budget="500steps",
                    description="BPE-8192 LM on Shakespeare, width 768, 500 steps"),
}


# what a proxy file may set (aira compose run|fidelity --proxy FILE.json|FILE.toml)
PROXY_FILE_KEYS = ("name", "task", "preset", "budget", "mad_settings", "tokenizer", "vocab_size", "lr", "batch_size",
                   "seq_len", "curve_points", "mad_score", "timeout_s", "seeds", "description")
_PROXY_FILE_TYPES = {"name": str, "task": str, "preset": str, "budget": (str, int), "mad_settings": str,
                     "tokenizer": str, "vocab_size": int, "lr": (int, float), "batch_size": int, "seq_len": int,
                     "curve_points": int, "mad_score": str, "timeout_s": (int, float), "seeds": int,
                     "description": str}


def is_proxy_file(name: str) -> bool:
    return name.endswith((".json", ".toml")) or os.sep in name


def load_proxy_file(path: str) -> Proxy:
    """A user-defined proxy: a JSON or TOML file with `task`, `preset` and `budget` (a step or token budget,
    so that scores do not depend on the machine's load) and any other `Proxy` field in PROXY_FILE_KEYS, e.g.
    {"task": "mad:selective_copying,compression", "preset": "tiny", "mad_settings": "cpu32", "budget":
    "512steps", "lr": 0.001, "seeds": 2}. Its name is `name` or the file's stem; its measured fidelity figures
    live beside it (`<stem>.fidelity.json`, written by `aira compose fidelity --proxy FILE --record`)."""
    p = Path(path)
    where = f"proxy file {path}"
    try:
        text = p.read_text()
    except OSError as e:
        raise UsageError(f"{where}: cannot read it ({e.strerror or e})") from None
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{where}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a table of settings, got {type(data).__name__}")
    unknown = sorted(set(data) - set(PROXY_FILE_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown setting {unknown[0]!r}; valid: {', '.join(PROXY_FILE_KEYS)}")
    missing = [k for k in ("task", "preset", "budget") if k not in data]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)} (a proxy needs task, preset and budget)")
    for k, v in data.items():
        if isinstance(v, bool) or not isinstance(v, _PROXY_FILE_TYPES[k]):
            raise UsageError(f"{where}: {k} = {v!r} has the wrong type")
    name = data.pop("name", p.stem)
    if name in PROXIES or name in ("mad", "lm"):
        raise UsageError(f"{where}: name {name!r} is a built-in proxy's; give the file or its name another one")
    _check_proxy_settings(data, where)
    data.setdefault("description", f"user-defined proxy from {p.name}: {data['task']}, preset {data['preset']}, "
                                   f"{data['budget']}")
    return Proxy(name=name, source=str(p.resolve()), **data)


def _check_proxy_settings(data: dict, where: str) -> None:
    """Refuse settings the trainer would refuse, before any job starts."""
    from aira.data.mad import resolve_settings
    from aira.models import get_preset
    from aira.train.budget import parse_budget
    from aira.train.sources import MAD_SCORES, parse_task

    try:
        spec = parse_task(data["task"])
        get_preset(data["preset"])
        budget = parse_budget(data["budget"])
        if "mad_settings" in data:
            resolve_settings(data["mad_settings"])
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    if budget.kind == "seconds":
        raise UsageError(f"{where}: budget {data['budget']!r} is a time; give steps or tokens, so that a score "
                         f"does not depend on how loaded the machine is")
    if data.get("mad_score", "accuracy") not in MAD_SCORES:
        raise UsageError(f"{where}: mad_score must be one of {', '.join(MAD_SCORES)}")
    if spec.kind != "mad" and (data.get("mad_score", "accuracy") != "accuracy" or data.get("curve_points")):
        raise UsageError(f"{where}: mad_score and curve_points apply to MAD tasks only")
    for k in ("seeds", "vocab_size", "batch_size", "seq_len"):
        if k in data and data[k] < 1:
            raise UsageError(f"{where}: {k} must be at least 1, got {data[k]}")
    for k in ("lr", "timeout_s"):
        if k in data and not data[k] > 0:
            raise UsageError(f"{where}: {k} must be positive, got {data[k]}")


def resolve_proxy(name: str, device: str = "auto") -> Proxy:
    if is_proxy_file(name):
        return load_proxy_file(name)
    if name in ("mad", "lm"):
        import torch

        gpu = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
        name = f"{name}-{'gpu' if gpu else 'cpu'}"
    if name not in PROXIES:
        raise UsageError(f"unknown proxy {name!r}; valid: mad, lm, {', '.join(PROXIES)}, or a proxy file "
                         f"(FILE.json / FILE.toml)")
    return PROXIES[name]


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
    from aira.compose.extrapolate import stack_pattern

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
    return out


class ComposeTask(Task):
    proposal_kind = "pattern"

    def __init__(self, *, space: str = "attn-mlp", proxy: str = "mad", layers: int = 16, seeds: int | None = None,
                 threads: int | None = None, cache_dir: str | None = None, device: str = "auto",
                 timeout_s: float | None = None, batch: bool = False):
        if layers < 1 or layers > 64:
            raise UsageError(f"layers must be between 1 and 64, got {layers}")
        self.space_name, self.alphabet = space, resolve_space(space)
        self.proxy = resolve_proxy(proxy, device)
        seeds = self.proxy.seeds if seeds is None else seeds
        if seeds < 1:
            raise UsageError(f"seeds must be at least 1, got {seeds}")
        self.layers, self.seeds, self.threads, self.device = layers, seeds, threads, device
        self.cache_dir = cache_dir
        self.batch = batch  # jobs carry a batch key: an executor with batch > 1 trains several as one
        self.timeout_s = timeout_s or self.proxy.timeout_s * seeds
        self.lower_is_better = self.proxy.task.startswith("lm")
        self.name = f"compose-{space}-{self.proxy.name}"

    @property
    def measured_noise(self) -> float | None:
        """Std of a candidate's score from the proxy's shipped fidelity figures (pooled over the calibration
        patterns, divided by sqrt(seeds) for a mean of seeds), when they were measured in this space at this
        depth; the run's noise floor uses it when it has fewer than 3 reference seeds of its own."""
        from aira.compose.fidelity import measured_entry

        e = measured_entry(self.proxy)
        if e is None or e.get("noise_floor") is None:
            return None
        if e.get("space") != self.space_name or e.get("layers") != self.layers:
            return None
        return float(e["noise_floor"]) / self.seeds ** 0.5

    def fidelity_notice(self) -> dict:
        """The proxy's measured fidelity and its warnings (`aira.compose.fidelity.fidelity_notice`)."""
        from aira.compose.fidelity import fidelity_notice

        return fidelity_notice(self.proxy)

    def seconds_per_eval(self) -> tuple[float, str] | None:
        """The proxy's shipped training seconds per seed (docs/fidelity.md) x seeds per candidate, when
        measured in this space (Mamba-2 layers cost ~2.5x on a CPU, so another space's figure would mislead)."""
        from aira.compose.fidelity import measured_entry

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
            if self.proxy.mad_score == "loglik":
                metric = ("mean log-likelihood score on the answer positions of the MAD tasks (1 - cross-entropy / "
                          "ln(vocabulary size): 0 for a uniform guess, 1 for certainty on every right answer)")
            else:
                metric = "mean accuracy on the answer positions of the MAD tasks"
            if self.proxy.curve_points:
                metric += (f", averaged over {self.proxy.curve_points} evenly spaced points of training (the "
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

    def make_job(self, proposal: Any, *, seed: int, job_id: str, budget_factor: int = 1) -> Job:
        """The evaluation job of a pattern; `budget_factor` trains it that many times longer (halving)."""
        train = self.proxy.train_kwargs()
        if budget_factor != 1:
            from aira.train.budget import scaled_budget

            train["budget"] = scaled_budget(self.proxy.budget, budget_factor)
        kwargs = {"pattern": self.canonical(proposal), "seed": seed, "seeds": self.seeds,
                  "cache_dir": self.cache_dir, "threads": self.threads, "device": self.device, "train": train}
        return Job(id=job_id, fn="aira.tasks.compose:evaluate_pattern", kwargs=kwargs,
                   timeout_s=self.timeout_s * budget_factor, gpus=1 if self.proxy.name.endswith("gpu") else 0,
                   **(batch_fields(kwargs) if self.batch else {}))

    def reference(self) -> str:
        return ("AM" * self.layers)[: self.layers] if "A" in self.alphabet and "M" in self.alphabet \
            else self.alphabet[0] * self.layers

    def baselines(self) -> dict[str, str]:
        return baseline_patterns(self.alphabet, self.layers)

    def space(self) -> ProposalSpace:
        return PatternSpace(self.layers, self.alphabet)


def _resolved(train: dict) -> dict:
    from aira.train.cache import resolved_settings

    return resolved_settings(train)


def _cache_key(pattern: str, train: dict, seed: int, device_type: str = "cpu") -> str:
    """Keyed on what the settings resolve to, not their names, so a retuned preset is a cache miss."""
    from aira.train.cache import cache_key
    from aira.train.trainer import TrainConfig

    return cache_key(TrainConfig(pattern=pattern, seed=seed, **train), device_type)


def settings_fingerprint(train: dict) -> str:
    """A proxy's training settings, resolved, as a short hash: the shipped fidelity figures of a proxy
    count only while its settings still hash to the figures' fingerprint."""
    blob = json.dumps({"train": train, "resolved": _resolved(train)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def evaluate_pattern(*, pattern: str, seed: int = 0, seeds: int = 1, cache_dir: str | None = None,
                     threads: int | None = None, device: str = "auto", train: dict, batch: bool = False) -> dict:
    """The frozen evaluation (a Job's function): train `seeds` seeds of the pattern, average the scores.
    `batch`: train the seeds (and a MAD proxy's tasks) as one (aira.train.batched)."""
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


def _seed_mean(pairs: list[tuple[dict, bool]], seeds: int) -> dict:
    runs = [r for r, _ in pairs]
    cached = sum(hit for _, hit in pairs)
    bad = [r for r in runs if r["status"] != "ok"]
    first = runs[0]
    metrics = {k: first.get(k) for k in ("metric_name", "params", "non_embedding_params", "flops_per_token",
                                          "tokens", "steps", "tokens_per_s", "peak_mem_mb", "device")}
    metrics.update(seeds=seeds, cached=cached, seed_metrics=[r.get("metric") for r in runs],
                   per_task=first.get("per_task"))
    if first.get("batched"):
        metrics["batched"] = first["batched"]
    if bad:
        return {"status": bad[0]["status"], "error": bad[0].get("error", ""), **metrics}
    vals = [r["metric"] for r in runs]
    metrics["seed_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"status": "ok", "metric": statistics.fmean(vals),
            "selection_metric": statistics.fmean(r["selection_metric"] for r in runs), **metrics}
