"""The generic pre-norm residual block: x + mixer(RMSNorm(x)), with the mixer class as a factory.

Every layer of a pattern is one such block (Composer's convention: attention and MLP are separate
sublayers, so Llama's "block" is two of ours). The norm adds d_model parameters per layer.

A mixer with an auxiliary training loss (the mixture of experts' load balancing) defines
`forward_aux(x) -> (y, aux)` beside its plain `forward`, aux already weighted; the block returns that aux
next to its output (None for other mixers) and HybridLM adds it to the loss. The loss is returned, never
stored on the module, so the models that aira.train.batched trains as one under vmap carry it too.
"""

from __future__ import annotations

from torch import Tensor, nn

from aira.models.config import ModelConfig


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, mixer_cls: type[nn.Module]):
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mixer = mixer_cls(cfg)
        self.has_aux = hasattr(mixer_cls, "forward_aux")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(output, the mixer's weighted auxiliary loss or None)."""
        if self.has_aux:
            y, aux = self.mixer.forward_aux(self.norm(x))
            return x + y, aux
        return x + self.mixer(self.norm(x)), None
