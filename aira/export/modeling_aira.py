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
Generation recomputes the whole prefix at every step (no KV / SSM cache); batches must be right-padded
(or unpadded): a causal model's real tokens never see right padding, while left padding would shift
positions and feed pad tokens into the Mamba state, so a left-padded attention mask is refused.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_aira import AiraConfig


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

    def forward(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        H, K, h = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = self.qkv_proj(x).split([H * h, K * h, K * h], dim=-1)
        cos, sin = rope_tables(L, h, self.theta, x.device, x.dtype)
        q = apply_rope(q.view(B, L, H, h), cos, sin).transpose(1, 2)
        k = apply_rope(k.view(B, L, K, h), cos, sin).transpose(1, 2)
        v = v.view(B, L, K, h).transpose(1, 2)
        if K != H:  # share each kv head with its group of query heads
            k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)
        if self.window is not None and self.window < L:
            pos = torch.arange(L, device=x.device)
            dist = pos[:, None] - pos[None, :]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=(dist >= 0) & (dist < self.window))
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, H * h))


class AiraMLP(nn.Module):
    def __init__(self, config: AiraConfig):
        super().__init__()
        self.w1 = nn.Linear(config.d_model, config.ffn_dim, bias=False)
        self.w3 = nn.Linear(config.d_model, config.ffn_dim, bias=False)
        self.out_proj = nn.Linear(config.ffn_dim, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_proj(F.silu(self.w1(x)) * self.w3(x))


def ssd_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:
    """Chunked SSD: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t, per head.

    x (b, l, h, p), dt (b, l, h), A (h,), B and C (b, l, g, n) -> y (b, l, h, p). Inside a chunk the
    output is a decay-masked quadratic form; a loop over chunks carries the state between them.
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
    run = x.new_zeros(b, nh, p, n)
    entering = []
    for k in range(c):
        entering.append(run)
        run = chunk_decay[:, k, :, None, None] * run + states[:, k]
    h_in = torch.stack(entering, dim=1)  # (b, c, h, p, n)
    y = y + torch.einsum("bcihn,bchpn->bcihp", C, h_in) * torch.exp(a_cum)[..., None]
    return y.reshape(b, c * Q, nh, p)[:, :l].to(out_dtype)


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
        # dt log-uniform in [dt_min, dt_max] (dt_bias holds its softplus inverse), A uniform in [1, 16].
        dt = torch.exp(torch.empty(self.n_heads).uniform_(math.log(dt_min), math.log(dt_max)))
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log.copy_(torch.log(torch.empty(self.n_heads).uniform_(1.0, 16.0)))
        self.D.fill_(1.0)
        self.norm_weight.fill_(1.0)

    def forward(self, u: Tensor) -> Tensor:
        cfg = self.config
        b, l, _ = u.shape
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv_dim, self.n_heads], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        xBC = F.silu(self.conv(xBC.transpose(1, 2))[..., :l].transpose(1, 2))
        x, B, C = torch.split(xBC, [self.d_inner, self.gN, self.gN], dim=-1)
        x = x.reshape(b, l, self.n_heads, cfg.ssm_head_dim)
        B = B.reshape(b, l, cfg.ssm_groups, cfg.ssm_state)
        C = C.reshape(b, l, cfg.ssm_groups, cfg.ssm_state)
        y = ssd_scan(x, dt, -torch.exp(self.A_log.float()), B, C, cfg.ssm_chunk)
        y = (y + self.D[:, None] * x).reshape(b, l, self.d_inner) * F.silu(z)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * self.norm_weight
        return self.out_proj(y)


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
        else:
            raise ValueError(f"unknown layer code {code!r}")

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mixer(self.norm(x))


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
        elif isinstance(module, AiraMamba2):
            module.reset_ssm_parameters()

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
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        if attention_mask is not None and bool((attention_mask.diff(dim=-1) > 0).any()):
            raise ValueError("aira models need right-padded (or unpadded) batches; got left padding")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        hidden = [x] if output_hidden_states else None
        for block in self.blocks:
            x = block(x)
            if hidden is not None:
                hidden.append(x)
        x = self.norm(x)
        logits = F.linear(x, self.embed.weight) if self.lm_head is None else self.lm_head(x)
        loss = None
        if labels is not None:  # Hugging Face convention: labels are the inputs, shifted here
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
            )
        if return_dict is False:
            out = (logits,) if hidden is None else (logits, tuple(hidden))
            return ((loss,) + out) if loss is not None else out
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, hidden_states=tuple(hidden) if hidden is not None else None
        )

    def prepare_inputs_for_generation(
        self, input_ids: torch.LongTensor, attention_mask=None, **kwargs
    ) -> dict:
        # No cache: every step runs the whole sequence so far.
        return {"input_ids": input_ids, "attention_mask": attention_mask}
