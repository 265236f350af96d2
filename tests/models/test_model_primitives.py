"""Primitives A, W, M (and every registered one): shapes, causality, references for attention and SWA."""

import math

import pytest
import torch

from aira.errors import UsageError
from aira.models import registry
from aira.models.config import ModelConfig
from aira.models.primitives.attention import Attention, attended_length
from aira.models.primitives.mlp import SwiGLU
from aira.models.primitives.swa import SlidingWindowAttention

CFG = ModelConfig(
    d_model=32,
    n_heads=4,
    n_kv_heads=2,
    ffn_dim=48,
    vocab_size=50,
    max_seq_len=32,
    window=5,
    ssm_state=8,
    ssm_head_dim=8,
    ssm_chunk=8,
)


def _built(cls, cfg=CFG, seed=0):
    torch.manual_seed(seed)
    return cls(cfg).double().eval()


def _reference_attention(m: Attention, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Naive GQA attention: complex-number RoPE, repeated kv heads, masked softmax, all written out."""
    B, L, _ = x.shape
    H, K, h = m.n_heads, m.n_kv_heads, m.head_dim
    q, k, v = m.qkv_proj(x).split([H * h, K * h, K * h], dim=-1)
    q, k, v = q.view(B, L, H, h), k.view(B, L, K, h), v.view(B, L, K, h)
    freqs = m.rope_theta ** (-torch.arange(0, h, 2, dtype=torch.float64) / h)
    rot = torch.polar(torch.ones(L, h // 2, dtype=torch.float64), torch.arange(L)[:, None] * freqs)

    def rope(t):  # pairs (i, i + h/2) as one complex number
        z = torch.complex(t[..., : h // 2], t[..., h // 2 :]) * rot[:, None, :]
        return torch.cat([z.real, z.imag], dim=-1)

    q, k = rope(q), rope(k)
    k, v = k.repeat_interleave(H // K, dim=2), v.repeat_interleave(H // K, dim=2)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(h)
    scores = scores.masked_fill(~allowed, float("-inf"))
    y = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v)
    return m.out_proj(y.reshape(B, L, H * h))


def _band(L, window, causal):
    d = torch.arange(L)[:, None] - torch.arange(L)[None, :]
    return ((d >= 0) & (d < window)) if causal else (d.abs() < window)


@pytest.mark.parametrize("info", registry.all_primitives(), ids=lambda i: i.code)
def test_every_primitive_keeps_shape(info):
    m = _built(info.cls)
    for B, L in [(2, 16), (1, 7)]:
        x = torch.randn(B, L, CFG.d_model, dtype=torch.float64)
        y = m(x)
        assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("info", registry.all_primitives(), ids=lambda i: i.code)
def test_every_primitive_is_causal(info):
    m = _built(info.cls)
    L, t = 16, 9
    x = torch.randn(2, L, CFG.d_model, dtype=torch.float64)
    x2 = x.clone()
    x2[:, t + 1 :] += torch.randn_like(x2[:, t + 1 :])
    y, y2 = m(x), m(x2)
    torch.testing.assert_close(y[:, : t + 1], y2[:, : t + 1])
    if info.cls is not SwiGLU:  # a token mixer must actually see the perturbed tokens' own positions
        assert not torch.allclose(y[:, t + 1 :], y2[:, t + 1 :])


@pytest.mark.parametrize("cls", [Attention, SlidingWindowAttention])
def test_bidirectional_attention_sees_the_future(cls):
    m = _built(cls, CFG.with_(causal=False))
    x = torch.randn(1, 12, CFG.d_model, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 6] += 1.0
    y, y2 = m(x), m(x2)
    assert not torch.allclose(y[:, 5], y2[:, 5])  # an earlier position changes


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_kv", [4, 2, 1])
def test_attention_matches_naive_reference(causal, n_kv):
    cfg = CFG.with_(causal=causal, n_kv_heads=n_kv)
    m = _built(Attention, cfg)
    x = torch.randn(2, 11, cfg.d_model, dtype=torch.float64)
    allowed = _band(11, 11, True) if causal else torch.ones(11, 11, dtype=torch.bool)
    torch.testing.assert_close(m(x), _reference_attention(m, x, allowed))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [1, 3, 5])
def test_swa_matches_naive_masked_softmax(causal, window):
    cfg = CFG.with_(causal=causal, window=window)
    m = _built(SlidingWindowAttention, cfg)
    x = torch.randn(2, 13, cfg.d_model, dtype=torch.float64)
    torch.testing.assert_close(m(x), _reference_attention(m, x, _band(13, window, causal)))


@pytest.mark.parametrize("causal", [True, False])
def test_swa_equals_full_attention_iff_window_covers_sequence(causal):
    L = 12
    full = _built(Attention, CFG.with_(causal=causal))
    x = torch.randn(2, L, CFG.d_model, dtype=torch.float64)
    for window, same in [(L, True), (L + 5, True), (L - 1, False), (4, False)]:
        swa = _built(SlidingWindowAttention, CFG.with_(causal=causal, window=window))
        swa.load_state_dict(full.state_dict())
        assert torch.allclose(swa(x), full(x)) == same, window


def test_swa_receptive_field_is_the_window():
    w = CFG.window
    m = _built(SlidingWindowAttention)
    x = torch.randn(1, 16, CFG.d_model, dtype=torch.float64)
    t = 12
    for s, changes in [(t - w, False), (t - w + 1, True), (t, True)]:
        x2 = x.clone()
        x2[:, s] += 1.0
        assert (not torch.allclose(m(x)[:, t], m(x2)[:, t])) == changes, s


def test_rope_scores_depend_only_on_offset():
    # Same content at every position: q.k after RoPE must be a function of (i - j) only.
    m = _built(Attention)
    from aira.models.primitives.attention import apply_rope, rope_tables

    h = m.head_dim
    cos, sin = rope_tables(10, h, m.rope_theta, torch.device("cpu"), torch.float64)
    q = apply_rope(torch.randn(1, 1, 1, h, dtype=torch.float64).expand(1, 10, 1, h), cos, sin)[0, :, 0]
    k = apply_rope(torch.randn(1, 1, 1, h, dtype=torch.float64).expand(1, 10, 1, h), cos, sin)[0, :, 0]
    s = q @ k.T
    torch.testing.assert_close(torch.diagonal(s, 2)[:-1], torch.diagonal(s, 2)[1:])
    assert not torch.allclose(torch.diagonal(s, 0)[0], torch.diagonal(s, 3)[0])


def test_swiglu_formula():
    m = _built(SwiGLU)
    x = torch.randn(3, 5, CFG.d_model, dtype=torch.float64)
    a, b = x @ m.w1.weight.T, x @ m.w3.weight.T
    torch.testing.assert_close(m(x), (a * torch.sigmoid(a) * b) @ m.w2.weight.T)
    assert m.w2 is m.out_proj


def test_no_biases_and_out_proj_everywhere():
    for cls in (Attention, SlidingWindowAttention, SwiGLU):
        m = cls(CFG)
        assert isinstance(m.out_proj, torch.nn.Linear)
        assert all(not n.endswith("bias") for n, _ in m.named_parameters())


@pytest.mark.parametrize(
    "changes", [{"n_heads": 5}, {"n_kv_heads": 3}, {"d_model": 36, "n_heads": 12, "n_kv_heads": 12}]
)
def test_bad_head_config_is_a_usage_error(changes):
    with pytest.raises(UsageError):
        Attention(CFG.with_(**changes))


def test_bad_window_is_a_usage_error():
    with pytest.raises(UsageError, match="window >= 1"):
        SlidingWindowAttention(CFG.with_(window=0))


def test_attended_length():
    L, w = 10, 4
    assert attended_length(L, True) == sum(t + 1 for t in range(L)) / L
    assert attended_length(L, False) == L
    assert attended_length(L, True, w) == sum(min(t + 1, w) for t in range(L)) / L
    assert attended_length(L, False, w) == _band(L, w, False).sum().item() / L
    assert attended_length(L, True, 50) == attended_length(L, True)


def test_tables_made_in_inference_mode_train_later():
    m = Attention(CFG.with_(max_seq_len=23))
    with torch.inference_mode():
        m(torch.randn(1, 23, CFG.d_model))
    m(torch.randn(1, 23, CFG.d_model)).sum().backward()  # reuses the cached RoPE tables
    assert m.qkv_proj.weight.grad is not None


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_repeated_kv_heads_equal_grouped(masked):
    from aira.models.primitives.attention import sdpa

    q = torch.randn(2, 6, 9, 8, dtype=torch.float64)
    k, v = torch.randn(2, 3, 9, 8, dtype=torch.float64), torch.randn(2, 3, 9, 8, dtype=torch.float64)
    mask = _band(9, 3, True) if masked else None
    torch.testing.assert_close(
        sdpa(q, k, v, causal=True, mask=mask, expand_kv=True),
        sdpa(q, k, v, causal=True, mask=mask, expand_kv=False),
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: checks the flash / efficient kernels")
def test_cuda_kernels_take_our_attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cfg = CFG.with_(d_model=256, n_heads=8, n_kv_heads=2)
    x = torch.randn(2, 64, 256, device="cuda")
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.autocast("cuda", dtype=torch.bfloat16):
        Attention(cfg).cuda()(x).sum().backward()  # grouped heads, no copy
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        SlidingWindowAttention(cfg.with_(window=8)).cuda()(x).sum().backward()  # fp32, masked
