"""Gated long-convolution mixer (after H3 / Hyena, Poli et al. 2023): a bidirectional depthwise
convolution with a learned kernel as long as the sequence (exponentially decaying), computed by FFT
in O(L log L), gated by a SiLU branch. Padded positions are zeroed before the convolution.
kwargs: decay_init (default 0.05: initial per-offset decay rate), causal (default False; True: the
kernel's negative offsets, later positions, are zeroed)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, decay_init=0.05, causal=False, **kwargs):
        super().__init__()
        self.max_len, self.causal = max_len, bool(causal)
        self.inp = nn.Linear(d_model, 2 * d_model)
        self.kernel = nn.Parameter(torch.randn(d_model, 2 * max_len - 1) * 0.02)  # offsets -(L-1)..L-1
        rates = torch.linspace(-3, 0, d_model).exp() * decay_init * 10              # per-channel decays
        self.log_rate = nn.Parameter(rates.log())
        self.skip = nn.Parameter(torch.ones(d_model))
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask):
        B, L, D = x.shape
        v, gate = self.inp(x).chunk(2, dim=-1)
        v = v.masked_fill(key_padding_mask[..., None], 0.0).transpose(1, 2)         # (B, D, L)
        offsets = torch.arange(-(L - 1), L, device=x.device).abs().to(x.dtype)
        centre = self.max_len - 1
        k = self.kernel[:, centre - (L - 1): centre + L] * torch.exp(-self.log_rate.exp()[:, None] * offsets)
        if self.causal:  # y[t] = sum_s k[t - s] v[s]: offsets t - s < 0 read later positions
            k = k * (torch.arange(-(L - 1), L, device=x.device) >= 0).to(k.dtype)
        n = 1 << (3 * L - 2).bit_length()
        y = torch.fft.irfft(torch.fft.rfft(v.float(), n=n) * torch.fft.rfft(k.float(), n=n), n=n)
        y = y[..., L - 1: 2 * L - 1].to(x.dtype) + v * self.skip[:, None]          # y[t] = sum_s k[t-s] v[s]
        return self.out(y.transpose(1, 2) * F.silu(gate))
