"""The one flat trainer: train a layer pattern at a preset on a proxy task, and score it.

Choices, all visible here:
- AdamW (fused on CUDA), linear warmup then cosine or WSD (warmup-stable-decay) decay to 10% of the peak;
  the schedule runs on the budget's own unit (seconds, steps or tokens), so a time budget decays on time.
- bf16 autocast on CUDA, fp32 on CPU; optional torch.compile, whose first step (mostly compilation) a time
  budget and tokens/s leave out (`compile_s` reports it); gradient clipping; seeded.
- A non-finite loss stops the run with status "diverged" instead of crashing.
- On CPU, glibc is told to keep large tensors on its heap (`aira.models.ssd.tune_cpu_malloc`,
  process-wide; `tune_malloc=False` opts out): 1.1-1.25x less CPU time for a whole MAD proxy run of
  (AM)x8 or (SM)x8 at the tiny preset, measured in separate processes.
- The MAD suite trains one model per task (as MAD does) and splits the budget evenly between them;
  its score is the mean accuracy. LM scores are bits per byte (lower is better).
The result is a `TrainResult` (aira/train/result.py; `to_dict()` is its JSON), and `format_summary` prints it
as grep-able `key: value` lines.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import time
from dataclasses import dataclass, field, replace

import torch

from aira.errors import UsageError
from aira.train.budget import TrainBudget, parse_budget
from aira.train.result import MAD_SCORE_KEYS, TaskScore, TrainResult
from aira.train.sources import make_sources, parse_task


@dataclass(kw_only=True)
class TrainConfig:
    pattern: str
    preset: str = "tiny"
    task: str = "mad"
    budget: str = "60s"
    seed: int = 0
    data_seed: int = 0          # the data is the same for every candidate; only the init seed varies
    mad_settings: str = "cpu"
    tokenizer: str = "bpe"
    vocab_size: int = 8192
    eval_tokens: int = 65_536   # LM: tokens scored per split (val and the hidden selection split)
    lr: float | None = None     # None: the preset's
    batch_size: int | None = None
    seq_len: int | None = None
    schedule: str = "cosine"    # cosine | wsd
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    # torch.compile the training step: False, True (torch's default mode) or a mode name of COMPILE_MODES;
    # "reduce-overhead" replays CUDA graphs on a GPU, for small launch-bound models such as the proxies
    compile: bool | str = False
    device: str = "auto"
    eval_every: int = 0         # steps; 0: only at the end
    # score = mean of the val metric at `curve_points` evenly spaced points of training (the last is the
    # end): the area under the learning curve, which ranks how fast a pattern learns where final scores
    # tie at the ceiling. 0: the final score alone. Points before the end score `curve_examples` examples.
    curve_points: int = 0
    curve_examples: int = 256
    mad_score: str = "accuracy"  # MAD: accuracy | loglik (aira.train.sources.MAD_SCORES)
    progress: bool = True
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    tune_malloc: bool = True    # CPU: keep large tensors on glibc's heap (process-wide, see docstring)
    overrides: dict = field(default_factory=dict)  # ModelConfig fields, e.g. {"d_model": 96}


# On CUDA the loss is read (a host sync) every SYNC_EVERY steps, not every step: a proxy step is a few
# milliseconds of kernels, and waiting for each one leaves the GPU idle while Python queues the next.
SYNC_EVERY = 16
# torch.compile's modes (`TrainConfig.compile`)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def to_device(x: torch.Tensor, y: torch.Tensor, *, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch onto the device; on CUDA through pinned memory, so the copy does not block the host."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x, y


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def lr_factor(progress: float, schedule: str, warmup_frac: float, min_frac: float) -> float:
    """Multiplier of the peak LR at a fraction `progress` of the budget."""
    if warmup_frac > 0 and progress < warmup_frac:
        return max(progress / warmup_frac, 1e-3)
    if schedule == "cosine":
        t = (progress - warmup_frac) / max(1e-9, 1 - warmup_frac)
        return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if schedule == "wsd":  # stable until the last 20%, then linear decay
        decay_start = 0.8
        if progress < decay_start:
            return 1.0
        return 1 - (1 - min_frac) * (progress - decay_start) / (1 - decay_start)
    raise UsageError(f"unknown schedule {schedule!r}; use cosine or wsd")


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _split_budget(budget: TrainBudget, parts: int) -> TrainBudget:
    return TrainBudget(budget.kind, budget.amount / parts)


def train(cfg: TrainConfig, *, log=print) -> TrainResult:
    """Train and score (see module docstring). Raises UsageError on bad input."""
    setup = _setup(cfg)
    runs = []
    t0 = time.time()
    for i, source in enumerate(setup.sources):
        run = _train_one(cfg, setup.preset, "".join(setup.codes), source, setup.part_budget, setup.device,
                         seed=cfg.seed + 1000 * i, log=log,
                         label=f"[{i + 1}/{len(setup.sources)}] " if len(setup.sources) > 1 else "")
        runs.append(run)
        if run.status != "ok":
            break
    return _assemble(cfg, setup, runs, time.time() - t0)


@dataclass(kw_only=True)
class SourceRun:
    """One model trained on one source (a MAD task or the LM corpus): what `_assemble` combines."""
    status: str
    error: str
    steps: int
    tokens: int
    train_seconds: float
    compile_s: float
    val: dict        # the source's scores on the search split (aira.train.sources), {} unless ok
    select: dict     # the same on the hidden selection split
    peak_mem_mb: float


@dataclass
class _Setup:
    """What a TrainConfig resolves to before training: shared by the single and the batched paths."""
    preset: object
    codes: list
    budget: TrainBudget
    part_budget: TrainBudget  # each source's share
    spec: object
    device: torch.device
    sources: list


def _setup(cfg: TrainConfig, sources: list | None = None) -> _Setup:
    from aira.models import get_preset, parse_pattern

    preset = get_preset(cfg.preset)
    codes = parse_pattern(cfg.pattern, max_layers=preset.max_layers)
    budget = parse_budget(cfg.budget)
    spec = parse_task(cfg.task)
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu" and cfg.tune_malloc:
        from aira.models.ssd import tune_cpu_malloc

        tune_cpu_malloc()
    if cfg.curve_points < 0 or cfg.curve_examples < 1:
        raise UsageError("curve_points must be >= 0 and curve_examples >= 1")
    if cfg.curve_points and spec.kind != "mad":
        raise UsageError("a learning-curve score (curve_points) is defined for MAD tasks only; "
                         "bits per byte does not saturate")
    if cfg.mad_score != "accuracy" and spec.kind != "mad":
        raise UsageError(f"mad_score={cfg.mad_score!r} applies to MAD tasks only; {spec} is scored in bits per byte")
    if not (isinstance(cfg.compile, bool) or cfg.compile in COMPILE_MODES):
        raise UsageError(f"unknown compile mode {cfg.compile!r}; use one of {', '.join(COMPILE_MODES)}")
    if cfg.schedule not in ("cosine", "wsd"):
        raise UsageError(f"unknown schedule {cfg.schedule!r}; use cosine or wsd")
    if sources is None:
        sources = make_sources(spec, seq_len=cfg.seq_len or preset.seq_len, seed=cfg.data_seed,
                               mad_settings=cfg.mad_settings, tokenizer=cfg.tokenizer, vocab_size=cfg.vocab_size,
                               eval_tokens=cfg.eval_tokens, mad_score=cfg.mad_score)
    return _Setup(preset=preset, codes=codes, budget=budget, part_budget=_split_budget(budget, len(sources)),
                  spec=spec, device=device, sources=sources)


def _assemble(cfg: TrainConfig, setup: _Setup, runs: list[SourceRun], wall: float) -> TrainResult:
    """The result of a training from its per-source runs."""
    from aira.models import count_params, flops_per_token

    preset, codes, budget, spec, device, sources = (setup.preset, setup.codes, setup.budget, setup.spec,
                                                    setup.device, setup.sources)
    ok = all(r.status == "ok" for r in runs) and len(runs) == len(sources)
    metric_name = sources[0].metric_name
    vocab = sources[0].vocab_size
    mcfg = _model_config(preset, cfg, vocab, sources[0].seq_len)
    tokens = sum(r.tokens for r in runs)
    fpt = flops_per_token(codes, mcfg, mcfg.max_seq_len)
    per_task = None
    if len(runs) > 1 or spec.kind == "mad":
        per_task = {}
        for s_name, r in zip(spec.names, runs):
            entry = TaskScore(metric=r.val.get(metric_name), select=r.select.get(metric_name))
            if spec.kind == "mad":  # every MAD score, whichever one is the metric (final values, not curve areas)
                for k in MAD_SCORE_KEYS:
                    setattr(entry, k, r.val.get(k))
                if cfg.curve_points:
                    setattr(entry, metric_name, r.val.get("final"))
            if cfg.curve_points:
                entry.final, entry.curve = r.val.get("final"), r.val.get("curve")
            per_task[s_name] = entry
    return TrainResult(
        status="ok" if ok else next(r.status for r in runs if r.status != "ok"),
        metric_name=f"{metric_name} (learning-curve area)" if cfg.curve_points else metric_name,
        lower_is_better=sources[0].lower_is_better,
        metric=_mean([r.val[metric_name] for r in runs]) if ok else None,
        selection_metric=_mean([r.select[metric_name] for r in runs]) if ok else None,
        val_loss=_mean([r.val["loss"] for r in runs]) if ok else None,
        pattern="".join(codes),
        preset=cfg.preset,
        task=str(spec),
        seed=cfg.seed,
        params=count_params(codes, mcfg),
        non_embedding_params=count_params(codes, mcfg, non_embedding=True),
        flops_per_token=fpt,
        tokens=tokens,
        flops=fpt * tokens,
        steps=sum(r.steps for r in runs),
        tokens_per_s=tokens / max(sum(r.train_seconds for r in runs), 1e-9),
        peak_mem_mb=max(r.peak_mem_mb for r in runs),
        wall_s=wall,
        compile_s=sum(r.compile_s for r in runs),
        device=str(device),
        dtype="bf16" if device.type == "cuda" else "fp32",
        budget=str(budget),
        data="; ".join(s.description for s in sources),
        error=next((r.error for r in runs if r.error), ""),
        per_task=per_task,
        score=(f"mean {metric_name} over {cfg.curve_points} points of training (learning-curve area)"
               if cfg.curve_points else None),
    )


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _model_config(preset, cfg: TrainConfig, vocab_size: int, seq_len: int):
    return replace(preset.model, vocab_size=vocab_size, max_seq_len=seq_len, **cfg.overrides)


def train_for_export(cfg: TrainConfig, export, *, log=print) -> dict:
    """Train as `train` does (same seeds, batches and budget split) but score nothing: each source's
    trained model goes to `export(index, model)`. For code whose own scores do not count (a promoted
    mechanism's candidates, aira/tasks/promoted_score.py): the harness scores the exported weights elsewhere.
    Returns per source its status, error, steps, tokens and training seconds, and the setup's counts."""
    from aira.models import count_params, flops_per_token

    setup = _setup(cfg)
    runs = []
    for i, source in enumerate(setup.sources):
        run = _train_one(cfg, setup.preset, "".join(setup.codes), source, setup.part_budget, setup.device,
                         seed=cfg.seed + 1000 * i, log=log, label="", export=lambda m, i=i: export(i, m))
        runs.append({k: getattr(run, k) for k in ("status", "error", "steps", "tokens", "train_seconds",
                                                   "peak_mem_mb")})
        if run.status != "ok":
            break
    mcfg = _model_config(setup.preset, cfg, setup.sources[0].vocab_size, setup.sources[0].seq_len)
    return {"runs": runs, "params": count_params(setup.codes, mcfg),
            "non_embedding_params": count_params(setup.codes, mcfg, non_embedding=True),
            "flops_per_token": flops_per_token(setup.codes, mcfg, mcfg.max_seq_len), "device": str(setup.device)}


def _train_one(cfg, preset, pattern: str, source, budget: TrainBudget, device, *, seed: int, log, label: str,
               export=None):
    from aira.models import build_model

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mcfg = _model_config(preset, cfg, source.vocab_size, source.seq_len)
    model = build_model(pattern, mcfg).to(device)
    if cfg.compile:  # each model compiled afresh, as in its own worker (dynamo stops recompiling after 8)
        torch._dynamo.reset()
    step_model = (torch.compile(model, mode=None if cfg.compile in (True, "default") else cfg.compile)
                  if cfg.compile else model)
    lr = cfg.lr if cfg.lr is not None else preset.lr
    batch_size = cfg.batch_size or preset.batch_size
    opt = make_optimizer([(p, p.dim()) for p in model.parameters()], preset, lr, device)
    autocast = _autocast(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bar = _progress_bar(cfg.progress, budget, label + source.description)
    curve_val: list[float] = []
    curve_select: list[float] = []
    steps = tokens = 0
    status, error, loss_val = "ok", "", float("nan")
    t_start = time.time()
    compile_s = 0.0
    model.train()
    while True:
        progress = budget.progress(seconds=time.time() - t_start, steps=steps, tokens=tokens)
        if progress >= 1.0:
            break
        if cfg.curve_points > 1 and progress >= (len(curve_val) + 1) / cfg.curve_points:
            _curve_point(cfg, model, source, device, autocast, curve_val, curve_select)
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(progress, cfg.schedule, cfg.warmup_frac, cfg.min_lr_frac)
        x, y = to_device(*source.batch(batch_size, gen), device=device)
        with autocast:
            _, loss = step_model(x, y)
        last_loss = loss.detach()
        if device.type != "cuda" or steps % SYNC_EVERY == 0:  # reading the loss waits for the GPU
            loss_val = float(last_loss)
            if not math.isfinite(loss_val):
                status, error = "diverged", f"loss became {loss_val} at step {steps}"
                break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if preset.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), preset.grad_clip)
        opt.step()
        steps += 1
        tokens += x.numel()
        if cfg.compile and steps == 1:
            # the first compiled step is mostly compilation: it is not training time, so a time budget
            # (and tokens/s) starts after it, as autoresearch's untimed first steps do
            compile_s = time.time() - t_start
            t_start += compile_s
        if bar is not None:
            bar.update(_bar_units(budget, steps, tokens, t_start) - bar.n)
            if steps % 10 == 0:
                bar.set_postfix(loss=f"{loss_val:.3f}", refresh=False)
        if cfg.eval_every and steps % cfg.eval_every == 0:
            model.eval()
            m = source.evaluate(model, "val", device)
            model.train()
            log(f"{label}step {steps}: val {source.metric_name} {m[source.metric_name]:.4f}")
    if status == "ok" and device.type == "cuda" and steps:
        loss_val = float(last_loss)
        if not math.isfinite(loss_val):
            status, error = "diverged", f"loss became {loss_val} by step {steps - 1}"
    train_seconds = time.time() - t_start
    if bar is not None:
        bar.close()
    val = select = {}
    if status == "ok" and export is not None:  # scored elsewhere (train_for_export)
        export(model)
    elif status == "ok":
        status, error, val, select = _score(cfg, model, source, device, autocast, curve_val, curve_select)
    return SourceRun(status=status, error=error, steps=steps, tokens=tokens, train_seconds=train_seconds,
                     compile_s=compile_s, val=val, select=select,
                     peak_mem_mb=_peak_mem_mb(device))


def _curve_point(cfg, model, source, device, autocast, curve_val: list, curve_select: list) -> None:
    """One point of the learning curve (`curve_points`): the first `curve_examples` of val and select."""
    model.eval()
    with autocast:
        for split, curve in (("val", curve_val), ("select", curve_select)):
            curve.append(source.evaluate(model, split, device, limit=cfg.curve_examples)[source.metric_name])
    model.train()


def _score(cfg, model, source, device, autocast, curve_val: list, curve_select: list):
    """(status, error, val, select) of a trained model: the search and the hidden selection split."""
    status, error = "ok", ""
    model.eval()
    with autocast:
        val = source.evaluate(model, "val", device)
        select = source.evaluate(model, "select", device)
    if not all(math.isfinite(v) for v in val.values()):
        status, error = "diverged", "non-finite validation metric"
    if cfg.curve_points and status == "ok":
        name = source.metric_name
        val = {**val, "final": val[name], "curve": [*curve_val, val[name]],
               name: _mean([*curve_val, val[name]])}
        select = {**select, "final": select[name], name: _mean([*curve_select, select[name]])}
    return status, error, val, select


def make_optimizer(params: list[tuple[torch.Tensor, int]], preset, lr: float, device: torch.device):
    """AdamW over (parameter, its model's own number of dimensions): matrices decay, vectors do not."""
    decay = [p for p, dims in params if dims >= 2]
    no_decay = [p for p, dims in params if dims < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": preset.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), fused=device.type == "cuda")


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _bar_units(budget: TrainBudget, steps: int, tokens: int, t_start: float) -> int:
    return int({"seconds": time.time() - t_start, "steps": steps, "tokens": tokens}[budget.kind])


def _progress_bar(enabled: bool, budget: TrainBudget, desc: str):
    """A tqdm bar on a terminal; elsewhere (a log file, a pipe) a plain line every few seconds."""
    if not enabled:
        return None
    import sys

    unit = {"seconds": "s", "steps": "step", "tokens": "tok"}[budget.kind]
    if not sys.stderr.isatty():
        from aira.train.progress import LineProgress

        return LineProgress(int(budget.amount), unit=unit, desc=desc)
    from tqdm import tqdm

    return tqdm(total=int(budget.amount), desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                disable=None, unit_scale=budget.kind == "tokens")


SUMMARY_KEYS = ("status", "metric_name", "metric", "selection_metric", "val_loss", "pattern", "preset", "task",
                "seed", "params", "non_embedding_params", "flops_per_token", "tokens", "flops", "steps",
                "tokens_per_s", "peak_mem_mb", "wall_s", "device", "dtype", "error")


def format_summary(result: TrainResult) -> str:
    """Grep-able `key: value` lines."""
    lines = []
    for k in SUMMARY_KEYS:
        v = getattr(result, k)
        if isinstance(v, float):
            v = f"{v:.6g}"
        lines.append(f"{k}: {v}")
    if result.score:
        lines.append(f"score: {result.score}")
    for name, r in (result.per_task or {}).items():
        m = r.metric
        lines.append(f"task.{name}: {m:.4f}" if isinstance(m, float) else f"task.{name}: {m}")
        if isinstance(r.final, float):
            lines.append(f"task.{name}.final: {r.final:.4f}")
    return "\n".join(lines)


def train_job(**kwargs) -> dict:
    """Executor entry point ("aira.train.trainer:train_job"): TrainConfig fields in, the result's JSON out."""
    kwargs.setdefault("progress", False)
    if "threads" not in kwargs and os.environ.get("AIRA_THREADS"):
        kwargs["threads"] = int(os.environ["AIRA_THREADS"])
    return train(TrainConfig(**kwargs), log=lambda *_: None).to_dict()

