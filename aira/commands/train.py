"""`aira train`: train one pattern at one preset on one proxy task, no agents."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# aira.train.trainer.COMPILE_MODES, spelled here so that `aira --help` imports no torch (a test keeps them equal)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def register(sub) -> None:
    p = sub.add_parser("train", help="train one layer pattern on a proxy task and score it",
                       description="Train one layer pattern at a preset on a proxy task; print a "
                                   "`key: value` summary and optionally write the JSON result.")
    p.add_argument("--pattern", required=True, help="layer pattern, e.g. AMAMSMAM, (AM)x8, attn,mlp,mamba")
    p.add_argument("--preset", default="tiny", help="model/training preset (see `aira models list`)")
    p.add_argument("--task", default="mad",
                   help="mad | mad:<task>[@<settings>][,...] | lm | lm:<corpus or path> (default: mad)")
    p.add_argument("--budget", default="60s", help="seconds, steps or tokens: 60s, 10m, 500steps, 2M tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None, help="LM sequence length (default: the preset's)")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "wsd"])
    p.add_argument("--mad-settings", default="cpu",
                   help="MAD data settings (aira.data.mad.MAD_PRESETS): tiny | cpu | cpu32 | copy16 | default")
    p.add_argument("--curve-points", type=int, default=0, metavar="N",
                   help="MAD: score the mean accuracy at N evenly spaced points of training (learning-curve "
                        "area) instead of the final accuracy alone")
    p.add_argument("--mad-score", default="accuracy", choices=["accuracy", "loglik"],  # sources.MAD_SCORES (no torch here)
                   help="MAD: the metric; loglik = 1 - answer-token cross-entropy / ln(vocabulary), continuous "
                        "where accuracy is a threshold (every evaluation reports both)")
    p.add_argument("--tokenizer", default="bpe", choices=["bpe", "bytes"])
    p.add_argument("--vocab-size", type=int, default=8192, help="BPE vocabulary size")
    p.add_argument("--compile", nargs="?", const="default", default=False, metavar="MODE",
                   choices=COMPILE_MODES,
                   help="torch.compile the training step; MODE is torch's (reduce-overhead: CUDA graphs, for small "
                        "launch-bound models on a GPU; default: torch's default mode)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: OMP_NUM_THREADS, else the usable cores)")
    p.add_argument("--json", metavar="FILE", help="write the JSON result here")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (default: a bar on a terminal, else a line on stderr every 10 s)")
    pre = p.add_argument_group("pre-training (data-parallel under torchrun; see docs/pretraining.md)")
    pre.add_argument("--data", metavar="DIR", help="token data: a folder prepared by aira.data.shards, or a "
                                                   "corpus to prepare; runs the pre-training loop")
    pre.add_argument("--ckpt-dir", metavar="DIR", help="save checkpoints here")
    pre.add_argument("--ckpt-every", type=int, default=0, metavar="K", help="checkpoint every K steps")
    pre.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --ckpt-dir")
    pre.add_argument("--micro-batch", type=int, default=None, metavar="N",
                     help="sequences per process per forward pass (gradient accumulation)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    """Bad flags are refused before any data is built or any step trained (aira.errors.UsageError)."""
    import math

    from aira.errors import UsageError
    from aira.userfiles import check_out_file

    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    for flag, v in (("--batch-size", args.batch_size), ("--seq-len", args.seq_len),
                    ("--micro-batch", args.micro_batch), ("--vocab-size", args.vocab_size),
                    ("--threads", args.threads)):
        if v is not None and v < 1:
            raise UsageError(f"{flag} must be at least 1, got {v}")
    for flag, v in (("--curve-points", args.curve_points), ("--ckpt-every", args.ckpt_every)):
        if v < 0:
            raise UsageError(f"{flag} must be 0 or more, got {v}")
    if args.device != "auto":
        import torch

        try:
            torch.device(args.device)
        except RuntimeError:
            raise UsageError(f"unknown --device {args.device!r}: use auto, cpu, cuda or cuda:N") from None
    if args.json:
        check_out_file(args.json, "--json")


def run(args: argparse.Namespace) -> int:
    import os

    _check(args)
    if args.data or args.ckpt_dir or args.resume or os.environ.get("WORLD_SIZE"):
        from aira.train.ddp import run_cli

        return run_cli(args)
    from aira.train.trainer import TrainConfig, format_summary, train

    if args.threads is None and not os.environ.get("OMP_NUM_THREADS"):
        from aira.machine import usable_cores

        args.threads = usable_cores()[0]  # torch's default counts cores a cgroup quota or affinity may deny
    cfg = TrainConfig(pattern=args.pattern, preset=args.preset, task=args.task, budget=args.budget,
                      seed=args.seed, lr=args.lr, batch_size=args.batch_size, seq_len=args.seq_len,
                      schedule=args.schedule, mad_settings=args.mad_settings, tokenizer=args.tokenizer,
                      vocab_size=args.vocab_size, curve_points=args.curve_points, mad_score=args.mad_score, compile=True if args.compile == "default" else args.compile, device=args.device,
                      threads=args.threads, progress=not args.quiet)  # a bar on a terminal, else a line now and then
    result = train(cfg, log=lambda m: print(m, file=sys.stderr))
    print(format_summary(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0 if result.ok else 1
