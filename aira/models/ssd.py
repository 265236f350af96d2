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
  (no loop over time steps). Two forms, same result:
    * factored (CPU, when every chunk's log-decay range fits FACTOR_LIMIT; the chunk is halved down
      to MIN_FACTORED_CHUNK to make it fit, which only lowers the FLOPs): the decay
      exp(a_t - a_s) is split into a row and a column factor around the chunk's mid-decay, so the
      (Q, Q) scores are shared by all heads of a group and the intra-chunk product and the state
      read-out become one matmul over (heads x head_dim) columns. About 2-3x faster on CPU.
    * masked (any decay; always on GPU, where the range check would stall): a (Q, Q) decay mask per
      head, as in the paper's formulation.
- `ssd` picks a fused Triton kernel on CUDA: `mamba_chunk_scan_combined` of `mamba_ssm` when it is
  installed, else flash-linear-attention's `chunk_simple_gla` through `ssd_as_simple_gla` (SSD is simple
  GLA with q = C, k = B, v = dt x, log-decay g = dt A and scale 1); else `ssd_chunked`. Under vmap
  (aira.train.batched) the plain form runs: a Triton kernel has no batching rule.
- `tune_cpu_malloc` is an opt-in, process-wide glibc setting for CPU training (never run on import).
"""

from __future__ import annotations

import ctypes
import sys

import torch
import torch.nn.functional as F
from torch import Tensor

try:  # optional fused Triton kernels; CPU users never have them
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined as _fused_scan
except Exception:  # noqa: BLE001 - any failure (missing package, CUDA/Triton mismatch): no fast path
    _fused_scan = None

try:  # flash-linear-attention's chunked simple-GLA kernel: Mamba-2's SSD with a scalar decay per head
    from fla.ops.simple_gla import chunk_simple_gla as _fla_simple_gla
except Exception:  # noqa: BLE001 - as above
    _fla_simple_gla = None

HAS_FUSED = _fused_scan is not None
HAS_FLA = _fla_simple_gla is not None
# The factored form's factors exp(+-(a_cum - a_tot/2)) stay within exp(+-FACTOR_LIMIT), far from
# fp32's overflow at exp(88) even after multiplying inputs; it runs for chunks >= MIN_FACTORED_CHUNK.
FACTOR_LIMIT = 60.0
MIN_FACTORED_CHUNK = 8


def tune_cpu_malloc() -> bool:
    """Keep large CPU tensors on glibc's heap instead of fresh mmaps; True if the setting took.

    By default glibc maps every large allocation anew and the kernel zero-fills its pages on first
    touch; a training step allocates and frees many state-sized tensors, so that page-fault work
    becomes a large part of it. With the mmap threshold raised (and the heap not trimmed back) freed
    memory is reused. Process-wide and irreversible, and it keeps the peak memory mapped: call it
    once at the start of a CPU training run, never from library code. Measured: one `S` layer,
    forward + backward, d_model 256, batch 4, L 4096, 1 thread: 1.65x less CPU time.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, (1 << 31) - 1))


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
    """(..., Q) cumulative log-decays -> (..., Q, Q): exp(a_cum[i] - a_cum[j]) for j <= i, else 0.

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
    than the chunk uses one chunk of its own length. Half-precision inputs are computed in float32
    (the decays need its range); y comes back in x's dtype, the final state in float32.
    """
    out_dtype = x.dtype
    work = torch.promote_types(x.dtype, torch.float32)
    x, dt, A, B, C = (t.to(work) for t in (x, dt, A, B, C))
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    if h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    rep = h // g
    Q = max(1, min(chunk_size, l))
    factored = False
    # The range check reads a value: it would stall a GPU, and under vmap (many models trained as one,
    # aira.train.batched) each model would need its own chunk, so both take the masked form.
    if not x.is_cuda and not torch._C._functorch.is_batchedtensor(x):
        # Halve the chunk until every chunk's decay fits the factored form (a smaller chunk also
        # costs fewer FLOPs; only the loop over chunks grows). Below MIN_FACTORED_CHUNK the masked
        # form, which takes any decay, runs at the requested chunk.
        q = Q
        while not factored and q >= min(Q, MIN_FACTORED_CHUNK):
            if _factor_range(dt, A, q) <= FACTOR_LIMIT:
                factored, Q = True, q
            q //= 2
    pad = (-l) % Q
    if pad:
        x, dt, B, C = (F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) for t in (x, dt, B, C))
    c = (l + pad) // Q

    # Heads split as (g, r): B and C are shared by the r heads of a group. Tensors keep the input
    # layout (..., Q, g, r, p), so the matmuls against B and C fold (r, p) into one matrix dimension.
    x5 = x.reshape(b, c, Q, g, rep, p)
    dt5 = dt.reshape(b, c, Q, g, rep)
    a_cum = torch.cumsum(dt5 * A.reshape(g, rep), dim=2)  # (b, c, Q, g, r) log-decay from chunk start
    a_tot = a_cum[:, :, -1]  # (b, c, g, r) log-decay across the whole chunk
    Bg = B.reshape(b, c, Q, g, n).transpose(2, 3)  # (b, c, g, Q, n)
    Cg = C.reshape(b, c, Q, g, n).transpose(2, 3)
    if factored:
        y, final = _chunks_factored(x5, dt5, a_cum, a_tot, Bg, Cg, initial_state)
    else:
        y, final = _chunks_masked(x5, dt5, a_cum, a_tot, Bg, Cg, initial_state)
    y = y.transpose(2, 3).reshape(b, c * Q, h, p)
    return y[:, :l].to(out_dtype), final


def ssd(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The SSD scan: a fused Triton kernel on CUDA (mamba_ssm's, else fla's), else `ssd_chunked`."""
    if x.is_cuda and not torch._C._functorch.is_batchedtensor(x):
        if HAS_FUSED:
            y, final = _fused_scan(
                x, dt, A, B, C, chunk_size, initial_states=initial_state, return_final_states=True
            )
            return y, final
        if HAS_FLA:
            return ssd_as_simple_gla(x, dt, A, B, C, _fla_simple_gla, initial_state)
    return ssd_chunked(x, dt, A, B, C, chunk_size, initial_state)


def ssd_as_simple_gla(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, kernel,
                      initial_state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The SSD scan computed by a simple-GLA `kernel` with flash-linear-attention's calling convention.

    Simple GLA keeps S_t = exp(g_t) S_{t-1} + k_t v_t^T (K x V per head) and reads o_t = scale q_t^T S_t,
    inputs (b, l, h, .), states (b, h, K, V). With K = n, V = p, q = C, k = B (each group's B and C
    repeated over its heads), v = dt x, g = dt A and scale 1, S_t is the transpose of SSD's h_t and o_t
    is y_t. `kernel(q, k, v, g, scale=, initial_state=, output_final_state=)` returns (o, final S).
    """
    rep = x.shape[2] // B.shape[2]
    q = C.repeat_interleave(rep, dim=2)
    k = B.repeat_interleave(rep, dim=2)
    v = x * dt.unsqueeze(-1).to(x.dtype)
    wide = torch.promote_types(dt.dtype, torch.float32)  # decays and states stay at least fp32
    g = (dt * A).to(wide)
    s0 = None if initial_state is None else initial_state.transpose(-1, -2).to(wide).contiguous()
    y, final = kernel(q, k, v, g, scale=1.0, initial_state=s0, output_final_state=True)
    return y.to(x.dtype), final.transpose(-1, -2)


def _factor_range(dt: Tensor, A: Tensor, chunk: int) -> float:
    """Largest |a_cum - a_tot / 2| over chunks of `chunk` steps: the exponent range of the factors."""
    with torch.no_grad():
        a = dt * A  # (b, l, h)
        a = F.pad(a, (0, 0, 0, (-a.shape[1]) % chunk)).unflatten(1, (-1, chunk))
        a_cum = torch.cumsum(a, dim=2)
        return (a_cum - a_cum[:, :, -1:] * 0.5).abs().max().item()


def _carry(
    chunk_states: Tensor,
    a_tot: Tensor,
    initial_state: Tensor | None,
    in_scale: Tensor | None = None,
    out_scale: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """States entering each chunk (b, c, g, n, r*p) and the final state (b, h, p, n).

    h_in(k+1) = exp(a_tot_k) h_in(k) + in_scale_k s_k: a loop over the L/Q chunks of elementwise
    work, O(c); a (c+1) x (c+1) decay matrix would need no loop but costs O(c^2) beyond a few chunks.
    The optional per-head scales (b, c, g, r) ride along in the loop, so that no extra full-size
    tensor is allocated for them: the stored h_in(k) is multiplied by out_scale_k.
    chunk_states: (b, c, g, n, r, p), the transpose of the (p, n) per head of the module docstring.
    Without gradients (inference, evaluation) the loop runs in place in `_carry_no_grad`.
    """
    b, c, g, n, rep, p = chunk_states.shape
    if initial_state is None:
        run = chunk_states.new_zeros(b, g, n, rep, p)
    else:
        run = initial_state.to(chunk_states.dtype).reshape(b, g, rep, p, n).permute(0, 1, 4, 2, 3)

    if not torch.is_grad_enabled() or not any(
        t is not None and t.requires_grad for t in (chunk_states, a_tot, in_scale, out_scale, initial_state)
    ):
        return _carry_no_grad(chunk_states, a_tot, run, in_scale, out_scale)

    def per_chunk(t: Tensor | None) -> list:
        # unbind, not indexing: the backward of c index ops would build c full-size zero gradients.
        return [None] * c if t is None else t[:, :, :, None, :, None].unbind(1)  # c x (b, g, 1, r, 1)

    entering = []
    for decay_k, state_k, ins_k, outs_k in zip(
        per_chunk(torch.exp(a_tot)), chunk_states.unbind(1), per_chunk(in_scale), per_chunk(out_scale)
    ):
        entering.append(run if outs_k is None else run * outs_k)
        run = decay_k * run + (state_k if ins_k is None else ins_k * state_k)
    h_in = torch.stack(entering, dim=1).reshape(b, c, g, n, rep * p)
    return h_in, run.permute(0, 1, 3, 4, 2).reshape(b, g * rep, p, n)


def _carry_no_grad(chunk_states, a_tot, run, in_scale, out_scale) -> tuple[Tensor, Tensor]:
    """`_carry` when no gradient is wanted: every step writes into preallocated buffers in place.

    Through autograd each step allocates several state-sized temporaries (and glibc maps and
    zero-fills each large one); here only h_in is allocated. Measured ~1.15x on the scan forward.
    """
    b, c, g, n, rep, p = chunk_states.shape
    run = run.clone(memory_format=torch.contiguous_format)  # updated in place below
    h_in = torch.empty_like(chunk_states)
    decay = torch.exp(a_tot)[:, :, :, None, :, None]  # (b, c, g, 1, r, 1)
    ins, outs = (None if t is None else t[:, :, :, None, :, None] for t in (in_scale, out_scale))
    for k in range(c):
        if outs is None:
            h_in[:, k].copy_(run)
        else:
            torch.mul(run, outs[:, k], out=h_in[:, k])
        run.mul_(decay[:, k])
        if ins is None:
            run.add_(chunk_states[:, k])
        else:
            run.addcmul_(chunk_states[:, k], ins[:, k])
    return h_in.reshape(b, c, g, n, rep * p), run.permute(0, 1, 3, 4, 2).reshape(b, g * rep, p, n)


def _chunks_masked(x5, dt5, a_cum, a_tot, Bg, Cg, initial_state) -> tuple[Tensor, Tensor]:
    """Any decay: an explicit (Q, Q) decay mask per head. Returns y (b, c, g, Q, r, p) and the final state."""
    b, c, Q, g, rep, p = x5.shape
    n = Bg.shape[-1]
    # 1) inside each chunk: y_t = sum_{s<=t} (C_t . B_s) exp(a_cum_t - a_cum_s) dt_s x_s
    CB = (Cg @ Bg.transpose(-1, -2)).unsqueeze(3)  # (b, c, g, 1, Q, Q)
    M = _decay_mask(a_cum.permute(0, 1, 3, 4, 2)) * CB  # (b, c, g, r, Q, Q)
    y_diag = M @ (x5 * dt5[..., None]).permute(0, 1, 3, 4, 2, 5)  # (b, c, g, r, Q, p)
    # 2) the state each chunk leaves from its own inputs: sum_s exp(a_tot - a_cum_s) dt_s B_s x_s^T
    w = dt5 * torch.exp(a_tot[:, :, None] - a_cum)  # (b, c, Q, g, r)
    xw = (x5 * w[..., None]).reshape(b, c, Q, g, rep * p).transpose(2, 3)  # (b, c, g, Q, r*p)
    h_in, final = _carry((Bg.transpose(-1, -2) @ xw).reshape(b, c, g, n, rep, p), a_tot, initial_state)
    # 3) each chunk reads its incoming state: y_t += exp(a_cum_t) C_t . h_in
    y_off = (Cg @ h_in).reshape(b, c, g, Q, rep, p) * torch.exp(a_cum).transpose(2, 3)[..., None]
    return y_off + y_diag.transpose(3, 4), final


def _chunks_factored(x5, dt5, a_cum, a_tot, Bg, Cg, initial_state) -> tuple[Tensor, Tensor]:
    """Moderate decays: exp(a_t - a_s) = exp(a_t - m) exp(m - a_s), m = a_tot / 2 per chunk and head.

    With the decay split into a factor per row and one per column, the (Q, Q) scores C B^T are the
    same for every head of a group, so one matmul serves all heads with (r, p) folded together, no
    per-head mask is built, and the intra-chunk product and the state read-out share one
    `baddbmm`: y = exp(a_t - m) * ([C B^T]_causal u + C (exp(m) h_in)), u_s = exp(m - a_s) dt_s x_s.
    """
    b, c, Q, g, rep, p = x5.shape
    n = Bg.shape[-1]
    m = a_tot * 0.5
    u = x5 * (dt5 * torch.exp(m[:, :, None] - a_cum))[..., None]  # (b, c, Q, g, r, p)
    u = u.reshape(b, c, Q, g, rep * p).transpose(2, 3)  # (b, c, g, Q, r*p)
    # chunk state = exp(a_tot - m) B^T u; the read-out wants exp(m) h_in: both scales go into the loop
    chunk_states = (Bg.transpose(-1, -2) @ u).reshape(b, c, g, n, rep, p)
    h_in, final = _carry(chunk_states, a_tot, initial_state, torch.exp(a_tot - m), torch.exp(m))
    upper = torch.ones(Q, Q, dtype=torch.bool, device=x5.device).triu(1)
    scores = (Cg @ Bg.transpose(-1, -2)).masked_fill(upper, 0.0)  # (b, c, g, Q, Q)
    k = b * c * g
    y = torch.baddbmm(
        (Cg @ h_in).reshape(k, Q, rep * p), scores.reshape(k, Q, Q), u.reshape(k, Q, rep * p)
    )
    row = torch.exp(a_cum - m[:, :, None]).transpose(2, 3)[..., None]  # (b, c, g, Q, r, 1)
    return y.reshape(b, c, g, Q, rep, p) * row, final
