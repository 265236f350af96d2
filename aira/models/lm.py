"""HybridLM: a language model assembled from a layer pattern.

token embedding -> one pre-norm residual Block per pattern code -> RMSNorm -> LM head (tied to the
embedding when cfg.tie_embeddings). Initialisation follows GPT-2 / nanoGPT: every nn.Linear weight and
the embedding ~ N(0, init_std); every `out_proj` (the last projection of a mixer, the one that writes
into the residual stream) ~ N(0, init_std / sqrt(2 n_layers)) so the residual variance stays bounded with
depth. Other parameters (norms, Mamba's dt/A/D, conv) keep the init their module chose.

The returned loss is the mean cross-entropy plus, in training mode, the auxiliary losses the layers
return (a mixture of experts' load balancing, weighted by cfg.moe_aux_coef; see block.py). In eval
mode it is the cross-entropy alone, so evaluation scores never include it.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from aira.models import registry
from aira.models.block import Block
from aira.models.config import ModelConfig
from aira.models.pattern import format_pattern, parse_pattern


class HybridLM(nn.Module):
    def __init__(self, cfg: ModelConfig, pattern: str | list[str]):
        super().__init__()
        self.cfg = cfg
        self.codes = parse_pattern(pattern)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, registry.get(c).cls) for c in self.codes)
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self._init_weights()

    @property
    def pattern(self) -> str:
        return format_pattern(self.codes)

    def _init_weights(self) -> None:
        std = self.cfg.init_std
        out_std = std / math.sqrt(2 * len(self.codes))
        nn.init.normal_(self.embed.weight, std=std)
        if not self.cfg.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, std=std)
        for block in self.blocks:
            for name, module in block.mixer.named_modules():
                if isinstance(module, nn.Linear):
                    is_out = name == "out_proj" or name.endswith(".out_proj")
                    nn.init.normal_(module.weight, std=out_std if is_out else std)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, L) token ids -> logits (B, L, V); loss is mean cross-entropy, ignoring targets == -100
        (plus the layers' auxiliary losses in training mode, see the module docstring)."""
        x = self.embed(idx)
        aux = None
        for block in self.blocks:
            x, layer_aux = block(x)
            if layer_aux is not None:
                aux = layer_aux if aux is None else aux + layer_aux
        logits = self.lm_head(self.norm(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
            if aux is not None and self.training:
                loss = loss + aux
        return logits, loss

    def num_params(self, non_embedding: bool = False) -> int:
        """Unique parameters (a tied head counts once); non_embedding drops the embedding and an untied head."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.embed.weight.numel()
            if not self.cfg.tie_embeddings:
                total -= self.lm_head.weight.numel()
        return total
