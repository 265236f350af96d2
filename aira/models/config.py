"""Model configuration shared by every primitive.

One dataclass carries every width a primitive may need, so a candidate architecture is fully
defined by its layer pattern plus a named preset (see presets.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    vocab_size: int
    max_seq_len: int
    rope_theta: float = 10_000.0
    window: int = 64  # sliding-window attention (W): tokens visible to each query, itself included
    # Mamba-2 (S): d_inner = ssm_expand * d_model, split into heads of ssm_head_dim
    ssm_state: int = 64
    ssm_expand: int = 2
    ssm_head_dim: int = 64
    ssm_conv: int = 4
    ssm_chunk: int = 64
    ssm_groups: int = 1  # ssm_chunk is also the chunk of Gated DeltaNet's (D) chunked scan
    # Mixture-of-experts SwiGLU (E): experts, experts per token, weight of its load-balancing loss.
    # Left out of the repr: a preset's repr is part of the fingerprint of measured proxies and of cached
    # results (aira.train.cache.resolved_settings), which these later fields must not invalidate. They
    # matter only to patterns with E; a change of their defaults must bump the evaluator version.
    moe_experts: int = field(default=8, repr=False)
    moe_top_k: int = field(default=2, repr=False)
    moe_aux_coef: float = field(default=0.01, repr=False)
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    causal: bool = True
    init_std: float = 0.02

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def with_(self, **changes) -> ModelConfig:
        return replace(self, **changes)
