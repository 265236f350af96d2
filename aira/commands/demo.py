"""`aira demo`: the offline default job behind `make demo`.

Trains a few contrasting 8-layer patterns on two MAD tasks at the `tiny` preset (CPU, no key, no
download) and prints a comparison table. It is a smoke-sized run: the numbers show the machinery working
and the primitives differing, not a publishable ranking (see docs/ for the proxies' fidelity).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEMO_PATTERNS = {
    "(AM)x4": "Llama-style alternation: attention + MLP",
    "(SM)x4": "Mamba-2 + MLP, no attention",
    "AMSMSMAM": "hybrid: attention at both ends, Mamba-2 inside",
    "(M)x8": "MLP only: no token mixing (the floor)",
}


def register(sub) -> None:
    p = sub.add_parser("demo", help="train contrasting patterns on offline MAD tasks and compare them")
    p.add_argument("--budget", default="40s", help="training budget per pattern (split over the tasks)")
    p.add_argument("--task", default="mad:in_context_recall,selective_copying")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--out", default="runs/demo", help="folder for results.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aira.train.trainer import TrainConfig, train

    print(f"aira demo: {len(DEMO_PATTERNS)} patterns x task {args.task}, preset {args.preset}, "
          f"budget {args.budget} each, CPU, offline (no LLM involved)", flush=True)
    rows = []
    t0 = time.time()
    for pattern, what in DEMO_PATTERNS.items():
        cfg = TrainConfig(pattern=pattern, preset=args.preset, task=args.task, budget=args.budget,
                          progress=sys.stderr.isatty())
        r = train(cfg, log=lambda m: None)
        rows.append((pattern, what, r))
        metric = "-" if r["metric"] is None else f"{r['metric']:.3f}"
        print(f"  {pattern:<10} {r['metric_name']} {metric}  ({r['status']}, {r['steps']} steps, "
              f"{r['tokens_per_s']:.0f} tok/s)", flush=True)
    rows.sort(key=lambda t: -(t[2]["metric"] or -1))
    print("\nleaderboard (mean MAD accuracy on the validation split; chance is about 1/vocab)")
    tasks = list(rows[0][2].get("per_task", {}))
    header = f"{'pattern':<10} {'mean':>6} " + " ".join(f"{t[:14]:>14}" for t in tasks) + \
        f" {'params':>8}  description"
    print(header)
    for pattern, what, r in rows:
        per = " ".join(f"{(r['per_task'][t]['metric'] or 0):>14.3f}" for t in tasks)
        mean = "   -  " if r["metric"] is None else f"{r['metric']:>6.3f}"
        print(f"{pattern:<10} {mean} {per} {r['params']:>8,}  {what}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([r for _, _, r in rows], indent=2) + "\n")
    print(f"\nwall time {time.time() - t0:.0f}s; results in {out / 'results.json'}")
    return 0
