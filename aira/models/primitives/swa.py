"""W: sliding-window attention, the A primitive with each query restricted to a local band.

Papers: Longformer (Beltagy et al. 2020) and Mistral 7B (Jiang et al. 2023) for causal windows; same
GQA + RoPE projections as `attention.py`. Causal: query t sees keys t - window + 1 .. t (itself and the
previous window - 1 tokens). Bidirectional (cfg.causal False): keys with |t - s| < window.
The band is a boolean mask given to SDPA, cached per (length, window, causal, device); when the window
covers the whole sequence the plain causal / full path runs instead (same result, faster kernels).

Parameters as for A: D (H + 2K) h + H h D. FLOPs per token as for A (see attention.py for the
convention) with L_att = the average number of keys inside the band, e.g. causal
(w (w + 1) / 2 + (L - w) w) / L for w < L.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.primitives.attention import Attention, attended_length, sdpa
from aira.models.registry import register


@functools.lru_cache(maxsize=16)
def band_mask(seq_len: int, window: int, causal: bool, device: torch.device) -> Tensor:
    """(L, L) boolean, True where query i may attend key j."""
    with torch.inference_mode(False), torch.no_grad():
        i = torch.arange(seq_len, device=device)[:, None]
        j = torch.arange(seq_len, device=device)[None, :]
        dist = i - j
        return (dist >= 0) & (dist < window) if causal else dist.abs() < window


@register("W", "swa")
class SlidingWindowAttention(Attention):
    """Attention over the last cfg.window tokens (itself included); `out_proj` is the final projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        if cfg.window < 1:
            raise UsageError(f"sliding-window attention needs window >= 1, got {cfg.window}")
        self.window = cfg.window

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        L = q.shape[-2]
        if self.window >= L:
            return super()._attend(q, k, v)
        make = band_mask.__wrapped__ if torch.compiler.is_compiling() else band_mask  # see Attention.forward
        mask = make(L, self.window, self.causal, q.device)
        return sdpa(q, k, v, causal=self.causal, mask=mask)

    @classmethod
    def _attended(cls, cfg: ModelConfig, seq_len: int) -> float:
        return attended_length(seq_len, cfg.causal, cfg.window)
