"""Data-parallel pre-training of one pattern on token data: `torchrun ... -m aira train --data DIR`.

The single-process proxy trainer (trainer.py) scores candidates; this loop pre-trains a chosen one,
e.g. an extrapolated 1B pattern, on one or many processes:

    torchrun --nproc_per_node 8 -m aira train --pattern P --preset 1B --data DIR \
        --budget 20000steps --ckpt-dir ck --ckpt-every 500 [--resume]

Choices, all visible here:
- torch.distributed with nccl on CUDA (one GPU per process, LOCAL_RANK), gloo on CPU; the model is
  wrapped in DistributedDataParallel. Run without torchrun it is the same loop on one process.
- Data: DIR is a folder prepared by `aira.data.shards.prepare_text_data` (it holds meta.json and
  train.bin), or a corpus spec (a text / parquet file or folder, `shakespeare`, ...) that rank 0
  prepares into the data cache first. Batches are random windows of the train split.
- The global batch of step s is a function of (seed, s) only: its window starts come from a generator
  seeded with (seed, s), and rank r reads its own slice of them. So ranks read distinct data, resuming
  needs no data-loader state, and the run does not depend on the number of processes.
- AdamW (betas 0.9 / 0.95, weight decay on matrices only), linear warmup then cosine (or WSD) decay to
  10% of the peak, on steps; gradient clipping; gradient accumulation over micro-batches with DDP's
  gradient sync only on the last one; bf16 autocast on CUDA, fp32 on CPU.
- Budgets are steps or tokens (a wall-clock budget could not resume to the same schedule).
- Rank 0 logs the loss averaged over ranks and saves checkpoints (checkpoint.py) every K steps and at
  the end: model, optimizer, step, every rank's RNG states, loss history and the configs. --resume
  continues from the newest one and gives the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from aira.errors import UsageError
from aira.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


@dataclass(kw_only=True)
class PretrainConfig:
    pattern: str
    data: str
    preset: str = "tiny"
    budget: str = "1000steps"
    seed: int = 0
    lr: float | None = None  # None: the preset's
    batch_size: int | None = None  # sequences per optimizer step, all ranks together (None: the preset's)
    micro_batch: int | None = None  # sequences per rank per forward pass (None: the rank's whole share)
    seq_len: int | None = None
    warmup_steps: int | None = None  # None: the preset's, at most 10% of the run
    schedule: str = "cosine"  # cosine | wsd
    min_lr_frac: float = 0.1
    tokenizer: str = "bpe"  # used only when `data` is a corpus to prepare
    vocab_size: int = 8192
    ckpt_dir: str | None = None
    ckpt_every: int = 0  # steps; 0: only at the end
    keep_ckpts: int = 3
    resume: bool = False
    device: str = "auto"
    compile: bool = False
    threads: int | None = None
    log_every: int = 10
    eval_tokens: int = 65_536  # validation tokens scored at the end (rank 0)
    overrides: dict = field(default_factory=dict)  # ModelConfig fields


@dataclass(kw_only=True)
class PretrainResult:
    """What `pretrain` returns on every rank; `aira train --data ... --json` writes `to_dict()`."""
    status: str
    pattern: str
    preset: str
    params: int
    steps: int                 # the run's total, resumed steps included
    steps_this_run: int
    tokens: int
    final_loss: float | None
    val_loss: float | None     # rank 0 only (None elsewhere, or without a val split)
    losses: list[float]        # every step's training loss (averaged over ranks), resumed ones included
    tokens_per_s: float
    wall_s: float
    world_size: int
    device: str
    dtype: str
    checkpoint: str | None     # the newest checkpoint written or resumed from
    resumed_from: str | None
    data: str
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (torch.cuda.is_available() and device_name in ("auto", "cuda")) or device_name.startswith(
        "cuda:"
    )
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device_name!r} requested but CUDA is not available")
    if use_cuda:
        device = torch.device(device_name if ":" in device_name else f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return _Dist(rank, world, local_rank, device)


def _open_data(cfg: PretrainConfig, d: _Dist):
    """TokenData on every rank; rank 0 prepares a corpus spec first and tells the others where it is."""
    from aira.data import shards

    def resolve() -> str:
        folder = Path(cfg.data).expanduser()
        if (folder / "meta.json").is_file():
            return str(folder)
        return str(
            shards.prepare_text_data(cfg.data, tokenizer=cfg.tokenizer, vocab_size=cfg.vocab_size).root
        )

    if d.world == 1:
        root = resolve()
    else:
        box: list = [None]
        if d.main:
            try:
                box[0] = resolve()
            except Exception as e:  # noqa: BLE001 - every rank must hear of it, or the others wait forever
                box[0] = e
        dist.broadcast_object_list(box, src=0)
        if isinstance(box[0], Exception):
            raise box[0]
        root = box[0]
    return shards._open(Path(root))


def step_windows(n_tokens: int, seq_len: int, batch: int, seed: int, step: int) -> np.ndarray:
    """Start offsets of the global batch of `step`: the same for any world size, resume or not."""
    if n_tokens < seq_len + 1:
        raise UsageError(f"the train split has {n_tokens} tokens, fewer than seq_len + 1 = {seq_len + 1}")
    return np.random.default_rng((seed, step)).integers(0, n_tokens - seq_len, size=batch)


def _windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    chunk = torch.from_numpy(tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64))
    return chunk[:, :-1], chunk[:, 1:]


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _gather(obj, d: _Dist) -> list:
    if d.world == 1:
        return [obj]
    out: list = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def _plan(cfg: PretrainConfig, preset, world: int) -> tuple[int, int, int, int]:
    """(global batch, per-rank batch, micro-batch, accumulation steps), validated."""
    batch = cfg.batch_size or preset.batch_size
    if batch % world:
        raise UsageError(f"batch size {batch} must be a multiple of the number of processes ({world})")
    per_rank = batch // world
    micro = min(cfg.micro_batch or per_rank, per_rank)
    if micro < 1 or per_rank % micro:
        raise UsageError(f"micro-batch {cfg.micro_batch} must divide the per-process batch {per_rank}")
    return batch, per_rank, micro, per_rank // micro


def _total_steps(budget, tokens_per_step: int) -> int:
    if budget.kind == "steps":
        return max(1, round(budget.amount))
    if budget.kind == "tokens":
        return max(1, math.ceil(budget.amount / tokens_per_step))
    raise UsageError(
        "pre-training needs a step or token budget (e.g. --budget 20000steps or 40B tokens), "
        "so that the LR schedule and --resume are exact"
    )


def pretrain(cfg: PretrainConfig, *, log=print) -> PretrainResult:
    """Run (or resume) data-parallel pre-training; returns the result on every rank."""
    from aira.models import build_model, count_params, get_preset, parse_pattern
    from aira.train.budget import parse_budget
    from aira.train.trainer import lr_factor

    preset = get_preset(cfg.preset)
    pattern = "".join(parse_pattern(cfg.pattern))
    budget = parse_budget(cfg.budget)
    if cfg.schedule not in ("cosine", "wsd"):
        raise UsageError(f"unknown schedule {cfg.schedule!r}; use cosine or wsd")
    if cfg.resume and not cfg.ckpt_dir:
        raise UsageError("--resume needs --ckpt-dir, the folder that holds the checkpoints")
    if cfg.ckpt_every < 0:
        raise UsageError(f"--ckpt-every must be >= 0, got {cfg.ckpt_every}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    d = _setup(cfg.device)
    say = log if d.main else (lambda *_: None)
    data = _open_data(cfg, d)
    tokens = data.tokens("train")
    seq_len = cfg.seq_len or preset.seq_len
    batch, per_rank, micro, accum = _plan(cfg, preset, d.world)
    total = _total_steps(budget, batch * seq_len)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(preset.warmup_steps, total // 10)
    lr = cfg.lr if cfg.lr is not None else preset.lr

    torch.manual_seed(cfg.seed)
    model = build_model(
        pattern, preset.model, vocab_size=data.vocab_size, max_seq_len=seq_len, **cfg.overrides
    ).to(d.device)
    mcfg = asdict(model.cfg)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": preset.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
        fused=d.device.type == "cuda",
    )

    start, losses, resumed_from = 0, [], None
    ckpt = latest_checkpoint(cfg.ckpt_dir) if cfg.ckpt_dir else None
    if ckpt is not None and not cfg.resume:
        # A fresh run would interleave its checkpoints with the old ones (and pruning by step would
        # delete the new ones first), so it needs an empty folder.
        raise UsageError(
            f"{cfg.ckpt_dir} holds checkpoints of an earlier run ({ckpt.name}); "
            "pass --resume to continue it, or use another --ckpt-dir"
        )
    if cfg.resume and ckpt is None:
        say(f"resume: no checkpoint in {cfg.ckpt_dir}, starting from step 0")
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        if state.get("pattern") != pattern or state.get("model_config") != mcfg:
            raise UsageError(
                f"checkpoint {ckpt} is for another model (pattern {state.get('pattern')!r}); "
                "use the same --pattern, --preset and data"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, losses, resumed_from = state["step"], list(state.get("losses", [])), str(ckpt)
        rngs = state.get("rng") or []
        if len(rngs) == d.world:
            _set_rng_state(rngs[d.rank], d.device)
        say(f"resumed from {ckpt} at step {start}")

    step_model = torch.compile(model) if cfg.compile else model
    if d.world > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(
            step_model, device_ids=[d.device.index] if d.device.type == "cuda" else None
        )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if d.device.type == "cuda" else contextlib.nullcontext()
    )

    def save(step: int) -> Path | None:
        rngs = _gather(_rng_state(d.device), d)  # every rank takes part; rank 0 writes
        path = None
        if d.main:
            path = save_checkpoint(
                cfg.ckpt_dir,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "rng": rngs,
                    "losses": losses,
                    "pattern": pattern,
                    "model_config": mcfg,
                    "preset": preset.name,
                    "train_config": asdict(cfg),
                    "world_size": d.world,
                    "data": str(data.root),
                },
                step,
                keep=cfg.keep_ckpts,
            )
            say(f"checkpoint: {path}")
        if d.world > 1:
            dist.barrier()
        return path

    n_params = count_params(pattern, model.cfg)
    say(
        f"pretrain {pattern} ({n_params:,} params) on {data.root}: {d.world} process(es) on {d.device}, "
        f"{total} steps x {batch} x {seq_len} tokens, micro-batch {micro} x {accum}, warmup {warmup}"
    )
    model.train()
    last_ckpt, t0, t_log, done_tokens = None, time.time(), time.time(), 0
    for step in range(start, total):
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(step / total, cfg.schedule, warmup / total, cfg.min_lr_frac)
        starts = step_windows(len(tokens), seq_len, batch, cfg.seed, step)[d.rank * per_rank :][:per_rank]
        opt.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=d.device)
        for i in range(accum):
            x, y = _windows(tokens, starts[i * micro : (i + 1) * micro], seq_len)
            x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
            sync = i == accum - 1 or d.world == 1
            with contextlib.nullcontext() if sync else step_model.no_sync():
                with autocast:
                    _, loss = step_model(x, y)
                (loss / accum).backward()
            loss_sum += loss.detach().float()
        if preset.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), preset.grad_clip)
        opt.step()
        if d.world > 1:
            dist.all_reduce(loss_sum)
        step_loss = float(loss_sum) / (accum * d.world)
        if not math.isfinite(step_loss):
            raise RuntimeError(
                f"loss became {step_loss} at step {step + 1}; lower --lr or resume from a checkpoint"
            )
        losses.append(step_loss)
        done_tokens += batch * seq_len
        if (step + 1) % max(1, cfg.log_every) == 0 or step + 1 == total:
            rate = done_tokens / max(time.time() - t0, 1e-9)
            say(
                f"step {step + 1}/{total} | loss {step_loss:.4f} | lr {opt.param_groups[0]['lr']:.3g} | "
                f"{rate:,.0f} tok/s | {time.time() - t_log:.1f}s"
            )
            t_log = time.time()
        if cfg.ckpt_dir and cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0:
            last_ckpt = save(step + 1)
    train_seconds = time.time() - t0
    if cfg.ckpt_dir and total > start and not (cfg.ckpt_every and total % cfg.ckpt_every == 0):
        last_ckpt = save(total)  # the end, unless the periodic save just wrote it
    last_ckpt = last_ckpt or ckpt

    val_loss = (
        _evaluate(model, data, seq_len, per_rank, cfg.eval_tokens, d.device, autocast) if d.main else None
    )
    if d.world > 1:
        dist.barrier()
    return PretrainResult(
        status="ok",
        pattern=pattern,
        preset=preset.name,
        params=n_params,
        steps=total,
        steps_this_run=total - start,
        tokens=total * batch * seq_len,
        final_loss=losses[-1] if losses else None,
        val_loss=val_loss,
        losses=losses,
        tokens_per_s=done_tokens / max(train_seconds, 1e-9),
        wall_s=train_seconds,
        world_size=d.world,
        device=str(d.device),
        dtype="bf16" if d.device.type == "cuda" else "fp32",
        checkpoint=str(last_ckpt) if last_ckpt else None,
        resumed_from=resumed_from,
        data=str(data.root),
        seed=cfg.seed,
    )


@torch.no_grad()
def _evaluate(model, data, seq_len: int, batch: int, max_tokens: int, device, autocast) -> float | None:
    """Mean next-token loss on the start of the val split (the bare model: no collective calls)."""
    import torch.nn.functional as F

    if len(data.tokens("val")) < seq_len + 1 or max_tokens <= 0:
        return None
    model.eval()
    nats, count = 0.0, 0
    for x, y in data.iter_eval("val", batch, seq_len, max_tokens=max_tokens):
        with autocast:
            logits, _ = model(x.to(device))
        nats += float(F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(), reduction="sum"))
        count += y.numel()
    model.train()
    return nats / count


SUMMARY_KEYS = (
    "status",
    "pattern",
    "preset",
    "params",
    "steps",
    "steps_this_run",
    "tokens",
    "final_loss",
    "val_loss",
    "tokens_per_s",
    "wall_s",
    "world_size",
    "device",
    "dtype",
    "checkpoint",
    "resumed_from",
    "data",
)


def format_summary(result: PretrainResult) -> str:
    return "\n".join(
        f"{k}: {f'{v:.6g}' if isinstance(v, float) else v}"
        for k, v in ((k, getattr(result, k)) for k in SUMMARY_KEYS)
    )


def run_cli(args) -> int:
    """`aira train --data ...` (or any `aira train` under torchrun): pre-train, print the summary."""
    import json

    if not args.data:
        raise UsageError(
            "data-parallel pre-training (under torchrun, or with --ckpt-dir / --resume) needs "
            "--data: a folder prepared by aira.data.shards or a corpus to prepare"
        )
    cfg = PretrainConfig(
        pattern=args.pattern,
        preset=args.preset,
        data=args.data,
        budget=args.budget,
        seed=args.seed,
        lr=args.lr,
        batch_size=args.batch_size,
        micro_batch=getattr(args, "micro_batch", None),
        seq_len=args.seq_len,
        schedule=args.schedule,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        ckpt_dir=args.ckpt_dir,
        ckpt_every=args.ckpt_every or 0,
        resume=args.resume,
        device=args.device,
        compile=args.compile,
        threads=args.threads,
    )
    try:
        result = pretrain(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(format_summary(result), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0
