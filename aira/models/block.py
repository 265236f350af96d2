"""The generic pre-norm residual block: x + mixer(RMSNorm(x)), with the mixer class as a factory.

Every layer of a pattern is one such block (Composer's convention: attention and MLP are separate
sublayers, so Llama's "block" is two of ours). The norm adds d_model parameters per layer.
"""

from __future__ import annotations

from torch import Tensor, nn

from aira.models.config import ModelConfig


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, mixer_cls: type[nn.Module]):
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mixer = mixer_cls(cfg)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mixer(self.norm(x))
