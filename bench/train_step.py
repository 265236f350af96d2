"""Training-step throughput of HybridLM "(AM)xN" against a minimal plain-PyTorch Llama of the same size.

One step = forward + backward + AdamW. The reference below is written out here on purpose (separate q, k,
v projections, rotate-half RoPE, SDPA, SwiGLU, RMSNorm, tied head), so the ratio measures what aira's
pattern-built model costs over the plain thing. The two models are timed in alternating rounds after a
warm-up so that noise from a shared machine hits both alike; the median round is reported. On CPU the
process's CPU time is reported too: with one thread it ignores time lost to other processes, so its
ratio is the steadier one on a shared machine.

    python bench/train_step.py                 # CPU, 1 thread (target: ratio >= 0.95)
    python bench/train_step.py --device cuda --d-model 512 --layers 8 --seq-len 2048 --batch 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aira.models import ModelConfig, build_model


class RefBlock(nn.Module):
    """One Llama block: x + attn(norm(x)); x + mlp(norm(x))."""

    def __init__(self, d: int, n_heads: int, n_kv: int, ffn: int):
        super().__init__()
        self.h, self.kv, self.hd = n_heads, n_kv, d // n_heads
        self.n1, self.n2 = nn.RMSNorm(d), nn.RMSNorm(d)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, n_kv * self.hd, bias=False)
        self.wv = nn.Linear(d, n_kv * self.hd, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.gate, self.up = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)

    @staticmethod
    def rope(x, cos, sin):
        a, b = x.chunk(2, dim=-1)
        return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)

    def forward(self, x, cos, sin):
        B, L, D = x.shape
        y = self.n1(x)
        q = self.rope(self.wq(y).view(B, L, self.h, self.hd).transpose(1, 2), cos, sin)
        k = self.rope(self.wk(y).view(B, L, self.kv, self.hd).transpose(1, 2), cos, sin)
        v = self.wv(y).view(B, L, self.kv, self.hd).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv != self.h)
        x = x + self.wo(a.transpose(1, 2).reshape(B, L, D))
        y = self.n2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class RefLlama(nn.Module):
    def __init__(self, cfg: ModelConfig, n_blocks: int):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(
            RefBlock(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim) for _ in range(n_blocks)
        )
        self.norm = nn.RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        hd = cfg.head_dim
        inv = 1.0 / cfg.rope_theta ** (torch.arange(0, hd, 2).float() / hd)
        ang = torch.outer(torch.arange(cfg.max_seq_len).float(), inv)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, idx, targets):
        L = idx.shape[1]
        cos, sin = self.cos[:L], self.sin[:L]
        x = self.embed(idx)
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = self.head(self.norm(x))
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4, help="Llama blocks N; aira's pattern is (AM)xN")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(
        d_model=args.d_model,
        n_heads=args.heads,
        n_kv_heads=args.kv_heads,
        ffn_dim=int(8 * args.d_model / 3) // 64 * 64,
        vocab_size=args.vocab,
        max_seq_len=args.seq_len,
    )
    dev = args.device
    models = {
        "plain": RefLlama(cfg, args.layers).to(dev),
        "aira": build_model(f"(AM)x{args.layers}", cfg).to(dev),
    }
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    assert n_params["plain"] == n_params["aira"], n_params
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, foreach=True) for k, m in models.items()}
    idx = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len + 1), device=dev)
    x, y = idx[:, :-1], idx[:, 1:]
    dtype = getattr(torch, args.dtype)

    def step(name: str) -> None:
        with torch.autocast(dev.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            _, loss = models[name](x, y)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    for name in models:  # warm-up: allocator, kernels, lazily built tables
        for _ in range(2):
            step(name)
    _sync(dev)
    times: dict[str, list[float]] = {k: [] for k in models}
    cpu: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step(name)
            _sync(dev)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    tokens = args.batch * args.seq_len * args.steps
    tps = {k: tokens / statistics.median(v) for k, v in times.items()}
    cpu_tps = {k: tokens / statistics.median(v) for k, v in cpu.items()}
    print(
        f"config: d {cfg.d_model} heads {cfg.n_heads}/{cfg.n_kv_heads} ffn {cfg.ffn_dim} vocab {cfg.vocab_size} "
        f"blocks {args.layers} seq {args.seq_len} batch {args.batch} params {n_params['aira']:,} "
        f"device {dev} threads {args.threads} dtype {args.dtype}"
    )
    for k in models:
        spread = (max(times[k]) - min(times[k])) / statistics.median(times[k])
        print(
            f"{k}_tokens_per_s: {tps[k]:.0f} (spread {spread:.0%} over {args.rounds} rounds)"
            + (f", per CPU second {cpu_tps[k]:.0f}" if dev == "cpu" else "")
        )
    print(f"ratio_aira_over_plain: {tps['aira'] / tps['plain']:.3f} (wall clock; target >= 0.95)")
    if dev == "cpu":
        print(f"ratio_aira_over_plain_cpu_time: {cpu_tps['aira'] / cpu_tps['plain']:.3f}")


if __name__ == "__main__":
    main()
