"""M: the SwiGLU feed-forward layer (Llama style, no biases).

Paper: "GLU Variants Improve Transformer" (Shazeer 2020). out = w2(silu(w1 x) * w3 x), with w1 the
gate, w3 the up projection and w2 (named `out_proj`) the down projection. Position-wise, so it is
trivially causal and cfg.causal does not apply.

With D = d_model, F = ffn_dim:  params = 3 D F;  training FLOPs per token = 3 x 2 x 3 D F = 18 D F
(a multiply-accumulate is 2 FLOPs, backward = 2 x forward; the elementwise gate is ignored).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from aira.models.config import ModelConfig
from aira.models.registry import register


@register("M", "mlp")
class SwiGLU(nn.Module):
    """SwiGLU MLP with hidden width cfg.ffn_dim."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.out_proj = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_proj(F.silu(self.w1(x)) * self.w3(x))

    @property
    def w2(self) -> nn.Linear:
        return self.out_proj

    @classmethod
    def num_params(cls, cfg: ModelConfig) -> int:
        return 3 * cfg.d_model * cfg.ffn_dim

    @classmethod
    def flops_per_token(cls, cfg: ModelConfig, seq_len: int) -> float:
        return 3.0 * 2 * cls.num_params(cfg)
