"""One prepared GPU check, for a session that is lent a GPU (see the device tool's README).

What only a GPU can show, in one run of about 6 minutes, printed and written to $OUT/gpu_check.json:
  1. bf16 matmul throughput (the peak that model FLOPs utilisation is measured against);
  2. the flash SDPA kernel runs for aira's attention (bf16, causal, GQA);
  3. the trainer in bf16 on a ~50M-parameter pattern ((AM)x8 at preset `small`): tokens/s and MFU, eager
     and with torch.compile;
  4. the cost of an S (Mamba-2) layer against an A layer, forward + backward, at L = 2048 and 8192;
  5. if mamba_ssm is installed, the fused scan against aira's chunked scan.

    PYTHONPATH=. python bench/gpu_check.py [--budget 60s] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _time(fn, reps: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def matmul_peak() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    s = _time(lambda: a @ a, 20)
    return 2 * 8192**3 / s


def flash_check() -> str:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from aira.models.config import ModelConfig
    from aira.models.registry import get

    cfg = ModelConfig(d_model=1024, n_heads=16, n_kv_heads=4, ffn_dim=4096, vocab_size=100, max_seq_len=2048)
    attn = get("A").cls(cfg).cuda().to(torch.bfloat16)
    x = torch.randn(4, 2048, 1024, device="cuda", dtype=torch.bfloat16)
    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            attn(x).sum().backward()
        return "flash attention ran (forward + backward, bf16, causal, GQA)"
    except RuntimeError as e:
        return f"flash attention did NOT run: {str(e).splitlines()[0]}"


def trainer_run(budget: str, compile_: bool, peak: float) -> dict:
    from aira.train.trainer import TrainConfig, train

    r = train(TrainConfig(pattern="(AM)x8", preset="small", task="lm:shakespeare", tokenizer="bytes",
                          budget=budget, compile=compile_, progress=False, eval_tokens=65_536))
    mfu = r.tokens_per_s * r.flops_per_token / peak
    return {k: getattr(r, k) for k in ("status", "params", "non_embedding_params", "flops_per_token", "tokens_per_s",
                              "peak_mem_mb", "metric", "steps", "compile_s")} | {"compile": compile_, "mfu": mfu}


def s_vs_a(lengths: list[int]) -> dict:
    from aira.models.config import ModelConfig
    from aira.models.registry import get

    out = {}
    for L in lengths:
        cfg = ModelConfig(d_model=768, n_heads=12, n_kv_heads=4, ffn_dim=2048, vocab_size=100, max_seq_len=L)
        x = torch.randn(max(1, 16384 // L), L, 768, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        times = {}
        for code in ("A", "S"):
            layer = get(code).cls(cfg).cuda()

            def step(layer=layer):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    layer(x).float().sum().backward()

            times[code] = _time(step, 5)
        out[str(L)] = {"A_s": times["A"], "S_s": times["S"], "S_over_A": times["S"] / times["A"]}
    return out


def fused_agreement() -> str:
    from aira.models import ssd as ssd_mod

    if not (ssd_mod.HAS_FUSED or ssd_mod.HAS_FLA):
        return "neither mamba_ssm nor flash-linear-attention installed: fused path not checked"
    kernel = "mamba_ssm" if ssd_mod.HAS_FUSED else "fla chunk_simple_gla"
    b, l, h, p, n = 2, 512, 8, 64, 64
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(b, l, h, p, device="cuda", generator=g)
    dt = torch.rand(b, l, h, device="cuda", generator=g) * 0.1
    A = -torch.rand(h, device="cuda", generator=g)
    B = torch.randn(b, l, 1, n, device="cuda", generator=g)
    C = torch.randn(b, l, 1, n, device="cuda", generator=g)
    y_ref, _ = ssd_mod.ssd_chunked(x, dt, A, B, C, 64)
    y, _ = ssd_mod.ssd(x, dt, A, B, C, 64)
    return f"fused ({kernel}) vs chunked max abs diff {float((y - y_ref).abs().max()):.2e}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", default="60s", help="trainer budget per run (default 60s)")
    p.add_argument("--quick", action="store_true", help="skip torch.compile and the 8192 length")
    p.add_argument("--sections", default="flash,trainer,s_vs_a,fused",
                   help="comma list of flash, trainer, s_vs_a, fused (default: all; the matmul peak always runs)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing to measure")
        return 2
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"flash", "trainer", "s_vs_a", "fused"}
    if unknown:
        print(f"gpu_check: unknown section(s) {', '.join(sorted(unknown))}; valid: flash, trainer, s_vs_a, fused")
        return 2
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    res["bf16_matmul_flops"] = peak = matmul_peak()
    print(f"bf16_matmul_flops: {peak:.3e}", flush=True)
    if "flash" in sections:
        res["flash"] = flash_check()
        print(f"flash: {res['flash']}", flush=True)
    if "trainer" in sections:
        res["trainer_eager"] = trainer_run(args.budget, False, peak)
        print(f"trainer eager: {res['trainer_eager']}", flush=True)
        if not args.quick:
            res["trainer_compiled"] = trainer_run(args.budget, True, peak)
            print(f"trainer compiled: {res['trainer_compiled']}", flush=True)
    if "s_vs_a" in sections:
        res["s_vs_a"] = s_vs_a([2048] if args.quick else [2048, 8192])
        print(f"S vs A: {res['s_vs_a']}", flush=True)
    if "fused" in sections:
        res["fused"] = fused_agreement()
        print(f"fused: {res['fused']}", flush=True)
    out = Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    out.write_text(json.dumps(res, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
