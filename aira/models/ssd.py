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
  batched matmuls; the only sequential part is a loop over the L/Q chunks of elementwise work
  (no loop over time steps).
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


def _decay_mask(a_cum: Tensor) -> Tensor:
    """(..., Q) cumulative log-decays -> (..., Q, Q) with out[i, j] = exp(a_cum[i] - a_cum[j]) for j <= i, else 0.

    The difference of one cumulative sum is exact enough within a chunk; filling the upper triangle
    with -inf before exp keeps it from overflowing (and its gradient from turning into inf * 0).
    """
    Q = a_cum.shape[-1]
    diff = a_cum[..., :, None] - a_cum[..., None, :]
    upper = torch.ones(Q, Q, dtype=torch.bool, device=a_cum.device).triu(1)
    return torch.exp(diff.masked_fill_(upper, float("-inf")))  # in place: diff is a fresh temporary


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

    # Heads split as (g, r): B and C are shared by the r heads of a group. Tensors keep the input
    # layout (..., Q, g, r, p) wherever they can, so the state matmuls fold (r, p) into one matrix
    # dimension and need no broadcast copies; only the intra-chunk product needs (r, Q, p).
    x5 = x.reshape(b, c, Q, g, rep, p)
    dt5 = dt.reshape(b, c, Q, g, rep)
    a_cum = torch.cumsum(dt5 * A.reshape(g, rep), dim=2)  # (b, c, Q, g, r) log-decay from chunk start
    a_tot = a_cum[:, :, -1]  # (b, c, g, r) log-decay across the whole chunk
    Bg = B.reshape(b, c, Q, g, n).transpose(2, 3)  # (b, c, g, Q, n)
    Cg = C.reshape(b, c, Q, g, n).transpose(2, 3)

    # 1) inside each chunk: y_t = sum_{s<=t} (C_t . B_s) exp(a_cum_t - a_cum_s) dt_s x_s
    CB = (Cg @ Bg.transpose(-1, -2)).unsqueeze(3)  # (b, c, g, 1, Q, Q)
    M = _decay_mask(a_cum.permute(0, 1, 3, 4, 2)) * CB  # (b, c, g, r, Q, Q)
    xdt = (x5 * dt5[..., None]).permute(0, 1, 3, 4, 2, 5)  # (b, c, g, r, Q, p)
    y_diag = M @ xdt

    # 2) the state each chunk leaves from its own inputs: sum_s exp(a_tot - a_cum_s) dt_s B_s x_s^T,
    #    kept as (n, r*p) per group, the transpose of the (p, n) per head of the docstring.
    w = dt5 * torch.exp(a_tot[:, :, None] - a_cum)  # (b, c, Q, g, r)
    xw = (x5 * w[..., None]).reshape(b, c, Q, g, rep * p).transpose(2, 3)  # (b, c, g, Q, r*p)
    chunk_states = (Bg.transpose(-1, -2) @ xw).reshape(b, c, g, n, rep, p)

    # 3) carry states across chunks: h_in(k+1) = exp(a_tot_k) h_in(k) + s_k. A loop over L/Q chunks of
    #    elementwise work is O(c); the alternative (c+1)^2 decay matrix costs more beyond a few chunks.
    if initial_state is None:
        run = x.new_zeros(b, g, n, rep, p)
    else:
        run = initial_state.to(x.dtype).reshape(b, g, rep, p, n).permute(0, 1, 4, 2, 3)
    # unbind, not indexing: the backward of c index ops would build c full-size zero gradients.
    decays = torch.exp(a_tot)[:, :, :, None, :, None].unbind(1)  # c x (b, g, 1, r, 1)
    entering = []
    for decay_k, state_k in zip(decays, chunk_states.unbind(1)):
        entering.append(run)
        run = decay_k * run + state_k
    h_in = torch.stack(entering, dim=1).reshape(b, c, g, n, rep * p)
    final = run.permute(0, 1, 3, 4, 2).reshape(b, h, p, n)

    # 4) each chunk reads its incoming state: y_t += exp(a_cum_t) C_t . h_in
    y_off = (Cg @ h_in).reshape(b, c, g, Q, rep, p) * torch.exp(a_cum).transpose(2, 3)[..., None]
    y = (y_off + y_diag.transpose(3, 4)).transpose(2, 3).reshape(b, c * Q, h, p)
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
