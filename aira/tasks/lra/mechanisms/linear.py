"""Linear attention with the elu(x) + 1 feature map (Katharopoulos et al. 2020). O(L d^2):
out_i = phi(q_i) . sum_j phi(k_j) v_j^T / (phi(q_i) . sum_j phi(k_j)), padded keys left out.
kwargs: causal (default False; True: the sums run over keys j <= i only, as prefix sums)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, eps=1e-6, causal=False, **kwargs):
        super().__init__()
        self.n_heads, self.eps, self.causal = n_heads, eps, bool(causal)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        keep = (~key_padding_mask)[:, None, :, None].to(x.dtype)  # (B, 1, L, 1)
        q, k = F.elu(q) + 1, (F.elu(k) + 1) * keep
        v = v * keep
        if self.causal:  # prefix sums over keys: (B, H, L, dh, dh) states, fine at Compose's proxy lengths
            kv = torch.cumsum(k[..., :, None] * v[..., None, :], dim=2)
            norm = (q * torch.cumsum(k, dim=2)).sum(-1, keepdim=True)   # (B, H, L, 1)
            y = (q[..., None, :] @ kv).squeeze(-2) / (norm + self.eps)
            return self.out(y.transpose(1, 2).reshape(B, L, D))
        kv = k.transpose(-1, -2) @ v                               # (B, H, dh, dh)
        norm = q @ k.sum(dim=2, keepdim=True).transpose(-1, -2)    # (B, H, L, 1)
        y = (q @ kv) / (norm + self.eps)
        return self.out(y.transpose(1, 2).reshape(B, L, D))
