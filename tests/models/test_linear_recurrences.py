"""Gated DeltaNet (D) and gated linear attention (G): chunked scans against their step-by-step
recurrences (outputs, final states and gradients, in float64), the layers, and the fla kernels on CUDA."""

import pytest
import torch
import torch.nn.functional as F

from aira.models import build_model
from aira.models.config import ModelConfig
from aira.models.primitives import gated_deltanet, gla
from aira.models.primitives.gated_deltanet import GatedDeltaNet, gated_delta_chunked, gated_delta_naive
from aira.models.primitives.gla import GatedLinearAttention, gla_chunked, gla_naive

F64 = torch.float64
CFG = ModelConfig(d_model=32, n_heads=4, n_kv_heads=2, ffn_dim=64, vocab_size=97, max_seq_len=32,
                  ssm_chunk=8, ssm_head_dim=8, ssm_state=8)


def _delta_inputs(b, l, H, dk, dv, *, seed, device="cpu", dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, l, H, dk, generator=gen, dtype=F64)
    k = F.normalize(torch.randn(b, l, H, dk, generator=gen, dtype=F64), dim=-1)  # as the layer makes them
    v = torch.randn(b, l, H, dv, generator=gen, dtype=F64)
    g = -F.softplus(torch.randn(b, l, H, generator=gen, dtype=F64)) * 0.5  # decays from ~0.3 to ~1
    beta = torch.sigmoid(torch.randn(b, l, H, generator=gen, dtype=F64))
    s0 = torch.randn(b, H, dk, dv, generator=gen, dtype=F64)
    return [t.to(device=device, dtype=dtype) for t in (q, k, v, g, beta, s0)]


def _gla_inputs(b, l, H, dk, dv, *, seed, device="cpu", dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, l, H, dk, generator=gen, dtype=F64)
    k = torch.randn(b, l, H, dk, generator=gen, dtype=F64)
    v = torch.randn(b, l, H, dv, generator=gen, dtype=F64)
    gk = F.logsigmoid(torch.randn(b, l, H, dk, generator=gen, dtype=F64) * 2)  # strong and weak decays
    s0 = torch.randn(b, H, dk, dv, generator=gen, dtype=F64)
    return [t.to(device=device, dtype=dtype) for t in (q, k, v, gk, s0)]


def _grads(outputs, inputs, seed=7):
    """Gradients of a fixed random projection of the outputs with respect to the inputs."""
    gen = torch.Generator().manual_seed(seed)
    total = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device)).sum() for o in outputs)
    return torch.autograd.grad(total, inputs)


@pytest.mark.parametrize("length", [1, 13, 32, 45])
@pytest.mark.parametrize("chunk", [1, 4, 7, 16, 64])
def test_gated_delta_chunked_equals_the_recurrence_with_gradients(length, chunk):
    q, k, v, g, beta, s0 = (t.requires_grad_() for t in _delta_inputs(2, length, 3, 6, 5, seed=length))
    inputs = (q, k, v, g, beta, s0)
    o_ref, S_ref = gated_delta_naive(q, k, v, g, beta, 0.4, s0)
    o, S = gated_delta_chunked(q, k, v, g, beta, 0.4, chunk, s0)
    assert o.shape == (2, length, 3, 5) and S.shape == (2, 3, 6, 5) and o.dtype == F64
    torch.testing.assert_close(o, o_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S, S_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(_grads((o, S), inputs), _grads((o_ref, S_ref), inputs)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("length", [1, 13, 32, 45])
@pytest.mark.parametrize("chunk", [1, 4, 7, 16, 64])
def test_gla_chunked_equals_the_recurrence_with_gradients(length, chunk):
    q, k, v, gk, s0 = (t.requires_grad_() for t in _gla_inputs(2, length, 3, 6, 5, seed=length))
    inputs = (q, k, v, gk, s0)
    o_ref, S_ref = gla_naive(q, k, v, gk, 0.4, s0)
    o, S = gla_chunked(q, k, v, gk, 0.4, chunk, s0)
    assert o.shape == (2, length, 3, 5) and S.shape == (2, 3, 6, 5) and o.dtype == F64
    torch.testing.assert_close(o, o_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S, S_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(_grads((o, S), inputs), _grads((o_ref, S_ref), inputs)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-11)


def test_delta_rule_writes_a_value_and_reads_it_back():
    # One head, no decay, beta = 1: writing v under a unit key k, then querying with k, returns v
    # exactly (the delta rule replaces what the state held for k), even over an earlier write.
    k = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    q = torch.stack([k, k, k])[None, :, None]  # (1, 3, 1, 3)
    keys = torch.stack([k, k, torch.tensor([0.0, 1.0, 0.0], dtype=F64)])[None, :, None]
    v = torch.tensor([[1.0, 2.0], [5.0, -1.0], [7.0, 7.0]], dtype=F64)[None, :, None]
    zeros, ones = torch.zeros(1, 3, 1, dtype=F64), torch.ones(1, 3, 1, dtype=F64)
    o, _ = gated_delta_naive(q, keys, v, zeros, ones, 1.0)
    assert o[0, :, 0].tolist() == [[1.0, 2.0], [5.0, -1.0], [5.0, -1.0]]  # an orthogonal write leaves k's value
    o2, _ = gated_delta_chunked(q, keys, v, zeros, ones, 1.0, 2)
    torch.testing.assert_close(o2, o)


def test_strong_decays_stay_finite_in_float32():
    # log-decays of -30 per step: a factored form would need exp(+-30 Q); every factor here is <= 1.
    q, k, v, g, beta, _ = _delta_inputs(1, 40, 2, 4, 4, seed=3, dtype=torch.float32)
    o, S = gated_delta_chunked(q, k, v, g * 60, beta, 0.5, 16)
    ref, _ = gated_delta_naive(q, k, v, g * 60, beta, 0.5)
    assert torch.isfinite(o).all() and torch.isfinite(S).all()
    torch.testing.assert_close(o, ref, rtol=1e-4, atol=1e-5)
    q, k, v, gk, _ = _gla_inputs(1, 40, 2, 4, 4, seed=3, dtype=torch.float32)
    o, S = gla_chunked(q, k, v, gk * 30, 0.5, 16)
    ref, _ = gla_naive(q, k, v, gk * 30, 0.5)
    assert torch.isfinite(o).all() and torch.isfinite(S).all()
    torch.testing.assert_close(o, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [GatedDeltaNet, GatedLinearAttention])
def test_layers_are_causal_and_keep_the_shape(cls):
    torch.manual_seed(0)
    layer = cls(CFG).double()
    x = torch.randn(2, 21, CFG.d_model, dtype=F64)
    y = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    x2 = x.clone()
    x2[:, 15:] += torch.randn(2, 6, CFG.d_model, dtype=F64)
    y2 = layer(x2)
    torch.testing.assert_close(y2[:, :15], y[:, :15], rtol=0, atol=1e-12)  # the past never sees the future
    assert (y2[:, 15:] - y[:, 15:]).abs().max() > 1e-3


@pytest.mark.parametrize("code", ["D", "G"])
def test_bidirectional_configs_are_refused(code):
    from aira.errors import UsageError

    with pytest.raises(UsageError, match="causal only"):
        build_model(code, CFG.with_(causal=False))


def test_a_model_with_both_learns_a_copy():
    # A few dozen steps on a fixed batch: the loss of a D + G model falls well below its start.
    torch.manual_seed(0)
    model = build_model("DMGM", CFG.with_(vocab_size=16))
    idx = torch.randint(0, 16, (8, 24))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("with_state", [False, True])
def test_plain_recurrences_equal_fla_own_references(with_state, fla_reference):
    # aira's step-by-step references against flash-linear-attention's (fla/ops/*/naive.py, fp32): the
    # recurrences the CUDA kernels compute are the ones aira's CPU forms are checked against.
    q, k, v, g, beta, s0 = (t.float() for t in _delta_inputs(2, 23, 3, 6, 5, seed=4))
    init = s0 if with_state else None
    want = fla_reference("gated_delta_rule", "naive_recurrent_gated_delta_rule")(
        q, k, v, beta, g, scale=0.4, initial_state=init, output_final_state=True)
    got = gated_delta_naive(q, k, v, g, beta, 0.4, init)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    q, k, v, gk, s0 = (t.float() for t in _gla_inputs(2, 23, 3, 6, 5, seed=5))
    init = s0 if with_state else None
    want = fla_reference("gla", "naive_recurrent_gla")(q, k, v, gk, initial_state=init, output_final_state=True)
    got = gla_naive(q, k, v, gk, 6 ** -0.5, init)  # fla's reference always scales by dk ** -0.5
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


cuda_fla = pytest.mark.skipif(
    not (torch.cuda.is_available() and gated_deltanet.HAS_FLA and gla.HAS_FLA),
    reason="needs CUDA and flash-linear-attention (pip install flash-linear-attention)",
)


@cuda_fla
def test_fla_gated_delta_kernel_matches_the_plain_form():
    q, k, v, g, beta, _ = _delta_inputs(2, 200, 4, 64, 64, seed=0, device="cuda", dtype=torch.float32)
    for t in (q, k, v, g, beta):
        t.requires_grad_()
    inputs = (q, k, v, g, beta)
    ref = gated_delta_chunked(q, k, v, g, beta, 0.125, 64)[0]
    got = gated_deltanet.gated_delta(q, k, v, g, beta, 0.125, 64)  # the fla kernel
    torch.testing.assert_close(got, ref, rtol=1e-2, atol=2e-3)
    for a, b in zip(_grads((got,), inputs), _grads((ref,), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=5e-3)


@cuda_fla
def test_fla_gla_kernel_matches_the_plain_form():
    q, k, v, gk, _ = _gla_inputs(2, 200, 4, 32, 64, seed=0, device="cuda", dtype=torch.float32)
    gk = gk / 16  # the layer's range
    for t in (q, k, v, gk):
        t.requires_grad_()
    inputs = (q, k, v, gk)
    ref = gla_chunked(q, k, v, gk, 32**-0.5, 16)[0]
    got = gla.gla(q, k, v, gk, 32**-0.5, 16)  # the fla kernel
    torch.testing.assert_close(got, ref, rtol=1e-2, atol=2e-3)
    for a, b in zip(_grads((got,), inputs), _grads((ref,), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=5e-3)
