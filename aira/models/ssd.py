"""The SSD scan of Mamba-2 (Dao & Gu 2024, "Transformers are SSMs"), in plain PyTorch.

Per head, with a scalar decay A < 0, the state h (P x N) follows
    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_t^T,        y_t = h_t C_t
with x_t in R^P, B_t, C_t in R^N (shared by the heads of one group).

Shapes everywhere: x (b, l, h, p), dt (b, l, h), A (h,), B and C (b, l, g, n), states (b, h, p, n).

- `ssd_naive` is the recurrence, one step at a time: the reference.
- `ssd_chunked` is the chunked (block-decomposed) algorithm: split the sequence into chunks of Q
  steps; inside a chunk the output is a masked quadratic form (C B^T weighted by a decay mask built
  from segment sums of dt*A), every chunk summarises its inputs in one state, a short recurrence over
  chunks carries the states along, and each chunk reads its incoming state through C. Everything is
  batched matmuls; the only sequential part is over L/Q chunks, done as one (c+1) x (c+1) decay matrix
  applied to the chunk states, so there is no Python loop at all.
- `ssd` picks the fused `mamba_chunk_scan_combined` of `mamba_ssm` on CUDA when it is installed,
  else `ssd_chunked`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

try:  # optional fused Triton kernels; CPU users never have them
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined as _fused_scan
except Exception:  # noqa: BLE001 - any import failure (missing package, CUDA/Triton mismatch) means "no fast path"
    _fused_scan = None

HAS_FUSED = _fused_scan is not None


def ssd_naive(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Step-by-step recurrence (reference). Returns y (b, l, h, p) and the final state (b, h, p, n)."""
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    rep = h // g
    Bh = B.repeat_interleave(rep, dim=2)  # (b, l, h, n)
    Ch = C.repeat_interleave(rep, dim=2)
    state = x.new_zeros(b, h, p, n) if initial_state is None else initial_state.to(x.dtype)
    ys = []
    for t in range(l):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]  # (b, h, 1, 1)
        inp = (dt[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]  # (b, h, p, n)
        state = decay * state + inp
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = torch.stack(ys, dim=1) if ys else x.new_zeros(b, 0, h, p)
    return y, state


def _segsum_exp(a: Tensor) -> Tensor:
    """exp of segment sums: out[..., i, j] = exp(a[..., j+1] + ... + a[..., i]) for j <= i, else 0.

    Differences of one cumulative sum are exact enough here because each call spans one chunk (or
    the chunk count), and masking with -inf before exp keeps the upper triangle from overflowing.
    """
    T = a.shape[-1]
    cs = torch.cumsum(a, dim=-1)
    diff = cs[..., :, None] - cs[..., None, :]
    keep = torch.ones(T, T, dtype=torch.bool, device=a.device).tril()
    return torch.exp(diff.masked_fill(~keep, float("-inf")))


def ssd_chunked(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chunked SSD. Returns y (b, l, h, p) and the final state (b, h, p, n); equals `ssd_naive`.

    Lengths that are not a multiple of the chunk are zero-padded: dt = 0 there means decay 1 and no
    input, so the padding changes neither the outputs kept nor the final state. A sequence shorter
    than the chunk uses one chunk of its own length.
    """
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    if h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    rep = h // g
    Q = max(1, min(chunk_size, l))
    pad = (-l) % Q
    if pad:
        x, dt, B, C = (F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) for t in (x, dt, B, C))
    c = (l + pad) // Q

    # Heads split as (g, rep) so B and C broadcast over the heads of their group without copies.
    xs = x.reshape(b, c, Q, g, rep, p).permute(0, 1, 3, 4, 2, 5)  # (b, c, g, r, Q, p)
    a = (dt * A).reshape(b, c, Q, g, rep).permute(0, 1, 3, 4, 2)  # (b, c, g, r, Q) log-decays
    dts = dt.reshape(b, c, Q, g, rep).permute(0, 1, 3, 4, 2)
    Bs = B.reshape(b, c, Q, g, n).transpose(2, 3).unsqueeze(3)  # (b, c, g, 1, Q, n)
    Cs = C.reshape(b, c, Q, g, n).transpose(2, 3).unsqueeze(3)
    a_cum = torch.cumsum(a, dim=-1)
    a_tot = a_cum[..., -1]  # (b, c, g, r): log-decay across the whole chunk

    # 1) inside each chunk: y = (C B^T * decay mask) (dt x)
    xdt = xs * dts[..., None]
    scores = (Cs @ Bs.transpose(-1, -2)) * _segsum_exp(a)  # (b, c, g, r, Q, Q)
    y = scores @ xdt

    # 2) the state each chunk leaves behind, from its own inputs only: sum_s decay(s->end) dt_s x_s B_s^T
    to_end = torch.exp(a_tot[..., None] - a_cum)  # (b, c, g, r, Q)
    chunk_states = (xdt * to_end[..., None]).transpose(-1, -2) @ Bs  # (b, c, g, r, p, n)

    # 3) carry states across chunks: entering[k] = sum_{j<=k} decay(j->k) * s_j, with s_0 the initial state
    if initial_state is None:
        s0 = chunk_states.new_zeros(b, 1, g, rep, p, n)
    else:
        s0 = initial_state.to(x.dtype).reshape(b, 1, g, rep, p, n)
    states = torch.cat([s0, chunk_states], dim=1)  # (b, c+1, g, r, p, n)
    decay = _segsum_exp(F.pad(a_tot.permute(0, 2, 3, 1), (1, 0)))  # (b, g, r, c+1, c+1)
    flat = states.permute(0, 2, 3, 1, 4, 5).reshape(b, g, rep, c + 1, p * n)
    carried = (decay @ flat).reshape(b, g, rep, c + 1, p, n)
    entering = carried[:, :, :, :-1].permute(0, 3, 1, 2, 4, 5)  # (b, c, g, r, p, n)
    final = carried[:, :, :, -1].reshape(b, h, p, n)

    # 4) each chunk reads its incoming state: y_t += exp(a_cum_t) C_t h_in
    y = y + (Cs @ entering.transpose(-1, -2)) * torch.exp(a_cum)[..., None]

    y = y.permute(0, 1, 4, 2, 3, 5).reshape(b, c * Q, h, p)
    return y[:, :l], final


def ssd(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The SSD scan: fused Triton kernels on CUDA when `mamba_ssm` is installed, else `ssd_chunked`."""
    if HAS_FUSED and x.is_cuda:
        y, final = _fused_scan(
            x, dt, A, B, C, chunk_size, initial_states=initial_state, return_final_states=True
        )
        return y, final
    return ssd_chunked(x, dt, A, B, C, chunk_size, initial_state)
