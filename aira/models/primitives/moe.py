"""`E`: a mixture-of-experts SwiGLU MLP with top-k routing and a load-balancing loss.

Papers: "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer" (Shazeer et
al. 2017) for top-k routing; Switch Transformers (Fedus, Zoph & Shazeer 2021, eq. 4-6) for the
load-balancing loss; the renormalised top-k gates are Mixtral's (Jiang et al. 2024).

Per token x: p = softmax(router x) over E experts; the k largest p_e are renormalised to sum to 1 and
    y = sum over the chosen e of gate_e * SwiGLU_e(x)          (each expert is aira's M at width F_e)
Load balancing over the N tokens of a call, with f_e the share of the N k assignments that went to
expert e and P_e the mean router probability of e:
    aux = E * sum_e f_e P_e       (1 when perfectly balanced; f carries no gradient, P does)
The layer's auxiliary loss is moe_aux_coef * aux (Switch's alpha = 0.01 by default); HybridLM adds it to
the training loss (see aira/models/block.py).

Widths: E = moe_experts, k = moe_top_k, F_e = ffn_dim // k, so a token's expert work equals one M layer's
(k experts of a k-th of the width) while the parameters grow E / k times.

Two forms, same result:
- `moe_dense` (the reference, and the form under vmap, aira.train.batched, which cannot dispatch
  tokens to data-dependent groups): every expert runs on every token and the outputs are summed with
  the gate matrix, zero where an expert was not chosen; E / k times the dispatched work.
- the dispatched form (`MoESwiGLU.forward_aux`): each expert runs on its own tokens only.

Parameters: D E (router) + E 3 D F_e.
Training FLOPs per token = 3 x forward of the dispatched form: 2 D E + k 2 (3 D F_e).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.primitives.mlp import SwiGLU
from aira.models.registry import register


def route(logits: Tensor, top_k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Router logits (N, E) -> (gates (N, k), chosen experts (N, k), load-balancing loss aux)."""
    E = logits.shape[-1]
    probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    top, chosen = probs.topk(top_k, dim=-1)
    gates = top / top.sum(-1, keepdim=True)
    # one-hot by comparison (vmap-safe): (N, k, E) -> share of the N k assignments per expert
    share = (chosen[..., None] == torch.arange(E, device=logits.device)).float().mean((0, 1))
    aux = E * (share.detach() * probs.mean(0)).sum()
    return gates, chosen, aux


def moe_dense(x: Tensor, gates: Tensor, chosen: Tensor, experts: nn.ModuleList) -> Tensor:
    """Reference: every expert on every token (N, D), combined with the (N, E) gate matrix."""
    E = len(experts)
    weights = ((chosen[..., None] == torch.arange(E, device=x.device)) * gates[..., None]).sum(1)  # (N, E)
    outs = torch.stack([expert(x) for expert in experts], dim=1)  # (N, E, D)
    return (weights.to(x.dtype)[..., None] * outs).sum(1)


def _dims(cfg: ModelConfig) -> tuple[int, int, int]:
    """(E, k, F_e), validated."""
    E, k = cfg.moe_experts, cfg.moe_top_k
    if not 1 <= k <= E:
        raise UsageError(f"mixture of experts needs 1 <= moe_top_k <= moe_experts, got {k} and {E}")
    if cfg.ffn_dim < k:
        raise UsageError(f"mixture of experts needs ffn_dim >= moe_top_k, got {cfg.ffn_dim} and {k}")
    return E, k, cfg.ffn_dim // k


@register("E", "moe")
class MoESwiGLU(nn.Module):
    """Top-k mixture of SwiGLU experts; `forward_aux` also returns the weighted load-balancing loss."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        E, self.top_k, F_e = _dims(cfg)
        self.aux_coef = cfg.moe_aux_coef
        self.router = nn.Linear(cfg.d_model, E, bias=False)
        self.experts = nn.ModuleList(SwiGLU(cfg.with_(ffn_dim=F_e)) for _ in range(E))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_aux(x)[0]

    def forward_aux(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L, D) -> (output (B, L, D), moe_aux_coef * load-balancing loss)."""
        flat = x.reshape(-1, x.shape[-1])
        gates, chosen, aux = route(self.router(flat), self.top_k)
        if torch._C._functorch.is_batchedtensor(flat):
            y = moe_dense(flat, gates, chosen, self.experts)
        else:
            y = torch.zeros_like(flat)
            for e, expert in enumerate(self.experts):
                token, slot = torch.nonzero(chosen == e, as_tuple=True)
                if token.numel():
                    w = gates[token, slot].to(flat.dtype)[:, None]
                    y = y.index_add(0, token, w * expert(flat[token]))
        return y.reshape(x.shape), self.aux_coef * aux

    @classmethod
    def num_params(cls, cfg: ModelConfig) -> int:
        E, _, F_e = _dims(cfg)
        return cfg.d_model * E + E * 3 * cfg.d_model * F_e

    @classmethod
    def flops_per_token(cls, cfg: ModelConfig, seq_len: int) -> float:
        E, k, F_e = _dims(cfg)
        return 3.0 * (2 * cfg.d_model * E + k * 2 * 3 * cfg.d_model * F_e)
