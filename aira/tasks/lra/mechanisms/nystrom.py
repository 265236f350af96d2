"""Nystrom-style landmark attention (Xiong et al. 2021, Nystromformer):
softmax(Q Kl^T) pinv(softmax(Ql Kl^T)) softmax(Ql K^T) V with m landmarks Ql, Kl = masked segment means
of the queries and keys; the pseudo-inverse by Newton-Schulz iterations. O(L m).
kwargs: n_landmarks (default 16), pinv_iters (default 6)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _pinv(a, iters):
    # Newton-Schulz iteration for the Moore-Penrose inverse, started as in the Nystromformer paper.
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    z = a.transpose(-1, -2) / (a.abs().sum(-1).amax(-1) * a.abs().sum(-2).amax(-1))[..., None, None]
    for _ in range(iters):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, n_landmarks=16, pinv_iters=6, **kwargs):
        super().__init__()
        self.n_heads, self.m, self.iters = n_heads, int(n_landmarks), int(pinv_iters)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask):
        B, L, D = x.shape
        H, dh = self.n_heads, D // self.n_heads
        m = min(self.m, L)
        q, k, v = self.qkv(x).view(B, L, 3, H, dh).permute(2, 0, 3, 1, 4)
        q = q * dh ** -0.5
        keep = (~key_padding_mask)[:, None, :, None].to(x.dtype)   # (B, 1, L, 1)
        seg = -(-L // m)
        extra = seg * m - L

        def landmarks(t):  # mean of the non-pad positions of each of m segments
            t = F.pad(t * keep, (0, 0, 0, extra)).unflatten(2, (m, seg)).sum(3)
            n = F.pad(keep, (0, 0, 0, extra)).unflatten(2, (m, seg)).sum(3)
            return t / n.clamp_min(1.0)

        ql, kl = landmarks(q), landmarks(k)                         # (B, H, m, dh)
        key_keep = keep.transpose(-1, -2)                          # (B, 1, 1, L)
        key_bias = torch.zeros_like(key_keep).masked_fill(key_keep == 0, float("-inf"))
        k1 = torch.softmax(q @ kl.transpose(-1, -2), dim=-1)        # (B, H, L, m)
        k2 = torch.softmax(ql @ kl.transpose(-1, -2), dim=-1)       # (B, H, m, m)
        k3 = torch.softmax(ql @ k.transpose(-1, -2) + key_bias, dim=-1)  # (B, H, m, L)
        y = k1 @ (_pinv(k2, self.iters) @ (k3 @ (v * keep)))
        return self.out(y.transpose(1, 2).reshape(B, L, D))
