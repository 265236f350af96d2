"""A: multi-head attention with grouped-query heads and rotary embeddings (Llama style, no biases).

Papers: "Attention Is All You Need" (Vaswani et al. 2017); grouped-query attention, GQA (Ainslie et
al. 2023); rotary position embeddings, RoPE (Su et al. 2021). Computed by
`torch.nn.functional.scaled_dot_product_attention` so GPUs use flash kernels; the kv heads are shared
through SDPA's `enable_gqa` rather than copied wherever the chosen kernel supports it (see `sdpa`).

With D = d_model, H = n_heads, K = n_kv_heads, h = head_dim = D / H:
  params = D (H + 2K) h  (fused q, k, v projection)  +  H h D  (out_proj)
FLOP convention (same for every primitive): a multiply-accumulate is 2 FLOPs; only matmuls count
(norms, softmax, RoPE are O(D) per token and ignored); training = 3 x forward (the backward pass does
two matmuls per forward matmul). Per token, forward:
  2 [D (H + 2K) h + H h D]            projections
  + 4 H h L_att                       scores q.k and the weighted sum of values
where L_att is the average number of keys a query attends to: (L + 1) / 2 when causal (query t sees
t + 1 keys), L when bidirectional. `flops_per_token(cfg, L, full_square=True)` uses L_att = L for any
mask, which is what a dense FLOP counter sees.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.registry import register


@functools.lru_cache(maxsize=32)
def rope_tables(seq_len: int, head_dim: int, theta: float, device: torch.device, dtype: torch.dtype):
    """cos, sin of shape (L, 1, h/2), cached per length/device/dtype (shared by every layer)."""
    # Built outside inference mode so a table first made during evaluation can still be used in training.
    with torch.inference_mode(False), torch.no_grad():
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
        cos = angles.cos().to(device=device, dtype=dtype)[:, None, :]
        sin = angles.sin().to(device=device, dtype=dtype)[:, None, :]
    return cos, sin


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, L, heads, h) by position; pairs are (i, i + h/2), the "rotate half" layout."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def attended_length(seq_len: int, causal: bool, window: int | None = None) -> float:
    """Average number of keys per query: causal (L + 1) / 2, bidirectional L, capped by a window."""
    L = seq_len
    if window is None or window >= L:
        return (L + 1) / 2 if causal else float(L)
    w = window
    if causal:  # query t sees min(t + 1, w) keys
        return (w * (w + 1) / 2 + (L - w) * w) / L
    # bidirectional band |i - j| < w: all pairs minus those at distance >= w on either side
    far = (L - w) * (L - w + 1)
    return (L * L - far) / L


def _cuda_flash_takes(q: Tensor, mask: Tensor | None) -> bool:
    return mask is None and q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] <= 256


def sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    mask: Tensor | None = None,
    expand_kv: bool | None = None,
) -> Tensor:
    """SDPA over (B, H, L, h) queries and (B, K, L, h) keys/values, H a multiple of K.

    Grouped kv heads go to SDPA as they are (`enable_gqa`, no copy), except on CUDA when the flash
    kernel cannot run (a mask, fp32, head_dim > 256): there only the math kernel takes grouped heads,
    so the kv heads are repeated to let the memory-efficient kernel run. `expand_kv` forces either way.
    """
    rep = q.shape[1] // k.shape[1]
    if expand_kv is None:
        expand_kv = rep > 1 and q.is_cuda and not _cuda_flash_takes(q, mask)
    if expand_kv and rep > 1:
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=causal and mask is None, enable_gqa=k.shape[1] != q.shape[1]
    )


@register("A", "attn")
class Attention(nn.Module):
    """Grouped-query attention with RoPE; `out_proj` is the final projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads or cfg.n_heads % cfg.n_kv_heads:
            raise UsageError(
                f"attention needs d_model % n_heads == 0 and n_heads % n_kv_heads == 0, got d_model "
                f"{cfg.d_model}, n_heads {cfg.n_heads}, n_kv_heads {cfg.n_kv_heads}"
            )
        if cfg.head_dim % 2:
            raise UsageError(f"rotary embeddings need an even head_dim, got {cfg.head_dim}")
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.rope_theta, self.causal = cfg.rope_theta, cfg.causal
        h = self.head_dim
        self.qkv_proj = nn.Linear(cfg.d_model, (self.n_heads + 2 * self.n_kv_heads) * h, bias=False)
        self.out_proj = nn.Linear(self.n_heads * h, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        H, K, h = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = self.qkv_proj(x).split([H * h, K * h, K * h], dim=-1)
        # Under torch.compile the tables are traced into the graph instead (dynamo ignores lru_cache).
        tables = rope_tables.__wrapped__ if torch.compiler.is_compiling() else rope_tables
        cos, sin = tables(L, h, self.rope_theta, x.device, x.dtype)
        q = apply_rope(q.view(B, L, H, h), cos, sin).transpose(1, 2)  # (B, H, L, h)
        k = apply_rope(k.view(B, L, K, h), cos, sin).transpose(1, 2)  # (B, K, L, h)
        v = v.view(B, L, K, h).transpose(1, 2)
        y = self._attend(q, k, v)  # (B, H, L, h)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, H * h))

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return sdpa(q, k, v, causal=self.causal)

    @classmethod
    def num_params(cls, cfg: ModelConfig) -> int:
        h = cfg.head_dim
        return cfg.d_model * (cfg.n_heads + 2 * cfg.n_kv_heads) * h + cfg.n_heads * h * cfg.d_model

    @classmethod
    def _attended(cls, cfg: ModelConfig, seq_len: int) -> float:
        return attended_length(seq_len, cfg.causal)

    @classmethod
    def flops_per_token(cls, cfg: ModelConfig, seq_len: int, full_square: bool = False) -> float:
        L_att = float(seq_len) if full_square else cls._attended(cfg, seq_len)
        forward = 2 * cls.num_params(cfg) + 4 * cfg.n_heads * cfg.head_dim * L_att
        return 3.0 * forward
