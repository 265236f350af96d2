"""Speed of the Mamba-2 SSD scan and of the `S` layer, as ratios against references timed in the same run.

(1) `ssd_chunked` against the step-by-step recurrence `ssd_naive`, forward, fp32, at each length
    (target: >= 20x at L = 1024 on CPU), plus a sweep of chunk sizes for the chosen widths.
(2) One `S` layer against one `A` layer (forward + backward), same d_model, at each length.

Candidates are timed in alternating rounds after a warm-up, so that load from other processes hits
all alike; the median round is reported. On CPU the process CPU time is reported as well: with one
thread it ignores time lost to other processes, so its ratios are the steadier ones on a shared machine.

    python bench/ssd.py                                   # CPU, 1 thread, d_model 256, batch 4
    python bench/ssd.py --device cuda --batch 8 --lengths 1024 4096 8192 --no-naive
    python bench/ssd.py --only layers --tune-malloc       # with aira.models.ssd.tune_cpu_malloc()

Large-tensor timings depend on glibc's dynamic mmap threshold, which earlier work in the same
process raises: compare runs made with the same --only / --tune-malloc choice.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aira.models.ssd as ssd_mod
from aira.models.config import ModelConfig
from aira.models.registry import get
from aira.models.ssd import HAS_FLA, HAS_FUSED, ssd, ssd_chunked, ssd_naive, tune_cpu_malloc


def _fused_name() -> str:
    """The fused scan `ssd` runs on CUDA (aira.models.ssd's order), or "no"."""
    return "mamba_ssm" if HAS_FUSED else "fla chunk_simple_gla" if HAS_FLA else "no"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_rounds(
    fns: dict[str, Callable[[], object]], rounds: int, device: str
) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) seconds per call for each candidate, timed in alternating rounds."""
    for fn in fns.values():  # warm-up: allocator, kernels, lazy init
        fn()
    _sync(device)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - w, time.process_time() - c))
    return {k: tuple(statistics.median(t[i] for t in v) for i in (0, 1)) for k, v in times.items()}


def scan_inputs(cfg: ModelConfig, batch: int, length: int, device: str):
    E = cfg.ssm_expand * cfg.d_model
    H = E // cfg.ssm_head_dim
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, length, H, cfg.ssm_head_dim, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(batch, length, H, generator=g) - 3.0)
    A = -torch.empty(H).uniform_(1.0, 16.0, generator=g)
    B = torch.randn(batch, length, cfg.ssm_groups, cfg.ssm_state, generator=g)
    C = torch.randn(batch, length, cfg.ssm_groups, cfg.ssm_state, generator=g)
    return [t.to(device) for t in (x, dt, A, B, C)]


def masked_form(fn: Callable[[], object]) -> Callable[[], object]:
    """fn with ssd_chunked forced onto its masked form (what large decays and GPUs run)."""

    def run():
        saved, ssd_mod.FACTOR_LIMIT = ssd_mod.FACTOR_LIMIT, -1.0
        try:
            return fn()
        finally:
            ssd_mod.FACTOR_LIMIT = saved

    return run


def effective_chunk(dt, A, chunk: int) -> int:
    """The chunk ssd_chunked runs at on CPU for these decays (it halves until they fit)."""
    q = chunk
    while q >= ssd_mod.MIN_FACTORED_CHUNK:
        if ssd_mod._factor_range(dt, A, q) <= ssd_mod.FACTOR_LIMIT:
            return q
        q //= 2
    return chunk  # masked form at the requested chunk


def bench_scan(cfg: ModelConfig, args) -> None:
    print(f"\n(1) SSD forward, fp32: chunked (chunk {cfg.ssm_chunk}) vs step-by-step recurrence")
    print("(chunked = the factored form where decays allow, as here; masked = the general form)")
    print(f"{'L':>6} {'naive ms':>10} {'chunked ms':>11} {'speed-up':>9} {'cpu-time speed-up':>18} "
          f"{'masked ms':>10} {'speed-up':>9}")
    for L in args.lengths:
        x, dt, A, B, C = scan_inputs(cfg, args.batch, L, args.device)
        fns = {"chunked": lambda: ssd_chunked(x, dt, A, B, C, cfg.ssm_chunk)}
        fns["masked"] = masked_form(fns["chunked"])
        if not args.no_naive:
            fns["naive"] = lambda: ssd_naive(x, dt, A, B, C)
        with torch.no_grad():
            t = timed_rounds(fns, args.rounds, args.device)
        c, mk = t["chunked"], t["masked"]
        if "naive" in t:
            n = t["naive"]
            print(f"{L:>6} {n[0] * 1e3:>10.1f} {c[0] * 1e3:>11.2f} {n[0] / c[0]:>8.1f}x "
                  f"{n[1] / c[1]:>17.1f}x {mk[0] * 1e3:>10.2f} {n[0] / mk[0]:>8.1f}x")
        else:
            print(f"{L:>6} {'-':>10} {c[0] * 1e3:>11.2f} {'-':>9} {'-':>18} {mk[0] * 1e3:>10.2f}")
    if args.device == "cuda" and (HAS_FUSED or HAS_FLA):
        x, dt, A, B, C = scan_inputs(cfg, args.batch, max(args.lengths), args.device)
        with torch.no_grad():
            t = timed_rounds({"chunked": lambda: ssd_chunked(x, dt, A, B, C, cfg.ssm_chunk),
                              "fused": lambda: ssd(x, dt, A, B, C, cfg.ssm_chunk)}, args.rounds, args.device)
        print(f"fused {_fused_name()} vs chunked at L={max(args.lengths)}: "
              f"{t['chunked'][0] / t['fused'][0]:.1f}x faster")

    chunks = [16, 32, 64, 128, 256]
    x, dt, A, B, C = scan_inputs(cfg, 1, max(args.lengths), args.device)
    ran = [effective_chunk(dt, A, q) for q in chunks]
    print("\nchunk-size sweep, forward + backward of the scan (median ms; fastest marked *)")
    print("requested chunk (chunk the factored form runs at, halved until these decays fit):")
    print(f"{'L':>6} " + " ".join(f"{f'{q}({r})':>9}" for q, r in zip(chunks, ran)))
    for L in args.lengths:
        x, dt, A, B, C = scan_inputs(cfg, args.batch, L, args.device)
        x.requires_grad_()

        def step(q):
            return lambda: ssd_chunked(x, dt, A, B, C, q)[0].sum().backward()

        t = timed_rounds({q: step(q) for q in chunks}, max(1, args.rounds // 2), args.device)
        best = min(t, key=lambda q: t[q][1 if args.device == "cpu" else 0])
        print(f"{L:>6} " + " ".join(f"{t[q][0] * 1e3:>8.1f}{'*' if q == best else ' '}" for q in chunks))


def bench_layers(cfg: ModelConfig, args) -> None:
    print("\n(2) one S (Mamba-2) layer vs one A (attention) layer, forward + backward, same d_model")
    print(f"{'L':>6} {'A ms':>9} {'S ms':>9} {'S/A wall':>9} {'S/A cpu':>8}")
    torch.manual_seed(0)
    layers = {code: get(code).cls(cfg).to(args.device) for code in ("A", "S")}
    for L in args.lengths:
        x = torch.randn(args.batch, L, cfg.d_model, device=args.device, requires_grad=True)

        def step(code):
            return lambda: layers[code](x).sum().backward()

        t = timed_rounds({code: step(code) for code in layers}, args.rounds, args.device)
        a, s = t["A"], t["S"]
        print(f"{L:>6} {a[0] * 1e3:>9.1f} {s[0] * 1e3:>9.1f} {s[0] / a[0]:>8.2f}x {s[1] / a[1]:>7.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--state", type=int, default=64)
    p.add_argument("--head-dim", type=int, default=64, help="Mamba-2 head dim")
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-naive", action="store_true", help="skip the slow step-by-step reference")
    p.add_argument("--only", choices=["scan", "layers"], default=None)
    p.add_argument("--tune-malloc", action="store_true", help="call tune_cpu_malloc() first (CPU)")
    args = p.parse_args()
    tuned = args.tune_malloc and tune_cpu_malloc()
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(d_model=args.d_model, n_heads=args.n_heads, n_kv_heads=args.n_heads,
                      ffn_dim=4 * args.d_model, vocab_size=256, max_seq_len=max(args.lengths),
                      ssm_state=args.state, ssm_head_dim=args.head_dim, ssm_chunk=args.chunk)
    E = cfg.ssm_expand * cfg.d_model
    fused = _fused_name() if args.device == "cuda" else "no"
    print(f"device {args.device}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"d_model {cfg.d_model}, Mamba-2: d_inner {E}, heads {E // cfg.ssm_head_dim} x {cfg.ssm_head_dim}, "
          f"state {cfg.ssm_state}; fused kernels: {fused}; malloc tuned: {'yes' if tuned else 'no'}")
    if args.only != "layers":
        bench_scan(cfg, args)
    if args.only != "scan":
        bench_layers(cfg, args)


if __name__ == "__main__":
    main()
