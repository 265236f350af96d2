"""Analytic parameter and FLOP counts of a pattern, without building the model.

Parameters: sum of each layer's primitive `num_params(cfg)` + one RMSNorm (d_model) per layer + the
final RMSNorm + the token embedding (V D) + an untied LM head (V D). Non-embedding drops the last two.
FLOPs: training FLOPs per token (3 x forward, a multiply-accumulate = 2 FLOPs, matmuls only), sum of
each layer's `flops_per_token(cfg, seq_len)` + the LM head 3 x 2 D V. The embedding lookup is free.
"""

from __future__ import annotations

from aira.models import registry
from aira.models.config import ModelConfig
from aira.models.pattern import parse_pattern


def count_params(pattern: str | list[str], cfg: ModelConfig, non_embedding: bool = False) -> int:
    codes = parse_pattern(pattern)
    D, V = cfg.d_model, cfg.vocab_size
    layers = sum(registry.get(c).cls.num_params(cfg) + D for c in codes) + D
    if non_embedding:
        return layers
    return layers + V * D + (0 if cfg.tie_embeddings else V * D)


def flops_per_token(pattern: str | list[str], cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token at seq_len (default cfg.max_seq_len), LM head included."""
    codes = parse_pattern(pattern)
    L = cfg.max_seq_len if seq_len is None else seq_len
    layers = sum(registry.get(c).cls.flops_per_token(cfg, L) for c in codes)
    return layers + 3.0 * 2 * cfg.d_model * cfg.vocab_size
