"""Candidate evaluations per hour of a Compose proxy: many models trained as one against one at a time.

For each proxy, the same K candidates (calibration patterns, each with the proxy's seeds) are evaluated in
this process, in alternating rounds so that a shared machine's noise hits both paths alike:
  single   every seed of every candidate trained alone, one after the other (today's path in a worker);
  batched  every model of every candidate (seeds x MAD tasks x candidates) trained as one
           (`aira.train.batched`), as one executor batch of K jobs does;
  compiled (with --compile MODE) the single path with each model's training step torch.compile'd in that
           mode (reduce-overhead: CUDA graphs), each model compiled afresh as in its own worker; its
           compilation counts, as it would in a search.
Printed per proxy: evaluations per hour of each path (median round, this process, one thread per core
as the workers use), their ratio, and the largest score difference between the two paths (the batched path
agrees to float tolerance, not bit for bit). On CUDA also the share of the bf16 matmul peak measured in the
same run (training FLOPs counted as aira counts them: flops_per_token x tokens). Nothing is cached.

    python bench/throughput.py                                  # CPU: mad-cpu, 4 candidates, 1 round
    python bench/throughput.py --proxies smoke --candidates 2   # a dry run in seconds
    python bench/throughput.py --proxies mad-gpu,lm-gpu --candidates 16 --budget-scale 0.1   # on a GPU
(evaluations per hour are of the scaled budget; divide by the scale for the proxy's own)
Decision rule (written before measuring): the batched path is worth making a default where its ratio is
>= 1.5 on that device with a largest score difference <= 0.01; below that it stays opt-in (`--batch`).
The same rule judges a compile mode against the single path; adopting one for the GPU proxies means letting a
proxy set `compile` (today a proxy may not: it is how a machine runs, aira.tasks.proxies.NOT_PROXY_SETTINGS).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak_tflops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * 20 / (time.perf_counter() - t) / 1e12


def main(argv: list[str] | None = None) -> int:
    from aira.compose.calibration import load_patterns
    from aira.tasks.compose import PROXIES, evaluate_patterns

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default=None, help="comma list (default: mad-cpu on CPU, mad-gpu,lm-gpu on CUDA)")
    ap.add_argument("--candidates", type=int, default=4, help="candidates per round (the batch size K)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget-scale", type=float, default=1.0,
                    help="train this fraction of each proxy's step budget (the ratio is per step; a GPU "
                         "measurement that must fit a few minutes uses e.g. 0.1)")
    ap.add_argument("--compile", default=None, metavar="MODE", choices=["default", "reduce-overhead", "max-autotune"],
                    help="also time the single path with torch.compile in this mode (e.g. reduce-overhead)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    names = (args.proxies or ("mad-gpu,lm-gpu" if device == "cuda" else "mad-cpu")).split(",")
    peak = _peak_tflops(device)
    print(f"device {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'} ({args.threads} thread(s)), "
          f"torch {torch.__version__}" + (f", bf16 matmul peak {peak:.0f} TFLOP/s (measured)" if peak else ""))
    out = {}
    for name in names:
        proxy = PROXIES[name]
        train = proxy.train_kwargs()
        if args.budget_scale != 1.0:
            from aira.train.budget import scaled_budget

            train["budget"] = scaled_budget(train["budget"], args.budget_scale)
        pats = load_patterns("calibration", "attn-mlp", 16)[: args.candidates]
        items = [{"pattern": p, "seed": 0} for p in pats]
        paths = ("single", "batched") + (("compiled",) if args.compile else ())
        seconds: dict[str, list[float]] = {p: [] for p in paths}
        scores: dict[str, list[float]] = {}
        flops = 0.0
        for _ in range(args.rounds):
            for path in paths:
                if device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                res = evaluate_patterns(items=items, seeds=proxy.seeds, cache_dir=None, threads=args.threads,
                                        device=device, batch=path == "batched",
                                        train={**train, "compile": args.compile} if path == "compiled" else train)
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds[path].append(time.perf_counter() - t)
                scores[path] = [r.get("metric") for r in res]
                bad = [r for r in res if r["status"] != "ok"]
                if bad:
                    print(f"{name} {path}: {bad[0]['status']}: {bad[0].get('error', '')[-300:]}", file=sys.stderr)
                    return 1
                flops = sum(r["flops_per_token"] * r["tokens"] for r in res) * proxy.seeds
                print(f"  {name} {path}: {seconds[path][-1]:.1f}s for {len(items)} candidates", flush=True)
        per_hour = {p: 3600 * len(items) / statistics.median(s) for p, s in seconds.items()}
        diff = max(abs(a - b) for a, b in zip(scores["single"], scores["batched"]))
        row = {"candidates": len(items), "seeds": proxy.seeds, "budget": train["budget"], "evals_per_hour": per_hour,
               "ratio": per_hour["batched"] / per_hour["single"], "max_score_diff": diff, "seconds": seconds}
        if args.compile:
            row["compiled"] = {"mode": args.compile, "ratio": per_hour["compiled"] / per_hour["single"],
                               "max_score_diff": max(abs(a - b) for a, b in zip(scores["single"], scores["compiled"]))}
        if peak:
            row["share_of_peak"] = {p: flops / statistics.median(s) / 1e12 / peak for p, s in seconds.items()}
        out[name] = row
        share = (f"; share of peak {row['share_of_peak']['single']:.2%} -> {row['share_of_peak']['batched']:.2%}"
                 if peak else "")
        print(f"{name}: {per_hour['single']:.0f} -> {per_hour['batched']:.0f} evaluations/hour "
              f"(ratio {row['ratio']:.2f}, K={len(items)}, largest score difference {diff:.4f}){share}", flush=True)
        if args.compile:
            c = row["compiled"]
            print(f"{name} compiled ({c['mode']}): {per_hour['compiled']:.0f} evaluations/hour (ratio {c['ratio']:.2f} "
                  f"against single, largest score difference {c['max_score_diff']:.4f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "peak_tflops": peak, "proxies": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
