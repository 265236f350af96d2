"""Full softmax attention (Vaswani et al. 2017), bidirectional, padded keys masked. O(L^2).
kwargs: causal (default False: each query also sees later keys; True for a causal LM layer)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, causal=False, **kwargs):
        super().__init__()
        self.n_heads, self.causal = n_heads, bool(causal)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        allowed = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, L): True = may attend
        if self.causal:
            allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out(y.transpose(1, 2).reshape(B, L, D))
