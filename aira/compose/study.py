"""The isoFLOP study behind `aira compose scaling`.

For every pattern, compute budget C and width d: the model is the pattern at the `tiny` preset's shape
scaled to width d (head size, FFN ratio and Mamba head size kept), trained for D = C / F tokens where
F is its counted training FLOPs per token (so attention's sequence term and the SSD cost are charged),
and scored by validation loss. Then per pattern: the compute-optimal point of each budget
(aira.compose.scaling.isoflop_minimum) and the frontier L*(C) = a C^b; each pattern is compared with
the first one ("X scales p% faster than Y", formula in scaling.py). Results: `scaling.json`.
On a CPU this runs at toy sizes (widths of tens, budgets around 1e12 FLOPs): it exercises the method and
its plumbing, and says so in its output; the numbers mean something only at real scale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aira.errors import UsageError


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--{what} must be a comma list of numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise UsageError(f"--{what} needs positive numbers, got {text!r}")
    return vals


def model_overrides(width: int) -> dict:
    """ModelConfig fields for the tiny preset's shape at width `width` (head size 16, FFN 3x)."""
    if width % 16:
        raise UsageError(f"width {width} must be a multiple of 16 (the head size)")
    heads = width // 16
    return {"d_model": width, "n_heads": heads, "n_kv_heads": max(1, heads // 2) if heads % 2 == 0 else heads,
            "ffn_dim": 3 * width, "ssm_head_dim": 16, "ssm_state": 16}


def run_scaling(*, patterns: str, budgets: str, sizes: str = "32,48,64,96", task: str = "lm:shakespeare",
                tokenizer: str = "bytes", eval_tokens: int = 32_768, out: str = "runs/scaling",
                cache: str | None = None, executor: str = "inline", workers: int | None = None) -> int:
    import torch

    from aira.agents.executors import make_executor
    from aira.agents.jobs import run_jobs
    from aira.agents.types import Job
    from aira.compose.scaling import fit_frontier, isoflop_minimum, scales_faster, tokens_for
    from aira.models import count_params, flops_per_token, parse_pattern, resolve_config
    from aira.train.cache import resolve_dir

    patterns = ["".join(parse_pattern(p)) for p in patterns.split(",") if p.strip()]
    budgets = _floats(budgets, "budgets")
    widths = [int(w) for w in _floats(sizes, "sizes")]
    if len(budgets) < 2:
        raise UsageError("--budgets needs at least two compute budgets to fit a frontier")
    out = Path(out)
    cache_dir = resolve_dir(cache)
    out.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        print("aira compose scaling: running on CPU at toy sizes; the fits exercise the method, the numbers "
              "do not predict large-scale behaviour", file=sys.stderr)
    seq_len = 64
    result = {"task": task, "budgets": budgets, "widths": widths, "architectures": {}, "comparisons": []}
    # every (pattern, budget, width) is one job on the one job loop (in this process by default)
    jobs, cells = [], {}
    for pattern in patterns:
        for c in budgets:
            for w in widths:
                ov = model_overrides(w)
                cfg = resolve_config("tiny", vocab_size=257 if tokenizer == "bytes" else 8192, **ov)
                n = count_params(pattern, cfg, non_embedding=True)
                fpt = flops_per_token(pattern, cfg.with_(max_seq_len=seq_len), seq_len)
                tokens = tokens_for(c, n, fpt)
                train = {"pattern": pattern, "preset": "tiny", "task": task, "tokenizer": tokenizer,
                         "budget": f"{tokens} tokens", "seq_len": seq_len, "overrides": ov,
                         "eval_tokens": eval_tokens}
                job = Job(id=f"{pattern}-{c:g}-{w}", fn="aira.compose.study:train_point",
                          kwargs={"train": train, "cache_dir": cache_dir}, timeout_s=24 * 3600.0)
                jobs.append((job, (pattern, c, w, n, tokens)))

    def on_result(job, cell, res) -> None:
        pattern, c, w, n, tokens = cell
        loss = res.metrics.get("val_loss") if res.status.value == "ok" else None
        print(f"  {pattern} C={c:.2g} d={w}: N={n:,} tokens={tokens:,} loss={loss}", file=sys.stderr)
        cells[(pattern, c, w)] = {"compute": c, "size": w, "params": n, "tokens": tokens, "loss": loss}

    run_jobs(make_executor(executor, **({"slots": workers} if workers else {})), jobs, on_result)
    for pattern in patterns:
        runs = [cells[(pattern, c, w)] for c in budgets for w in widths]
        points = [isoflop_minimum([r["params"] for r in runs if r["compute"] == c],
                                  [r["loss"] for r in runs if r["compute"] == c], c) for c in budgets]
        frontier = fit_frontier(points)
        result["architectures"][pattern] = {"frontier": frontier.to_dict(), "runs": runs}
        print(f"{pattern}: L*(C) = {frontier.a:.4g} * C^{frontier.b:.4f}")
    ref = patterns[0]
    b_ref = result["architectures"][ref]["frontier"]["b"]
    for p in patterns[1:]:
        b = result["architectures"][p]["frontier"]["b"]
        pct = scales_faster(b, b_ref)
        result["comparisons"].append({"x": p, "y": ref, "b_x": b, "b_y": b_ref, "percent_faster": pct})
        print(f"{p} scales {pct:+.1f}% faster than {ref} (b {b:.4f} vs {b_ref:.4f})")
    (out / "scaling.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"results in {out / 'scaling.json'}")
    return 0


def train_point(*, train: dict, cache_dir: str | None) -> dict:
    """One point of the study (a Job's function): a pattern at one width and token budget, cached."""
    from aira.train.cache import cached_train
    from aira.train.trainer import TrainConfig

    r, _ = cached_train(TrainConfig(progress=False, **train), cache_dir)
    return r.to_dict()
