"""`D`: Gated DeltaNet (Yang, Kautz & Hatamizadeh, ICLR 2025, "Gated Delta Networks: Improving Mamba2
with Delta Rule", arXiv 2412.06464), the linear-attention layer of Qwen3-Next's hybrids.

Per head, with a state S (d_k x d_v), a decay a_t = exp(g_t) in (0, 1] and a write strength beta_t in
(0, 1), the gated delta rule (the paper's S_t = S_{t-1} a_t (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,
written here with S transposed) is
    S_t = a_t S_{t-1} + k_t u_t^T,   u_t = beta_t (v_t - a_t S_{t-1}^T k_t)
    o_t = scale S_t^T q_t,           scale = d_k^-1/2
with q and k L2-normalised per head (so I - beta k k^T is a contraction).

- `gated_delta_naive` is that recurrence one step at a time: the reference.
- `gated_delta_chunked` is the chunked form (the paper's Section 3, after the WY representation of
  Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule"): inside a chunk of Q steps,
  with Gamma_t the decay since the chunk start, the pseudo-values solve a unit lower-triangular system
      (I + A) U = diag(beta) V - diag(beta Gamma) K S_0,   A_ts = beta_t (Gamma_t / Gamma_s) k_t.k_s, s < t
  so U = U_v - W S_0 with U_v, W from one triangular solve per chunk (batched over all chunks); then
      O = scale [diag(Gamma) Q S_0 + (Q K^T * decay mask) U],   S_Q = Gamma_Q S_0 + (K * Gamma_Q / Gamma)^T U.
  Only the state S_0 entering each chunk is sequential: a loop over the L / Q chunks of small matmuls.
  Every decay factor is exp of a non-positive number, so the form is stable at any decay.
- `gated_delta` runs flash-linear-attention's Triton kernel (`fla.ops.gated_delta_rule.chunk_gated_delta_rule`)
  on CUDA when `fla` is installed, else `gated_delta_chunked`.

The layer follows fla-org/flash-linear-attention's fla/layers/gated_deltanet.py, with value heads as
wide as key heads (fla's expand_v = 1) so that H heads of head_dim span d_model, as attention's do:
    in_proj: d -> [q (D), k (D), v (D), gate (D), a (H), b (H)]      D = d_model, H = n_heads, h = D / H
    q, k, v = silu(causal depthwise conv(.)), kernel ssm_conv, with bias (one conv over the three,
              as Mamba-2's; fla convolves each with its own bias-free conv)
    beta = sigmoid(b); g = -exp(A_log) softplus(a + dt_bias)          (Mamba-2's decay parametrisation)
    out_proj(RMSNorm_per_head(o) * silu(gate))                          norm weight of width h

Parameters, with K = ssm_conv:
    D (4D + 2H) + 3D K + 3D + 2H + h + D D
    (in_proj, conv weight, conv bias, A_log + dt_bias, norm weight, out_proj)
Training FLOPs per token = 3 x forward (matmuls; elementwise work left out, see attention.py):
    forward = 2D (4D + 2H) + 6DK + 2D D                                  projections and conv
            + [4Qh + 2Qh + 6h h + 2(Q - 1)h] H cQ / L                   scan, Q = min(ssm_chunk, L), c = ceil(L / Q)
    the scan terms per head: K K^T and Q K^T (2Qh each), the masked scores times U (2Qh), W S_0, the
    read-out Q S_0 and the state update K^T U (2hh each), and the triangular solve with 2h right-hand
    columns (2(Q - 1)h). torch.utils.flop_counter sees neither the solve nor the conv (shifted
    multiply-adds, see mamba2.py), and it counts the solve's backward as a full matmul.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.primitives.mamba2 import _CausalConvSiLU
from aira.models.registry import register

try:  # optional Triton kernels (flash-linear-attention); CPU users never have them
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule as _fla_chunk
except Exception:  # noqa: BLE001 - any failure (missing package, CUDA/Triton mismatch): no fast path
    _fla_chunk = None

HAS_FLA = _fla_chunk is not None


def gated_delta_naive(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Step-by-step recurrence (reference). q, k (b, l, H, dk), v (b, l, H, dv), g, beta (b, l, H).

    Returns o (b, l, H, dv) and the final state (b, H, dk, dv).
    """
    b, l, H, dk = k.shape
    S = q.new_zeros(b, H, dk, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    outs = []
    for t in range(l):
        S = torch.exp(g[:, t])[..., None, None] * S
        u = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhkv,bhk->bhv", S, k[:, t]))
        S = S + k[:, t, :, :, None] * u[:, :, None, :]
        outs.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(b, 0, H, v.shape[-1])
    return o, S


def _decay_mask(cum: Tensor, with_diagonal: bool) -> Tensor:
    """(..., Q) cumulative log-decays -> (..., Q, Q): exp(cum_t - cum_s) on the kept triangle, else 0.

    The excluded entries are filled with -inf before exp, so neither they nor their gradients overflow.
    """
    Q = cum.shape[-1]
    drop = torch.ones(Q, Q, dtype=torch.bool, device=cum.device).triu(1 if with_diagonal else 0)
    return torch.exp((cum[..., :, None] - cum[..., None, :]).masked_fill(drop, float("-inf")))


def gated_delta_chunked(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float, chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chunked gated delta rule; same arguments and results as `gated_delta_naive`.

    Lengths that are not a multiple of the chunk are zero-padded: g = 0, beta = 0, k = 0 there mean
    decay 1 and no write, so the padding changes neither the kept outputs nor the final state.
    Half-precision inputs are computed in float32; o comes back in q's dtype, the state in float32.
    """
    out_dtype = q.dtype
    work = torch.promote_types(q.dtype, torch.float32)
    q, k, v, g, beta = (t.to(work) for t in (q, k, v, g, beta))
    b, l, H, dk = k.shape
    dv = v.shape[-1]
    Q = max(1, min(chunk_size, l))
    pad = (-l) % Q
    if pad:
        q, k, v, g, beta = (F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) for t in (q, k, v, g, beta))
    c = (l + pad) // Q
    # (b, H, c, Q, d): heads ahead of time, so every matmul below is batched over (b, H, c)
    q, k, v = (t.reshape(b, c, Q, H, -1).permute(0, 3, 1, 2, 4) for t in (q, k, v))
    g, beta = (t.reshape(b, c, Q, H).permute(0, 3, 1, 2) for t in (g, beta))
    cum = torch.cumsum(g, dim=-1)  # (b, H, c, Q) log of Gamma_t
    strict, causal = _decay_mask(cum, with_diagonal=False), _decay_mask(cum, with_diagonal=True)
    A = beta[..., None] * (k @ k.transpose(-1, -2)) * strict  # (b, H, c, Q, Q), zero on and above the diagonal
    eye = torch.eye(Q, dtype=work, device=q.device)
    rhs = torch.cat((beta[..., None] * v, (beta * torch.exp(cum))[..., None] * k), dim=-1)
    U_v, W = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True).split([dv, dk], -1)
    scores = (q @ k.transpose(-1, -2)) * causal  # (b, H, c, Q, Q)
    q_in = q * torch.exp(cum)[..., None]  # reads the entering state
    k_out = k * torch.exp(cum[..., -1:] - cum)[..., None]  # writes the leaving state
    decay = torch.exp(cum[..., -1])[..., None, None]  # (b, H, c, 1, 1)
    S = q.new_zeros(b, H, dk, dv) if initial_state is None else initial_state.to(work)
    outs = []
    for i in range(c):
        U = U_v[:, :, i] - W[:, :, i] @ S
        outs.append(q_in[:, :, i] @ S + scores[:, :, i] @ U)
        S = decay[:, :, i] * S + k_out[:, :, i].transpose(-1, -2) @ U
    o = torch.stack(outs, dim=2) * scale  # (b, H, c, Q, dv)
    o = o.permute(0, 2, 3, 1, 4).reshape(b, c * Q, H, dv)
    return o[:, :l].to(out_dtype), S


def gated_delta(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float, chunk_size: int
) -> Tensor:
    """The gated delta rule's outputs: fla's kernel on CUDA when installed, else `gated_delta_chunked`.

    Under vmap (aira.train.batched) the plain form runs: a Triton kernel has no batching rule.
    """
    if HAS_FLA and q.is_cuda and not torch._C._functorch.is_batchedtensor(q):
        o, _ = _fla_chunk(q, k, v, g, beta, scale=scale, output_final_state=False)
        return o
    return gated_delta_chunked(q, k, v, g, beta, scale, chunk_size)[0]


def _dims(cfg: ModelConfig) -> tuple[int, int]:
    """(H, h), validated."""
    if cfg.d_model % cfg.n_heads:
        raise UsageError(f"Gated DeltaNet needs d_model % n_heads == 0, got {cfg.d_model} and {cfg.n_heads}")
    return cfg.n_heads, cfg.d_model // cfg.n_heads


@register("D", "deltanet")
class GatedDeltaNet(nn.Module):
    """Gated DeltaNet token mixer, (B, L, D) -> (B, L, D), causal. See the module docstring for formulas."""

    def __init__(self, cfg: ModelConfig, *, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        if not cfg.causal:
            raise UsageError("Gated DeltaNet (D) is causal only; bidirectional models cannot use it")
        H, h = _dims(cfg)
        D = cfg.d_model
        self.cfg, self.n_heads, self.head_dim = cfg, H, h
        self.in_proj = nn.Linear(D, 4 * D + 2 * H, bias=False)
        self.conv = nn.Conv1d(3 * D, 3 * D, cfg.ssm_conv, groups=3 * D, padding=cfg.ssm_conv - 1, bias=True)
        # As fla and Mamba-2: dt log-uniform in [dt_min, dt_max] (dt_bias its softplus inverse), A in [1, 16].
        dt = torch.exp(torch.empty(H).uniform_(math.log(dt_min), math.log(dt_max)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(1.0, 16.0)))
        self.norm_weight = nn.Parameter(torch.ones(h))
        self.out_proj = nn.Linear(D, D, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        cfg, H, h = self.cfg, self.n_heads, self.head_dim
        b, l, D = x.shape
        qkv, gate, a, beta = self.in_proj(x).split([3 * D, D, H, H], dim=-1)
        qkv = _CausalConvSiLU.apply(qkv, self.conv.weight[:, 0], self.conv.bias)[0]
        q, k, v = (t.reshape(b, l, H, h) for t in qkv.split(D, dim=-1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        g = -torch.exp(self.A_log.float()) * F.softplus(a.float() + self.dt_bias)
        o = gated_delta(q, k, v, g, torch.sigmoid(beta.float()), h**-0.5, cfg.ssm_chunk)
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * self.norm_weight
        return self.out_proj(o.reshape(b, l, D).to(x.dtype) * F.silu(gate))

    @classmethod
    def num_params(cls, cfg: ModelConfig) -> int:
        H, h = _dims(cfg)
        D, K = cfg.d_model, cfg.ssm_conv
        return D * (4 * D + 2 * H) + 3 * D * K + 3 * D + 2 * H + h + D * D

    @classmethod
    def flops_per_token(cls, cfg: ModelConfig, seq_len: int) -> float:
        H, h = _dims(cfg)
        D, K = cfg.d_model, cfg.ssm_conv
        L = max(1, seq_len)
        Q = min(cfg.ssm_chunk, L)
        c = -(-L // Q)
        proj = 2 * D * (4 * D + 2 * H) + 6 * D * K + 2 * D * D
        scan = (6 * Q * h + 6 * h * h + 2 * (Q - 1) * h) * H * (c * Q) / L
        return 3.0 * (proj + scan)
