"""Local (sliding-window) attention: each position attends to keys within `window` positions on
either side. Computed in blocks of `window` queries against their own and both neighbouring blocks,
so memory is O(L * window). kwargs: window (default 32), causal (default False; True: only the
`window` keys before each query and itself)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, window=32, causal=False, **kwargs):
        super().__init__()
        self.n_heads, self.w, self.causal = n_heads, int(window), bool(causal)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask):
        B, L, D = x.shape
        H, w = self.n_heads, self.w
        nb = -(-L // w)
        extra = nb * w - L
        q, k, v = self.qkv(x).view(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # (B, H, L, dh)
        pad = F.pad(key_padding_mask, (0, extra), value=True)                  # (B, nb*w)
        q, k, v = (F.pad(t, (0, 0, 0, extra)) for t in (q, k, v))

        def neighbours(t, fill):  # (..., nb*w, c) -> (..., nb, 3w, c): previous, own, next block
            t = t.unflatten(-2, (nb, w))
            before = F.pad(t, (0, 0, 0, 0, 1, 0), value=fill)[..., :-1, :, :]
            after = F.pad(t, (0, 0, 0, 0, 0, 1), value=fill)[..., 1:, :, :]
            return torch.cat([before, t, after], dim=-2)

        kb, vb = neighbours(k, 0.0), neighbours(v, 0.0)
        padb = neighbours(pad[:, None, :, None].float(), 1.0)[:, 0, :, :, 0].bool()  # (B, nb, 3w)
        qi = torch.arange(w, device=x.device)[:, None] + w        # query offset inside the 3w window
        kj = torch.arange(3 * w, device=x.device)[None, :]
        band = (qi - kj).abs() <= w                              # (w, 3w)
        if self.causal:
            band = band & (kj <= qi)
        allowed = band[None, None] & ~padb[:, :, None, :]        # (B, nb, w, 3w)
        scores = q.unflatten(2, (nb, w)) @ kb.transpose(-1, -2) / (D // H) ** 0.5  # (B, H, nb, w, 3w)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        attn = torch.softmax(scores, dim=-1).nan_to_num(0.0)     # a query with no visible key gets 0
        y = (attn @ vb).flatten(2, 3)[:, :, :L]                   # (B, H, L, dh)
        return self.out(y.transpose(1, 2).reshape(B, L, D))
