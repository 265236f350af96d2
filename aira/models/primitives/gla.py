"""`G`: gated linear attention, GLA (Yang, Wang, Shen, Panda & Kim, ICML 2024, "Gated Linear Attention
Transformers with Hardware-Efficient Training", arXiv 2312.06635).

Per head, with a state S (d_k x d_v) and a data-dependent decay per key channel, alpha_t = exp(gk_t)
(gk_t <= 0, a vector of d_k):
    S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,       o_t = scale S_t^T q_t,   scale = d_k^-1/2

- `gla_naive` is that recurrence one step at a time: the reference.
- `gla_chunked` is the chunked form: with b_t the cumulative log-decay (per channel) since the chunk
  start, inside a chunk
      o_t = scale [ (q_t * exp(b_t))^T S_0 + sum_{s<=t} (sum_i q_ti k_si exp(b_ti - b_si)) v_s ]
  the intra-chunk scores use an explicit (Q, Q, d_k) decay tensor (every entry exp of a non-positive
  number, so it is stable at any decay; the paper's secondary chunking trades that memory for
  stability the same way), each chunk's own state sum_s (k_s * exp(b_Q - b_s)) v_s^T comes from one
  matmul batched over all chunks, and a loop over the L / Q chunks of elementwise work carries the
  states along. The (Q, Q, d_k) tensor makes memory grow with Q, so the layer uses chunks of CHUNK.
- `gla` runs flash-linear-attention's Triton kernel (`fla.ops.gla.chunk_gla`) on CUDA when `fla` is
  installed, else `gla_chunked`.

The layer follows fla-org/flash-linear-attention's fla/layers/gla.py at its defaults (keys half as
wide as the model, expand_k = 0.5; values as wide, expand_v = 1; a low-rank gate projection of rank
16; gk = logsigmoid(.) / 16; an output gate silu(x W_g) after a per-head RMSNorm; no short conv):
    D = d_model, H = n_heads, Kd = D / 2 key width, h_k = Kd / H, h_v = D / H
    in_proj: d -> [q (Kd), k (Kd), v (D), gate (D)]; gk_proj: d -> 16 -> Kd (bias on the second)
    out_proj(RMSNorm_per_head(o) * silu(gate))

Parameters: D (2Kd + 2D) + 16 D + 16 Kd + Kd + h_v + D D
    (in_proj, the two low-rank gate matrices, their bias, norm weight, out_proj)
Training FLOPs per token = 3 x forward, all of it matmuls, so torch.utils.flop_counter agrees exactly:
    forward = 2D (2Kd + 2D) + 2 (16 D + 16 Kd) + 2 D D                  projections
            + [2Q Kd + 2Q D + 4 Kd D / H] cQ / L                      scan, Q = min(CHUNK, L), c = ceil(L / Q)
    the scan terms: intra-chunk scores (2Q Kd) and scores times values (2Q D), each chunk's state and
    the read-out of the entering state (2 h_k h_v per head each).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.registry import register

try:  # optional Triton kernels (flash-linear-attention); CPU users never have them
    from fla.ops.gla import chunk_gla as _fla_chunk
except Exception:  # noqa: BLE001 - any failure (missing package, CUDA/Triton mismatch): no fast path
    _fla_chunk = None

HAS_FLA = _fla_chunk is not None
CHUNK = 16  # chunk length of the layer's plain scan (fla's own sub-chunk length)
GATE_RANK = 16  # fla's gate_low_rank_dim
GATE_NORMALIZER = 16.0  # fla's gate_logit_normalizer


def gla_naive(
    q: Tensor, k: Tensor, v: Tensor, gk: Tensor, scale: float, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Step-by-step recurrence (reference). q, k, gk (b, l, H, dk), v (b, l, H, dv).

    Returns o (b, l, H, dv) and the final state (b, H, dk, dv).
    """
    b, l, H, dk = k.shape
    S = q.new_zeros(b, H, dk, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    outs = []
    for t in range(l):
        S = torch.exp(gk[:, t])[..., None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(b, 0, H, v.shape[-1])
    return o, S


def gla_chunked(
    q: Tensor, k: Tensor, v: Tensor, gk: Tensor, scale: float, chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chunked GLA; same arguments and results as `gla_naive`.

    Lengths that are not a multiple of the chunk are zero-padded: gk = 0 and k = 0 there mean decay 1
    and no write. Half-precision inputs are computed in float32; o comes back in q's dtype.
    """
    out_dtype = q.dtype
    work = torch.promote_types(q.dtype, torch.float32)
    q, k, v, gk = (t.to(work) for t in (q, k, v, gk))
    b, l, H, dk = k.shape
    dv = v.shape[-1]
    Q = max(1, min(chunk_size, l))
    pad = (-l) % Q
    if pad:
        q, k, v, gk = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (q, k, v, gk))
    c = (l + pad) // Q
    q, k, v, gk = (t.reshape(b, c, Q, H, -1).permute(0, 3, 1, 2, 4) for t in (q, k, v, gk))  # (b, H, c, Q, d)
    cum = torch.cumsum(gk, dim=-2)  # (b, H, c, Q, dk)
    # decay[t, s, i] = exp(cum_ti - cum_si) for s <= t; -inf above the diagonal before exp, so no overflow
    upper = torch.ones(Q, Q, dtype=torch.bool, device=q.device).triu(1)[:, :, None]
    decay = torch.exp((cum[..., :, None, :] - cum[..., None, :, :]).masked_fill(upper, float("-inf")))
    # scores[t, s] = sum_i q_ti (k_si decay_tsi): one (1, dk) x (dk, Q) product per query
    scores = (q[..., :, None, :] @ (k[..., None, :, :] * decay).transpose(-1, -2)).squeeze(-2)
    o = scores @ v  # (b, H, c, Q, dv)
    chunk_states = (k * torch.exp(cum[..., -1:, :] - cum)).transpose(-1, -2) @ v  # (b, H, c, dk, dv)
    chunk_decay = torch.exp(cum[..., -1, :])[..., None]  # (b, H, c, dk, 1)
    run = q.new_zeros(b, H, dk, dv) if initial_state is None else initial_state.to(work)
    entering = []
    for i in range(c):
        entering.append(run)
        run = chunk_decay[:, :, i] * run + chunk_states[:, :, i]
    o = o + (q * torch.exp(cum)) @ torch.stack(entering, dim=2)
    o = (o * scale).permute(0, 2, 3, 1, 4).reshape(b, c * Q, H, dv)
    return o[:, :l].to(out_dtype), run


def gla(q: Tensor, k: Tensor, v: Tensor, gk: Tensor, scale: float, chunk_size: int) -> Tensor:
    """GLA's outputs: fla's kernel on CUDA when installed (not under vmap), else `gla_chunked`."""
    if HAS_FLA and q.is_cuda and not torch._C._functorch.is_batchedtensor(q):
        o, _ = _fla_chunk(q, k, v, gk, scale=scale, output_final_state=False)
        return o
    return gla_chunked(q, k, v, gk, scale, chunk_size)[0]


def _dims(cfg: ModelConfig) -> tuple[int, int, int, int]:
    """(H, Kd, h_k, h_v), validated."""
    D, H = cfg.d_model, cfg.n_heads
    Kd = D // 2
    if D % 2 or Kd % H:
        raise UsageError(f"gated linear attention needs d_model / 2 divisible by n_heads, got {D} and {H}")
    return H, Kd, Kd // H, D // H


@register("G", "gla")
class GatedLinearAttention(nn.Module):
    """Gated linear attention token mixer, (B, L, D) -> (B, L, D), causal. Formulas: module docstring."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.causal:
            raise UsageError("gated linear attention (G) is causal only; bidirectional models cannot use it")
        H, Kd, _, h_v = _dims(cfg)
        D = cfg.d_model
        self.cfg, self.n_heads, self.key_dim = cfg, H, Kd
        self.in_proj = nn.Linear(D, 2 * Kd + 2 * D, bias=False)
        self.gk_down = nn.Linear(D, GATE_RANK, bias=False)
        self.gk_up = nn.Linear(GATE_RANK, Kd, bias=True)
        self.norm_weight = nn.Parameter(torch.ones(h_v))
        self.out_proj = nn.Linear(D, D, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        H, Kd = self.n_heads, self.key_dim
        b, l, D = x.shape
        q, k, v, gate = self.in_proj(x).split([Kd, Kd, D, D], dim=-1)
        gk = F.logsigmoid(self.gk_up(self.gk_down(x)).float()) / GATE_NORMALIZER
        q, k, gk = (t.reshape(b, l, H, -1) for t in (q, k, gk))
        o = gla(q, k, v.reshape(b, l, H, -1), gk, (Kd // H) ** -0.5, CHUNK)
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.cfg.norm_eps) * self.norm_weight
        return self.out_proj(o.reshape(b, l, D).to(x.dtype) * F.silu(gate))

    @classmethod
    def num_params(cls, cfg: ModelConfig) -> int:
        _, Kd, _, h_v = _dims(cfg)
        D, r = cfg.d_model, GATE_RANK
        return D * (2 * Kd + 2 * D) + r * D + r * Kd + Kd + h_v + D * D

    @classmethod
    def flops_per_token(cls, cfg: ModelConfig, seq_len: int) -> float:
        H, Kd, _, _ = _dims(cfg)
        D, r = cfg.d_model, GATE_RANK
        L = max(1, seq_len)
        Q = min(CHUNK, L)
        c = -(-L // Q)
        proj = 2 * D * (2 * Kd + 2 * D) + 2 * (r * D + r * Kd) + 2 * D * D
        scan = (2 * Q * Kd + 2 * Q * D + 4 * Kd * D / H) * (c * Q) / L
        return 3.0 * (proj + scan)
