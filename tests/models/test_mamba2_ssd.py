"""The SSD scan: the chunked algorithm against the step-by-step recurrence, and the fused path."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from aira.models import ssd as ssd_mod
from aira.models.ssd import ssd_chunked, ssd_naive


def _inputs(b, l, h, p, g, n, *, seed=0, dt_scale=1.0, device="cpu", requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=gen)
    # dt as the layer makes it (softplus of something around its init), A in Mamba-2's init range.
    dt = F.softplus(torch.randn(b, l, h, generator=gen) - 3.0) * dt_scale
    A = -torch.empty(h).uniform_(1.0, 16.0, generator=gen)
    B = torch.randn(b, l, g, n, generator=gen)
    C = torch.randn(b, l, g, n, generator=gen)
    s0 = torch.randn(b, h, p, n, generator=gen)
    out = [t.to(device).requires_grad_(requires_grad) for t in (x, dt, A, B, C)]
    return (*out, s0.to(device))


@pytest.fixture(params=["factored", "masked"])
def form(request, monkeypatch):
    """Run a test with each of ssd_chunked's two forms (the masked one is forced by a zero limit)."""
    if request.param == "masked":
        monkeypatch.setattr(ssd_mod, "FACTOR_LIMIT", -1.0)
    return request.param


@pytest.mark.parametrize("length", [1, 7, 64, 100, 257])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunked_matches_naive(length, with_state, form):
    x, dt, A, B, C, s0 = _inputs(2, length, 4, 8, 2, 16, seed=length)
    init = s0 if with_state else None
    y_ref, h_ref = ssd_naive(x, dt, A, B, C, init)
    y, h = ssd_chunked(x, dt, A, B, C, chunk_size=32, initial_state=init)
    assert y.shape == (2, length, 4, 8) and h.shape == (2, 4, 8, 16)
    assert (y - y_ref).abs().max().item() <= 1e-4
    assert (h - h_ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("chunk", [1, 5, 16, 64, 1000])
def test_any_chunk_size_gives_the_same_scan(chunk):
    x, dt, A, B, C, s0 = _inputs(1, 50, 2, 4, 1, 8, seed=1)
    y_ref, h_ref = ssd_naive(x, dt, A, B, C, s0)
    y, h = ssd_chunked(x, dt, A, B, C, chunk_size=chunk, initial_state=s0)
    assert torch.allclose(y, y_ref, atol=1e-4) and torch.allclose(h, h_ref, atol=1e-4)


def test_factored_form_at_the_edge_of_its_range():
    # log-decay of 110 across a chunk: factors near exp(+-55), just inside FACTOR_LIMIT, stay exact.
    x, dt, A, B, C, s0 = _inputs(1, 64, 2, 4, 1, 8, seed=2)
    A = torch.tensor([-1.0, -16.0])
    dt = torch.full_like(dt, 110.0 / (16 * 64))  # head 1 decays by exp(-110) over the chunk
    y_ref, h_ref = ssd_naive(x, dt, A, B, C, s0)
    y, h = ssd_chunked(x, dt, A, B, C, 64, initial_state=s0)
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4) and torch.allclose(h, h_ref, atol=1e-4)


def test_large_decays_halve_the_chunk(monkeypatch):
    # Decay 4 per step: 256 across a chunk of 64 (too wide), 64 across 16 (factors within exp(+-32)).
    x, dt, A, B, C, s0 = _inputs(1, 100, 2, 4, 1, 8, seed=7)
    A = torch.tensor([-4.0, -1.0])
    dt = torch.ones_like(dt)
    chunks = []
    real = ssd_mod._chunks_factored

    def spy(x5, *rest):
        chunks.append(x5.shape[2])
        return real(x5, *rest)

    monkeypatch.setattr(ssd_mod, "_chunks_factored", spy)
    y, h = ssd_chunked(x, dt, A, B, C, 64, initial_state=s0)
    assert chunks == [16]
    y_ref, h_ref = ssd_naive(x, dt, A, B, C, s0)
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4) and torch.allclose(h, h_ref, atol=1e-4)


def test_final_state_continues_the_scan():
    # Scanning [first | second] equals scanning first, then second from first's final state.
    x, dt, A, B, C, _ = _inputs(2, 90, 4, 8, 1, 16, seed=3)
    y_all, h_all = ssd_chunked(x, dt, A, B, C, 16)
    y1, h1 = ssd_chunked(x[:, :37], dt[:, :37], A, B[:, :37], C[:, :37], 16)
    y2, h2 = ssd_chunked(x[:, 37:], dt[:, 37:], A, B[:, 37:], C[:, 37:], 16, initial_state=h1)
    assert torch.allclose(torch.cat([y1, y2], 1), y_all, atol=1e-4)
    assert torch.allclose(h2, h_all, atol=1e-4)


def test_gradients_match_naive(form):
    x, dt, A, B, C, s0 = _inputs(1, 45, 4, 4, 2, 8, seed=4, requires_grad=True)
    w = torch.randn(1, 45, 4, 4)
    grads = []
    for fn in (lambda: ssd_naive(x, dt, A, B, C, s0), lambda: ssd_chunked(x, dt, A, B, C, 16, s0)):
        y, h = fn()
        grads.append(torch.autograd.grad((y * w).sum() + h.sum(), (x, dt, A, B, C)))
    for g_ref, g in zip(*grads):
        assert torch.allclose(g, g_ref, atol=1e-3, rtol=1e-3)


def test_strong_decay_stays_finite():
    # Large dt * |A| makes exp(+segment sum) overflow above the diagonal unless masked before exp.
    x, dt, A, B, C, _ = _inputs(1, 64, 2, 4, 1, 8, seed=5, dt_scale=50.0, requires_grad=True)
    y, h = ssd_chunked(x, dt, A, B, C, 64)
    (y.sum() + h.sum()).backward()
    for t in (x, dt, A, B, C):
        assert torch.isfinite(t.grad).all()
    y_ref, _ = ssd_naive(x, dt, A, B, C)
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4)  # |y| reaches ~40 here


def test_heads_must_divide_into_groups():
    x, dt, A, B, C, _ = _inputs(1, 8, 3, 4, 2, 8)
    with pytest.raises(ValueError, match="multiple of groups"):
        ssd_chunked(x, dt, A, B, C, 4)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and ssd_mod.HAS_FUSED),
    reason="the fused mamba_chunk_scan_combined needs CUDA and the mamba_ssm package",
)
def test_fused_kernel_agrees_with_chunked():
    x, dt, A, B, C, s0 = _inputs(2, 300, 8, 64, 1, 64, seed=6, device="cuda")
    y, h = ssd_mod.ssd(x, dt, A, B, C, 64, initial_state=s0)
    y_ref, h_ref = ssd_chunked(x, dt, A, B, C, 64, initial_state=s0)
    assert (y - y_ref).abs().max().item() <= 1e-2 * y_ref.abs().max().item()
    assert (h - h_ref).abs().max().item() <= 1e-2 * h_ref.abs().max().item()


def _simple_gla_recurrence(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    """Simple GLA one step at a time, in flash-linear-attention's calling convention (fla/ops/simple_gla):
    inputs (B, T, H, .), S_t = exp(g_t) S_{t-1} + k_t v_t^T (K x V), o_t = scale * q_t^T S_t."""
    b, t, h, kd = q.shape
    state = q.new_zeros(b, h, kd, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    outs = []
    for i in range(t):
        state = g[:, i].exp()[..., None, None] * state + k[:, i, :, :, None] * v[:, i, :, None, :]
        outs.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, i], state))
    return torch.stack(outs, dim=1), (state if output_final_state else None)


@pytest.mark.parametrize("with_state", [False, True])
def test_ssd_as_simple_gla_equals_the_recurrence(with_state):
    # The argument mapping fla's kernel is called with, checked in float64 on CPU through a reference
    # simple-GLA recurrence: outputs, final state and every input's gradient equal ssd_naive's.
    x, dt, A, B, C, s0 = _inputs(2, 37, 4, 8, 2, 16, seed=11)
    x, dt, A, B, C, s0 = (t.double().requires_grad_(True) for t in (x, dt, A, B, C, s0))
    init = s0 if with_state else None
    w = torch.randn(2, 37, 4, 8, dtype=torch.float64)
    results = []
    for fn in (lambda: ssd_naive(x, dt, A, B, C, init),
               lambda: ssd_mod.ssd_as_simple_gla(x, dt, A, B, C, _simple_gla_recurrence, init)):
        y, h = fn()
        inputs = (x, dt, A, B, C) + ((s0,) if with_state else ())
        results.append((y, h, torch.autograd.grad((y * w).sum() + h.sum(), inputs)))
    (y_ref, h_ref, g_ref), (y, h, grads) = results
    assert y.dtype == torch.float64 and h.shape == h_ref.shape == (2, 4, 8, 16)
    assert (y - y_ref).abs().max().item() <= 1e-12
    assert (h - h_ref).abs().max().item() <= 1e-12
    for a, b in zip(grads, g_ref):
        assert (a - b).abs().max().item() <= 1e-10


@pytest.mark.parametrize("with_state", [False, True])
def test_ssd_as_simple_gla_through_fla_own_reference(with_state, fla_reference):
    # The same mapping through fla's own step-by-step simple GLA (its naive.py, fp32): the calling convention
    # assumed above is fla's, and SSD called that way is the SSD recurrence.
    kernel = fla_reference("simple_gla", "naive_recurrent_simple_gla")
    x, dt, A, B, C, s0 = _inputs(2, 37, 4, 8, 2, 16, seed=12)
    init = s0 if with_state else None
    y_ref, h_ref = ssd_naive(x, dt, A, B, C, init)
    y, h = ssd_mod.ssd_as_simple_gla(x, dt, A, B, C, kernel, init)
    assert (y - y_ref).abs().max().item() <= 1e-4 * max(1.0, y_ref.abs().max().item())
    assert (h - h_ref).abs().max().item() <= 1e-4 * max(1.0, h_ref.abs().max().item())


def test_ssd_runs_the_plain_scan_on_cpu_even_with_a_kernel(monkeypatch):
    # The kernel is for CUDA tensors only: a CPU tensor never reaches it.
    def kernel(*_a, **_k):
        raise AssertionError("a Triton kernel was called on CPU tensors")

    monkeypatch.setattr(ssd_mod, "HAS_FLA", True)
    monkeypatch.setattr(ssd_mod, "_fla_simple_gla", kernel)
    x, dt, A, B, C, _ = _inputs(1, 20, 2, 4, 1, 8, seed=2)
    y, _ = ssd_mod.ssd(x, dt, A, B, C, 8)
    assert torch.equal(y, ssd_chunked(x, dt, A, B, C, 8)[0])


@pytest.mark.skipif(
    not (torch.cuda.is_available() and ssd_mod.HAS_FLA),
    reason="fla's chunk_simple_gla needs CUDA and the flash-linear-attention package",
)
def test_fused_fla_simple_gla_agrees_with_chunked():
    x, dt, A, B, C, s0 = _inputs(2, 300, 8, 64, 1, 64, seed=6, device="cuda")
    y, h = ssd_mod.ssd_as_simple_gla(x, dt, A, B, C, ssd_mod._fla_simple_gla, initial_state=s0)
    y_ref, h_ref = ssd_chunked(x, dt, A, B, C, 64, initial_state=s0)
    assert (y - y_ref).abs().max().item() <= 1e-2 * y_ref.abs().max().item()
    assert (h - h_ref).abs().max().item() <= 1e-2 * h_ref.abs().max().item()
    with torch.autocast("cuda", dtype=torch.bfloat16):  # bf16 inputs, as in training
        y16, _ = ssd_mod.ssd_as_simple_gla(x.bfloat16(), dt, A, B.bfloat16(), C.bfloat16(), ssd_mod._fla_simple_gla)
    y_ref0, _ = ssd_chunked(x, dt, A, B, C, 64)
    assert (y16.float() - y_ref0).abs().max().item() <= 3e-2 * y_ref0.abs().max().item()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.slow
def test_tune_cpu_malloc_is_opt_in():
    # In a child process, since the setting is process-wide: glibc accepts it, and the scan still
    # agrees with the recurrence afterwards.
    code = (
        "import aira.models.ssd as s, torch;"
        "assert s.tune_cpu_malloc() is True;"
        "x = torch.randn(1, 70, 2, 4); dt = torch.rand(1, 70, 2) * 0.1; A = -torch.ones(2);"
        "B = torch.randn(1, 70, 1, 8); C = torch.randn(1, 70, 1, 8);"
        "y, h = s.ssd_chunked(x, dt, A, B, C, 16); y0, h0 = s.ssd_naive(x, dt, A, B, C);"
        "assert torch.allclose(y, y0, atol=1e-4); print('ok')"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, check=False, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-500:]
