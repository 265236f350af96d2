"""`S`: the Mamba-2 layer (Dao & Gu 2024, "Transformers are SSMs: ... Structured State Space Duality").

    in_proj: d -> [z (E), x (E), B (gN), C (gN), dt (H)]        E = ssm_expand*d, H = E / ssm_head_dim
    causal depthwise conv1d (kernel K, with bias) + SiLU over [x, B, C]
    dt = softplus(dt + dt_bias); A = -exp(A_log), one scalar per head
    y = SSD(x, dt, A, B, C) + D * x                           (aira/models/ssd.py)
    out_proj(RMSNorm(y * silu(z)))                            gated RMSNorm over E, no biases in projections

causal=False (bidirectional, for LRA encoders): the conv + scan + D-skip runs once on the sequence
and once on the reversed sequence with the same weights; the two outputs (the second flipped back)
are summed before the gate. The backward direction therefore sees t >= position, the forward t <= position.

Parameters, with X = E + 2gN (conv channels):
    d*(2E + 2gN + H) + X*K + X + 3H + E + E*d
    (in_proj, conv weight, conv bias, dt_bias + A_log + D, norm weight, out_proj)

Training FLOPs per token = 3 x forward, matmul and conv work only (the elementwise work, O(QH + E)
per token for the decay mask, gates and norm, is left out, as FlopCounterMode leaves it out):
    forward = 2d(2E + 2gN + H) + 2XK + 2Ed                    projections and conv
            + u * [2gQN + 2QE + 4EN] * cQ / L                  SSD, u = 2 if bidirectional else 1
    with Q = min(ssm_chunk, L) and c = ceil(L / Q) (the padded tail cQ - L is computed too): the C B^T
    scores (2gQN), the masked scores times the inputs (2QE: the chunk-length term), the chunk states
    and the state read-out (2EN each). The recurrence over chunks is elementwise (O(EN/Q) per token).
    On CPU the scan may halve the chunk where decays are too large for its factored form (see
    aira/models/ssd.py); that lowers the 2QE term, so the formula, at ssm_chunk, is an upper bound.
    torch.utils.flop_counter agrees on matmuls exactly; the depthwise conv runs as shifted
    multiply-adds (`_CausalConvSiLU`, same weights as the nn.Conv1d that holds them), which it does not
    see, so tests add the 2XK term themselves.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.registry import register
from aira.models.ssd import ssd


class _CausalConvSiLU(torch.autograd.Function):
    """silu(causal depthwise conv1d(x) + bias) in the (b, l, X) layout, forward and backward.

    Kernel K: pre[t] = bias + sum_k w[k] x[t - (K - 1) + k], K shifted in-place multiply-adds over
    contiguous rows. nn.Conv1d wants (b, X, l): the transposes there and the SiLU (and its backward)
    on the transposed, sliced output cost more than the convolution itself on CPU.
    """

    generate_vmap_rule = True  # so that many models can train as one (aira.train.batched)

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        # x (b, l, X), any strides (a split of in_proj's output); weight (X, K); bias (X,)
        K, l = weight.shape[1], x.shape[1]
        pre = torch.addcmul(bias, x, weight[:, K - 1])  # shift 0, new contiguous (b, l, X)
        for k in range(K - 1):
            s = K - 1 - k
            if s < l:
                pre[:, s:].addcmul_(x[:, : l - s], weight[:, k])
        return F.silu(pre), pre  # pre: kept for the backward, not differentiated

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight, output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_pre: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        x, weight, pre = ctx.saved_tensors
        K, l = weight.shape[1], x.shape[1]
        g = torch.ops.aten.silu_backward(grad.contiguous(), pre)
        gx = g * weight[:, K - 1]
        gw = torch.empty_like(weight)
        gw[:, K - 1] = (g * x).sum((0, 1))
        for k in range(K - 1):
            s = K - 1 - k
            if s < l:
                gx[:, : l - s].addcmul_(g[:, s:], weight[:, k])
                gw[:, k] = (g[:, s:] * x[:, : l - s]).sum((0, 1))
            else:
                gw[:, k] = 0.0
        return gx, gw, g.sum((0, 1))


def _dims(cfg: ModelConfig) -> tuple[int, int, int, int, int]:
    """(E, H, g*N, conv channels X, in_proj width), validated."""
    E = cfg.ssm_expand * cfg.d_model
    if E % cfg.ssm_head_dim:
        raise UsageError(f"ssm_expand*d_model ({E}) must be a multiple of ssm_head_dim ({cfg.ssm_head_dim})")
    H = E // cfg.ssm_head_dim
    if H % cfg.ssm_groups:
        raise UsageError(f"Mamba-2 heads ({H}) must be a multiple of ssm_groups ({cfg.ssm_groups})")
    gN = cfg.ssm_groups * cfg.ssm_state
    X = E + 2 * gN
    return E, H, gN, X, 2 * E + 2 * gN + H


@register("S", "mamba")
class Mamba2(nn.Module):
    """Mamba-2 (SSD) token mixer, (B, L, D) -> (B, L, D). See the module docstring for formulas."""

    def __init__(self, cfg: ModelConfig, *, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        E, H, _, X, W = _dims(cfg)
        self.cfg = cfg
        self.d_inner, self.n_heads, self.conv_dim = E, H, X
        self.in_proj = nn.Linear(cfg.d_model, W, bias=False)
        self.conv = nn.Conv1d(X, X, cfg.ssm_conv, groups=X, padding=cfg.ssm_conv - 1, bias=True)
        # dt starts log-uniform in [dt_min, dt_max]; dt_bias holds its softplus inverse.
        dt = torch.exp(torch.empty(H).uniform_(math.log(dt_min), math.log(dt_max)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(1.0, 16.0)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm_weight = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, cfg.d_model, bias=False)

    def _mix(self, xBC: Tensor, dt: Tensor) -> Tensor:
        """Causal conv + SSD + D skip on (b, l, X) and (b, l, H) -> (b, l, E)."""
        cfg = self.cfg
        b, l, _ = xBC.shape
        xBC = _CausalConvSiLU.apply(xBC, self.conv.weight[:, 0], self.conv.bias)[0]
        gN = cfg.ssm_groups * cfg.ssm_state
        x, B, C = torch.split(xBC, [self.d_inner, gN, gN], dim=-1)
        x = x.reshape(b, l, self.n_heads, cfg.ssm_head_dim)
        B = B.reshape(b, l, cfg.ssm_groups, cfg.ssm_state)
        C = C.reshape(b, l, cfg.ssm_groups, cfg.ssm_state)
        A = -torch.exp(self.A_log.float())
        y, _ = ssd(x, dt, A, B, C, cfg.ssm_chunk)
        y = y + self.D[:, None] * x
        return y.reshape(b, l, self.d_inner)

    def forward(self, u: Tensor) -> Tensor:
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv_dim, self.n_heads], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        y = self._mix(xBC, dt)
        if not self.cfg.causal:
            y = y + self._mix(xBC.flip(1), dt.flip(1)).flip(1)
        y = y * F.silu(z)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.cfg.norm_eps) * self.norm_weight
        return self.out_proj(y)

    @classmethod
    def num_params(cls, cfg: ModelConfig) -> int:
        E, H, _, X, W = _dims(cfg)
        return cfg.d_model * W + X * cfg.ssm_conv + X + 3 * H + E + E * cfg.d_model

    @classmethod
    def flops_per_token(cls, cfg: ModelConfig, seq_len: int) -> float:
        E, _, gN, X, W = _dims(cfg)
        L = max(1, seq_len)
        Q = min(cfg.ssm_chunk, L)
        c = -(-L // Q)
        proj = 2 * cfg.d_model * W + 2 * X * cfg.ssm_conv + 2 * E * cfg.d_model
        N = cfg.ssm_state
        # Work per padded position, spread over the L real tokens.
        scan = (2 * gN * Q + 2 * Q * E + 4 * E * N) * (c * Q) / L
        dirs = 1 if cfg.causal else 2
        return 3.0 * (proj + dirs * scan)
