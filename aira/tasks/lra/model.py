"""The frozen LRA encoder classifier, around an agent-written `Attention` module.

The agent edits one file, `attention.py`, defining

    class Attention(nn.Module):
        def __init__(self, d_model, n_heads, max_len, **kwargs): ...
        def forward(self, x, key_padding_mask):  # (B, L, D), (B, L) bool, True = pad -> (B, L, D)

bidirectional (every position may see every other non-pad position). Everything else is fixed here:
token embedding + learned positional embedding, N pre-norm residual blocks [Attention, MLP], a final
LayerNorm, masked mean pooling over non-pad positions and a 2-layer classifier. Retrieval is two-tower:
one shared encoder embeds both documents to u and v, and the head reads [u, v, u * v, u - v]
(LRA's matching setup).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from aira.data.lra.core import PAD
from aira.errors import UsageError


class ContractError(UsageError):
    """An attention.py broke the contract; the message is one line for the debug operator."""


_loaded = 0


def load_attention(file: str | Path) -> type[nn.Module]:
    """Import `file` under a fresh module name and return its `Attention` class."""
    global _loaded
    path = Path(file)
    if not path.is_file():
        raise ContractError(f"attention file {path} does not exist")
    _loaded += 1
    name = f"aira_lra_attention_{_loaded}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the agent's code: any error is a contract failure, reported in one line
        del sys.modules[name]
        where = ""
        if isinstance(e, SyntaxError):
            where = f" (line {e.lineno})"
        raise ContractError(f"importing {path.name} failed{where}: {type(e).__name__}: {e}") from e
    cls = getattr(module, "Attention", None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ContractError(f"{path.name} must define `class Attention(nn.Module)`; found "
                            f"{type(cls).__name__ if cls is not None else 'nothing'} named Attention")
    return cls


class Block(nn.Module):
    def __init__(self, attention: nn.Module, d_model: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = attention
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.drop(self.mlp(self.norm2(x)))


class Encoder(nn.Module):
    """Token ids (B, L) -> pooled features (B, D)."""

    def __init__(self, attention_cls: type[nn.Module], *, vocab_size: int, max_len: int, d_model: int,
                 n_layers: int, n_heads: int, mlp_dim: int, dropout: float = 0.0,
                 attention_kwargs: dict | None = None):
        super().__init__()
        kw = dict(attention_kwargs or {})
        self.tok = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(attention_cls(d_model=d_model, n_heads=n_heads, max_len=max_len, **kw), d_model,
                  mlp_dim, dropout)
            for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.pos.weight, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids == PAD                                        # (B, L), True = pad
        # An empty document would leave a query with no key at all (NaN in softmax): let such a row
        # see its first (pad) position instead.
        mask[:, 0] &= ~mask.all(dim=1)
        pos = torch.arange(ids.shape[1], device=ids.device)
        h = self.drop(self.tok(ids) + self.pos(pos)[None])
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        keep = (~mask).unsqueeze(-1).to(h.dtype)
        return (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # masked mean pooling


class LraClassifier(nn.Module):
    """Encoder + classifier head; `pair=True` is the two-tower retrieval model."""

    def __init__(self, attention_cls: type[nn.Module], *, n_classes: int, pair: bool = False, **enc):
        super().__init__()
        self.pair = pair
        self.encoder = Encoder(attention_cls, **enc)
        d = enc["d_model"]
        width = 4 * d if pair else d
        self.head = nn.Sequential(nn.Linear(width, d), nn.GELU(), nn.Linear(d, n_classes))

    def forward(self, x: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        if not self.pair:
            return self.head(self.encoder(x))
        if x2 is None or x2.shape != x.shape:
            raise ValueError("the two-tower model needs both documents, padded to the same shape")
        u, v = self.encoder(torch.cat([x, x2])).chunk(2)  # one pass through the shared tower
        return self.head(torch.cat([u, v, u * v, u - v], dim=-1))


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y)
