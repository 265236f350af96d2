"""Performer-style attention (Choromanski et al. 2021, FAVOR+): softmax attention approximated with
positive orthogonal random features phi(x) = exp(w.x - |x|^2 / 2) / sqrt(m), linear in L.
The features are drawn once at construction (a buffer), so the module is deterministic.
kwargs: n_features m (default 64)."""

import torch
import torch.nn as nn


def _orthogonal_features(m, d, gen):
    blocks, rows = [], 0
    while rows < m:
        qmat, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
        blocks.append(qmat.T)
        rows += d
    w = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=gen).norm(dim=1, keepdim=True)  # chi-distributed row lengths
    return w * norms


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, n_features=64, seed=0, **kwargs):
        super().__init__()
        self.n_heads = n_heads
        dh = d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        gen = torch.Generator().manual_seed(int(seed))
        self.register_buffer("w", _orthogonal_features(int(n_features), dh, gen))

    def _phi(self, x, stabiliser):
        x = x * x.shape[-1] ** -0.25
        proj = x @ self.w.T                                         # (B, H, L, m)
        return torch.exp(proj - (x * x).sum(-1, keepdim=True) / 2 - stabiliser(proj)) / self.w.shape[0] ** 0.5

    def forward(self, x, key_padding_mask):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        keep = (~key_padding_mask)[:, None, :, None]
        # Queries: a per-row shift cancels in the normalisation. Keys: one shift per (batch, head),
        # taken over non-pad keys only, so padded values cannot leak in through it.
        qf = self._phi(q, lambda p: p.amax(-1, keepdim=True).detach())
        kf = self._phi(k, lambda p: p.masked_fill(~keep, float("-inf")).amax((-1, -2), keepdim=True)
                       .clamp_min(-1e4).detach())
        kf = kf * keep
        kv = kf.transpose(-1, -2) @ (v * keep)                      # (B, H, m, dh)
        norm = qf @ kf.sum(2, keepdim=True).transpose(-1, -2)       # (B, H, L, 1)
        y = (qf @ kv) / (norm + 1e-6)
        return self.out(y.transpose(1, 2).reshape(B, L, D))
