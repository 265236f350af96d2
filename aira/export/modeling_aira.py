"""Hugging Face modeling code of an aira hybrid model, in plain PyTorch (no aira import).

This file is copied verbatim into every exported model folder and loaded with
`AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`, so it must work where aira is
not installed. It re-states aira's primitives (aira/models/primitives/*.py, aira/models/ssd.py) in a
compact form with the same parameter names, so an aira state dict loads unchanged; tests/export checks
that its logits equal aira's HybridLM on the same weights. If a primitive changes in aira, that test
fails until this file follows.

Layers, one pre-norm residual block x + mixer(RMSNorm(x)) per pattern code:
  A  grouped-query attention with RoPE ("rotate half" pairs), causal
  W  the same with a sliding window: query t sees keys t - window + 1 .. t
  M  SwiGLU MLP: out_proj(silu(w1 x) * w3 x)
  S  Mamba-2: in_proj -> [z, xBC, dt]; causal depthwise conv + SiLU; chunked SSD scan; D skip;
     gated RMSNorm; out_proj
  D  Gated DeltaNet: in_proj -> [q, k, v, gate, a, b]; causal depthwise conv + SiLU over q, k, v;
     L2-normalised q, k; chunked gated delta rule; per-head RMSNorm gated by silu(gate); out_proj
  G  gated linear attention: in_proj -> [q, k, v, gate]; low-rank decay logsigmoid(.) / 16 per key
     channel; chunked GLA scan; per-head RMSNorm gated by silu(gate); out_proj
  E  mixture of SwiGLU experts: softmax router, top-k renormalised gates (computed densely here:
     every expert on every token, the unchosen ones weighted 0); its load-balancing loss is a training
     term only and is not part of this file's loss
  any other code: a promoted mechanism (config.json "promoted"), an LRA attention.py whose source the
     exporter copied beside this file (aira_mechanism_<code>.py, imported through aira_mechanisms.py,
     checked against its sha256 when built), adapted as aira adapts it (AiraPromoted)
Generation keeps an inference cache (AiraCache): attention layers keep their rotated keys and values,
Mamba-2 and Gated DeltaNet their last ssm_conv - 1 convolution inputs and their recurrent state, GLA its
recurrent state; each new token then costs one step, not a pass over the prefix (a promoted mechanism,
which has no cache contract, keeps its inputs and reruns on the whole prefix). The scans take the
state entering the sequence and return the state leaving it, so the prompt runs through the same chunked
code as training and every later token continues from there (tests/export checks cached generation
token for token against `use_cache=False`). Batches must be right-padded (or unpadded): a causal
model's real tokens never see right padding, while left padding would shift positions and feed pad
tokens into the recurrent states, so a left-padded attention mask is refused.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .aira_mechanisms import MECHANISMS
from .configuration_aira import AiraConfig

# The output field of the cache: "cache" in transformers 5, "past_key_values" before.
CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class AiraCache:
    """What each layer keeps between generation steps: one dict per block (empty for M and E), plus
    the number of tokens seen. A plain object rather than a transformers Cache, whose API changes
    between releases; generate passes it back as it is, and beam search reorders it."""

    def __init__(self, n_layers: int):
        self.layers: list[dict[str, Tensor]] = [{} for _ in range(n_layers)]
        self.seen = 0

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        for layer in self.layers:
            for k, v in layer.items():
                layer[k] = v.index_select(0, beam_idx.to(v.device))


def causal_conv(conv: nn.Conv1d, x: Tensor, cache: dict | None, key: str = "conv") -> Tensor:
    """Depthwise causal conv of x (b, L, C) -> (b, L, C). With a cache, it starts from the last
    kernel - 1 inputs kept there (zeros at the start, as the layer's own padding) and keeps the new ones."""
    L, keep = x.shape[1], conv.kernel_size[0] - 1
    x = x.transpose(1, 2)
    if cache is None or key not in cache:  # the uncached path, unchanged
        y = conv(x)[..., :L]
        if cache is not None:
            cache[key] = F.pad(x, (keep, 0))[..., x.shape[-1] :]  # the last `keep` inputs, zero-filled
        return y.transpose(1, 2)
    full = torch.cat((cache[key], x), dim=-1)
    cache[key] = full[..., full.shape[-1] - keep :]
    return F.conv1d(full, conv.weight, conv.bias, groups=conv.groups).transpose(1, 2)


def rope_tables(seq_len: int, head_dim: int, theta: float, device, dtype) -> tuple[Tensor, Tensor]:
    """cos, sin of shape (L, 1, h/2), computed in float64 then cast (as aira does)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().to(device=device, dtype=dtype)[:, None, :], angles.sin().to(
        device=device, dtype=dtype
    )[:, None, :]


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class AiraAttention(nn.Module):
    """A (window=None) and W (window=config.window)."""

    def __init__(self, config: AiraConfig, window: int | None = None):
        super().__init__()
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        self.head_dim = config.d_model // config.n_heads
        self.theta, self.window = config.rope_theta, window
        h = self.head_dim
        self.qkv_proj = nn.Linear(config.d_model, (self.n_heads + 2 * self.n_kv_heads) * h, bias=False)
        self.out_proj = nn.Linear(self.n_heads * h, config.d_model, bias=False)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        B, L, _ = x.shape
        H, K, h = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = self.qkv_proj(x).split([H * h, K * h, K * h], dim=-1)
        past = 0 if cache is None or "k" not in cache else cache["k"].shape[2]
        cos, sin = rope_tables(past + L, h, self.theta, x.device, x.dtype)
        cos, sin = cos[past:], sin[past:]  # positions past .. past + L - 1
        q = apply_rope(q.view(B, L, H, h), cos, sin).transpose(1, 2)
        k = apply_rope(k.view(B, L, K, h), cos, sin).transpose(1, 2)
        v = v.view(B, L, K, h).transpose(1, 2)
        if cache is not None:  # keys and values of every position so far, (B, K, past + L, h)
            if past:
                k, v = torch.cat((cache["k"], k), dim=2), torch.cat((cache["v"], v), dim=2)
            cache["k"], cache["v"] = k, v
        if K != H:  # share each kv head with its group of query heads
            k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)
        if past or (self.window is not None and self.window < L):
            dist = torch.arange(past, past + L, device=x.device)[:, None] - torch.arange(past + L, device=x.device)
            allowed = dist >= 0
            if self.window is not None:
                allowed = allowed & (dist < self.window)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, H * h))


class AiraMLP(nn.Module):
    def __init__(self, config: AiraConfig, ffn_dim: int | None = None):
        super().__init__()
        ffn_dim = config.ffn_dim if ffn_dim is None else ffn_dim
        self.w1 = nn.Linear(config.d_model, ffn_dim, bias=False)
        self.w3 = nn.Linear(config.d_model, ffn_dim, bias=False)
        self.out_proj = nn.Linear(ffn_dim, config.d_model, bias=False)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        return self.out_proj(F.silu(self.w1(x)) * self.w3(x))


def ssd_scan(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int, h0: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Chunked SSD: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t, per head.

    x (b, l, h, p), dt (b, l, h), A (h,), B and C (b, l, g, n), h0 the state entering (b, h, p, n) or None
    for zeros -> y (b, l, h, p) and the state leaving (fp32). Inside a chunk the output is a
    decay-masked quadratic form; a loop over chunks carries the state between them.
    Computed in fp32 whatever the weights' dtype (the decays are exponentials of long sums), and
    returned in the dtype of x.
    """
    out_dtype = x.dtype
    x, dt, A, B, C = (t.float() for t in (x, dt, A, B, C))
    b, l, nh, p = x.shape
    g, n = B.shape[-2:]
    B, C = B.repeat_interleave(nh // g, dim=2), C.repeat_interleave(nh // g, dim=2)  # (b, l, h, n)
    Q = max(1, min(chunk, l))
    pad = (-l) % Q  # dt = 0 on padding: decay 1 and no input, so the kept outputs do not change
    if pad:
        x, dt, B, C = (F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) for t in (x, dt, B, C))
    c = (l + pad) // Q
    x, B, C = (t.reshape(b, c, Q, nh, -1) for t in (x, B, C))
    dt = dt.reshape(b, c, Q, nh)
    a_cum = torch.cumsum(dt * A, dim=2)  # (b, c, Q, h)
    diff = a_cum[:, :, :, None, :] - a_cum[:, :, None, :, :]  # (b, c, Q_i, Q_j, h)
    causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()
    decay = torch.exp(diff.masked_fill(~causal[:, :, None], float("-inf")))
    scores = torch.einsum("bcihn,bcjhn->bcijh", C, B) * decay * dt[:, :, None, :, :]
    y = torch.einsum("bcijh,bcjhp->bcihp", scores, x)
    to_end = dt * torch.exp(a_cum[:, :, -1:] - a_cum)  # (b, c, Q, h)
    states = torch.einsum("bcjhn,bcjh,bcjhp->bchpn", B, to_end, x)
    chunk_decay = torch.exp(a_cum[:, :, -1])  # (b, c, h)
    run = x.new_zeros(b, nh, p, n) if h0 is None else h0.float()
    entering = []
    for k in range(c):
        entering.append(run)
        run = chunk_decay[:, k, :, None, None] * run + states[:, k]
    h_in = torch.stack(entering, dim=1)  # (b, c, h, p, n)
    y = y + torch.einsum("bcihn,bchpn->bcihp", C, h_in) * torch.exp(a_cum)[..., None]
    return y.reshape(b, c * Q, nh, p)[:, :l].to(out_dtype), run


@torch.no_grad()
def _reset_decay(dt_bias: Tensor, A_log: Tensor, dt_min: float, dt_max: float) -> None:
    """Mamba-2's decay init, shared by S and D: dt log-uniform in [dt_min, dt_max] (dt_bias holds its
    softplus inverse), A uniform in [1, 16]."""
    n = dt_bias.numel()
    dt = torch.exp(torch.empty(n).uniform_(math.log(dt_min), math.log(dt_max)))
    dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
    A_log.copy_(torch.log(torch.empty(n).uniform_(1.0, 16.0)))


class AiraMamba2(nn.Module):
    def __init__(self, config: AiraConfig):
        super().__init__()
        self.config = config
        E = config.ssm_expand * config.d_model
        self.d_inner, self.n_heads = E, E // config.ssm_head_dim
        self.gN = config.ssm_groups * config.ssm_state
        self.conv_dim = E + 2 * self.gN
        H, X = self.n_heads, self.conv_dim
        self.in_proj = nn.Linear(config.d_model, 2 * E + 2 * self.gN + H, bias=False)
        self.conv = nn.Conv1d(X, X, config.ssm_conv, groups=X, padding=config.ssm_conv - 1, bias=True)
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.A_log = nn.Parameter(torch.zeros(H))
        self.D = nn.Parameter(torch.ones(H))
        self.norm_weight = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, config.d_model, bias=False)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        _reset_decay(self.dt_bias, self.A_log, dt_min, dt_max)
        self.D.fill_(1.0)
        self.norm_weight.fill_(1.0)

    def forward(self, u: Tensor, cache: dict | None = None) -> Tensor:
        cfg = self.config
        b, l, _ = u.shape
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv_dim, self.n_heads], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        xBC = F.silu(causal_conv(self.conv, xBC, cache))
        x, B, C = torch.split(xBC, [self.d_inner, self.gN, self.gN], dim=-1)
        x = x.reshape(b, l, self.n_heads, cfg.ssm_head_dim)
        B = B.reshape(b, l, cfg.ssm_groups, cfg.ssm_state)
        C = C.reshape(b, l, cfg.ssm_groups, cfg.ssm_state)
        h0 = None if cache is None else cache.get("ssm")
        y, h = ssd_scan(x, dt, -torch.exp(self.A_log.float()), B, C, cfg.ssm_chunk, h0)
        if cache is not None:
            cache["ssm"] = h
        y = (y + self.D[:, None] * x).reshape(b, l, self.d_inner) * F.silu(z)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * self.norm_weight
        return self.out_proj(y)


class AiraMoE(nn.Module):
    """Top-k mixture of SwiGLU experts of width ffn_dim // moe_top_k."""

    def __init__(self, config: AiraConfig):
        super().__init__()
        self.top_k = config.moe_top_k
        self.router = nn.Linear(config.d_model, config.moe_experts, bias=False)
        width = config.ffn_dim // config.moe_top_k
        self.experts = nn.ModuleList(AiraMLP(config, width) for _ in range(config.moe_experts))

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        probs = torch.softmax(self.router(x).float(), dim=-1)
        top, chosen = probs.topk(self.top_k, dim=-1)
        weights = torch.zeros_like(probs).scatter(-1, chosen, top / top.sum(-1, keepdim=True))
        outs = torch.stack([expert(x) for expert in self.experts], dim=-2)  # (b, l, E, d)
        return (weights.to(x.dtype)[..., None] * outs).sum(-2)


def causal_mask_exp(cum_t: Tensor, cum_s: Tensor, keep: Tensor) -> Tensor:
    """exp(cum_t - cum_s) where `keep`, else 0 (-inf before exp, so nothing overflows)."""
    return torch.exp((cum_t - cum_s).masked_fill(~keep, float("-inf")))


def _chunks(Q: int, l: int, *tensors: Tensor) -> tuple[int, list[Tensor]]:
    """Zero-pad (b, l, h, ...) tensors to a multiple of Q; return the chunk count and (b, h, c, Q, ...)."""
    pad = (-l) % Q
    out = []
    for t in tensors:
        t = F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) if pad else t
        b, lp, h = t.shape[:3]
        out.append(t.reshape(b, lp // Q, Q, h, *t.shape[3:]).transpose(1, 3).transpose(2, 3))
    return (l + pad) // Q, out


def gated_delta_scan(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float, chunk: int, S0: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Chunked gated delta rule: S_t = a_t S_{t-1} + k_t beta_t (v_t - a_t S_{t-1}^T k_t)^T, o_t = scale S_t^T q_t.

    q, k (b, l, h, dk), v (b, l, h, dv), g = log a and beta (b, l, h), S0 the state entering (b, h, dk, dv)
    or None for zeros -> o (b, l, h, dv) and the state leaving (fp32). Per chunk, the
    writes U solve (I + A) U = beta V - beta Gamma K S_0 (A strictly lower); a loop carries S_0.
    """
    out_dtype = q.dtype
    q, k, v, g, beta = (t.float() for t in (q, k, v, g, beta))
    b, l, nh, dk = k.shape
    dv = v.shape[-1]
    Q = max(1, min(chunk, l))
    c, (q, k, v, g, beta) = _chunks(Q, l, q, k, v, g, beta)  # (b, h, c, Q, ...)
    cum = torch.cumsum(g, dim=-1)
    tril = torch.ones(Q, Q, dtype=torch.bool, device=q.device).tril()
    strict = causal_mask_exp(cum[..., :, None], cum[..., None, :], tril.tril(-1))
    A = beta[..., None] * (k @ k.transpose(-1, -2)) * strict
    rhs = torch.cat((beta[..., None] * v, (beta * cum.exp())[..., None] * k), dim=-1)
    eye = torch.eye(Q, device=q.device)
    U_v, W = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True).split([dv, dk], -1)
    scores = (q @ k.transpose(-1, -2)) * causal_mask_exp(cum[..., :, None], cum[..., None, :], tril)
    q_in, k_out = q * cum.exp()[..., None], k * (cum[..., -1:] - cum).exp()[..., None]
    S = q.new_zeros(b, nh, dk, dv) if S0 is None else S0.float()
    outs = []
    for i in range(c):
        U = U_v[:, :, i] - W[:, :, i] @ S
        outs.append(q_in[:, :, i] @ S + scores[:, :, i] @ U)
        S = cum[:, :, i, -1, None, None].exp() * S + k_out[:, :, i].transpose(-1, -2) @ U
    o = torch.stack(outs, dim=2).transpose(1, 2).transpose(2, 3).reshape(b, c * Q, nh, dv)
    return (o[:, :l] * scale).to(out_dtype), S


def gla_scan(
    q: Tensor, k: Tensor, v: Tensor, gk: Tensor, scale: float, chunk: int, S0: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Chunked GLA: S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t.

    q, k, gk (b, l, h, dk), v (b, l, h, dv), S0 the state entering (b, h, dk, dv) or None for zeros
    -> o (b, l, h, dv) and the state leaving (fp32); an explicit (Q, Q, dk) decay inside a chunk.
    """
    out_dtype = q.dtype
    q, k, v, gk = (t.float() for t in (q, k, v, gk))
    b, l, nh, dk = k.shape
    dv = v.shape[-1]
    Q = max(1, min(chunk, l))
    c, (q, k, v, gk) = _chunks(Q, l, q, k, v, gk)  # (b, h, c, Q, d)
    cum = torch.cumsum(gk, dim=-2)
    tril = torch.ones(Q, Q, dtype=torch.bool, device=q.device).tril()[:, :, None]
    decay = causal_mask_exp(cum[..., :, None, :], cum[..., None, :, :], tril)  # (b, h, c, Q, Q, dk)
    o = torch.einsum("bhcti,bhcsi,bhctsi->bhcts", q, k, decay) @ v
    states = (k * (cum[..., -1:, :] - cum).exp()).transpose(-1, -2) @ v  # (b, h, c, dk, dv)
    run = q.new_zeros(b, nh, dk, dv) if S0 is None else S0.float()
    entering = []
    for i in range(c):
        entering.append(run)
        run = cum[:, :, i, -1, :, None].exp() * run + states[:, :, i]
    o = o + (q * cum.exp()) @ torch.stack(entering, dim=2)
    o = o.transpose(1, 2).transpose(2, 3).reshape(b, c * Q, nh, dv)
    return (o[:, :l] * scale).to(out_dtype), run


class AiraGatedDeltaNet(nn.Module):
    def __init__(self, config: AiraConfig):
        super().__init__()
        self.config = config
        D, H = config.d_model, config.n_heads
        self.n_heads, self.head_dim = H, D // H
        self.in_proj = nn.Linear(D, 4 * D + 2 * H, bias=False)
        self.conv = nn.Conv1d(3 * D, 3 * D, config.ssm_conv, groups=3 * D, padding=config.ssm_conv - 1, bias=True)
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.A_log = nn.Parameter(torch.zeros(H))
        self.norm_weight = nn.Parameter(torch.ones(self.head_dim))
        self.out_proj = nn.Linear(D, D, bias=False)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        _reset_decay(self.dt_bias, self.A_log, dt_min, dt_max)
        self.norm_weight.fill_(1.0)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        cfg, H, h = self.config, self.n_heads, self.head_dim
        b, l, D = x.shape
        qkv, gate, a, beta = self.in_proj(x).split([3 * D, D, H, H], dim=-1)
        qkv = F.silu(causal_conv(self.conv, qkv, cache))
        q, k, v = (t.reshape(b, l, H, h) for t in qkv.split(D, dim=-1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        g = -torch.exp(self.A_log.float()) * F.softplus(a.float() + self.dt_bias.float())
        S0 = None if cache is None else cache.get("state")
        o, S = gated_delta_scan(q, k, v, g, torch.sigmoid(beta.float()), h**-0.5, cfg.ssm_chunk, S0)
        if cache is not None:
            cache["state"] = S
        o = o.float()
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * self.norm_weight.float()
        return self.out_proj(o.reshape(b, l, D).to(x.dtype) * F.silu(gate))


class AiraGLA(nn.Module):
    CHUNK, GATE_RANK, GATE_NORMALIZER = 16, 16, 16.0  # as aira's gla.py

    def __init__(self, config: AiraConfig):
        super().__init__()
        self.config = config
        D, H = config.d_model, config.n_heads
        self.n_heads, self.key_dim = H, D // 2
        self.in_proj = nn.Linear(D, 2 * self.key_dim + 2 * D, bias=False)
        self.gk_down = nn.Linear(D, self.GATE_RANK, bias=False)
        self.gk_up = nn.Linear(self.GATE_RANK, self.key_dim, bias=True)
        self.norm_weight = nn.Parameter(torch.ones(D // H))
        self.out_proj = nn.Linear(D, D, bias=False)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        H, Kd = self.n_heads, self.key_dim
        b, l, D = x.shape
        q, k, v, gate = self.in_proj(x).split([Kd, Kd, D, D], dim=-1)
        gk = F.logsigmoid(self.gk_up(self.gk_down(x)).float()) / self.GATE_NORMALIZER
        q, k, gk = (t.reshape(b, l, H, -1) for t in (q, k, gk))
        S0 = None if cache is None else cache.get("state")
        o, S = gla_scan(q, k, v.reshape(b, l, H, -1), gk, (Kd // H) ** -0.5, self.CHUNK, S0)
        if cache is not None:
            cache["state"] = S
        o = o.float()
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.config.norm_eps) * self.norm_weight.float()
        return self.out_proj(o.reshape(b, l, D).to(x.dtype) * F.silu(gate))


class AiraPromoted(nn.Module):
    """A promoted mechanism, adapted as aira adapts it (aira/models/mechanism.py): built with causal=True at the
    model's width, heads and max_seq_len, called with an all-False padding mask; its parameters sit under
    `inner`, as in aira. It has no inference-cache contract, so with a cache it keeps its inputs so far and
    reruns on the whole prefix, returning the new positions' outputs (equal to a pass over the whole
    sequence because the mechanism is causal, which aira checks before it is searched or exported)."""

    def __init__(self, config: AiraConfig, code: str):
        super().__init__()
        entry = config.promoted[code]
        mechanism = MECHANISMS.get(code)
        if mechanism is None:
            raise ValueError(f"layer code {code}: config.json names a promoted mechanism that aira_mechanisms.py "
                             f"does not import")
        digest = hashlib.sha256(Path(inspect.getfile(mechanism)).read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise ValueError(f"{entry['file']}: its sha256 {digest[:12]}... is not config.json's "
                             f"{entry['sha256'][:12]}...: the file was changed after export")
        self.inner = mechanism(d_model=config.d_model, n_heads=config.n_heads, max_len=config.max_seq_len,
                               causal=True)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        new = x.shape[1]
        if cache is not None:  # the inputs of every position so far, (B, past + L, D)
            if "x" in cache:
                x = torch.cat((cache["x"], x), dim=1)
            cache["x"] = x
        y = self.inner(x, torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device))
        return y[:, x.shape[1] - new :]


class AiraBlock(nn.Module):
    def __init__(self, config: AiraConfig, code: str):
        super().__init__()
        self.norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        if code == "A":
            self.mixer = AiraAttention(config)
        elif code == "W":
            self.mixer = AiraAttention(config, window=config.window)
        elif code == "M":
            self.mixer = AiraMLP(config)
        elif code == "S":
            self.mixer = AiraMamba2(config)
        elif code == "D":
            self.mixer = AiraGatedDeltaNet(config)
        elif code == "G":
            self.mixer = AiraGLA(config)
        elif code == "E":
            self.mixer = AiraMoE(config)
        elif code in config.promoted:
            self.mixer = AiraPromoted(config, code)
        else:
            raise ValueError(f"unknown layer code {code!r}")

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        return x + self.mixer(self.norm(x), cache)


class AiraForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = AiraConfig
    base_model_prefix = "aira"
    _no_split_modules: ClassVar[list[str]] = ["AiraBlock"]
    main_input_name = "input_ids"

    def __init__(self, config: AiraConfig):
        super().__init__(config)
        if not config.causal:
            raise ValueError("an aira causal LM needs causal=True")
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(AiraBlock(config, code) for code in config.pattern)
        self.norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        # A tied head owns no weight of its own (so the saved state has no duplicate tensor).
        self.lm_head = (
            None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.RMSNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, nn.Conv1d):
            module.reset_parameters()
        elif isinstance(module, (AiraMamba2, AiraGatedDeltaNet)):
            module.reset_ssm_parameters()
        elif isinstance(module, AiraGLA):
            module.norm_weight.data.fill_(1.0)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: AiraCache | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        """input_ids continue what `past_key_values` (an AiraCache, "cache" in transformers 5) has seen;
        use_cache=True starts one when none is given and returns it."""
        if attention_mask is not None and bool((attention_mask.diff(dim=-1) > 0).any()):
            raise ValueError("aira models need right-padded (or unpadded) batches; got left padding")
        cache = kwargs.pop("cache", None) if past_key_values is None else past_key_values
        if not isinstance(cache, AiraCache):  # None, or a transformers Cache this model does not use
            cache = AiraCache(len(self.blocks)) if use_cache else None
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        hidden = [x] if output_hidden_states else None
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache.layers[i])
            if hidden is not None:
                hidden.append(x)
        if cache is not None:
            cache.seen += x.shape[1]
        x = self.norm(x)
        logits = F.linear(x, self.embed.weight) if self.lm_head is None else self.lm_head(x)
        loss = None
        if labels is not None:  # Hugging Face convention: labels are the inputs, shifted here
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
            )
        if return_dict is False:
            out = (logits,) if hidden is None else (logits, tuple(hidden))
            out = out if cache is None else (*out, cache)
            return ((loss,) + out) if loss is not None else out
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=tuple(hidden) if hidden is not None else None,
            **({} if cache is None else {CACHE_FIELD: cache}),
        )

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # transformers 5: the model makes its own AiraCache (as Mamba does)

    def _reorder_cache(self, cache, beam_idx: torch.LongTensor):
        if hasattr(cache, "reorder_cache"):  # beam search keeps the states of the surviving beams
            cache.reorder_cache(beam_idx)
        return cache

    def prepare_inputs_for_generation(
        self, input_ids: torch.LongTensor, past_key_values=None, attention_mask=None, use_cache=None, **kwargs
    ) -> dict:
        # transformers 5 names the cache "cache", 4.x "past_key_values"; with one, feed only the new tokens
        cache = kwargs.get("cache", past_key_values)
        cache = cache if isinstance(cache, AiraCache) else None
        if cache is not None:
            input_ids = input_ids[:, cache.seen :]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "past_key_values": cache,
                "use_cache": use_cache}
