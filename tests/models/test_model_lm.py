"""HybridLM: shapes, causality of a mixed pattern, loss with ignored positions, init, tying, build_model."""

import math

import pytest
import torch
import torch.nn.functional as F

from aira.errors import UsageError
from aira.models import HybridLM, build_model, get_preset
from aira.models.config import ModelConfig

CFG = ModelConfig(
    d_model=32,
    n_heads=4,
    n_kv_heads=2,
    ffn_dim=64,
    vocab_size=61,
    max_seq_len=32,
    window=4,
    ssm_state=8,
    ssm_head_dim=8,
    ssm_chunk=8,
)
MIXED = "AMSMWM"


def test_forward_shapes_and_pattern():
    model = build_model(MIXED, CFG)
    idx = torch.randint(0, CFG.vocab_size, (3, 20))
    logits, loss = model(idx)
    assert logits.shape == (3, 20, CFG.vocab_size) and loss is None
    assert model.pattern == MIXED and len(model.blocks) == 6
    assert [type(b.mixer).__name__ for b in model.blocks] == [
        "Attention",
        "SwiGLU",
        "Mamba2",
        "SwiGLU",
        "SlidingWindowAttention",
        "SwiGLU",
    ]


def test_mixed_model_is_causal():
    torch.manual_seed(0)
    model = build_model(MIXED, CFG).double()
    idx = torch.randint(0, CFG.vocab_size, (2, 24))
    idx2 = idx.clone()
    t = 10
    idx2[:, t + 1 :] = (idx2[:, t + 1 :] + 1) % CFG.vocab_size
    a, b = model(idx)[0], model(idx2)[0]
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1], b[:, t + 1])


def test_bidirectional_model_sees_the_future():
    model = build_model(MIXED, CFG.with_(causal=False)).double()
    idx = torch.randint(0, CFG.vocab_size, (1, 16))
    idx2 = idx.clone()
    idx2[:, -1] = (idx2[:, -1] + 1) % CFG.vocab_size
    assert not torch.allclose(model(idx)[0][:, 0], model(idx2)[0][:, 0])


def test_loss_ignores_minus_100():
    torch.manual_seed(0)
    model = build_model("AM", CFG)
    idx = torch.randint(0, CFG.vocab_size, (2, 12))
    answers = torch.randint(0, CFG.vocab_size, (2, 3))
    targets = torch.full_like(idx, -100)
    targets[:, -3:] = answers
    logits, loss = model(idx, targets)
    expected = F.cross_entropy(logits[:, -3:].reshape(-1, CFG.vocab_size), answers.reshape(-1))
    torch.testing.assert_close(loss, expected)
    # an untrained model is close to uniform over unrelated targets
    assert abs(loss.item() - math.log(CFG.vocab_size)) < 0.5


def test_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = build_model(MIXED, CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    idx = torch.randint(0, CFG.vocab_size, (4, 16))
    first = None
    for _ in range(15):
        _, loss = model(idx, idx.roll(-1, dims=1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first - 0.5


def test_tied_and_untied_head():
    tied = build_model("AM", CFG)
    assert tied.lm_head.weight is tied.embed.weight
    untied = build_model("AM", CFG.with_(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.embed.weight
    assert untied.num_params() - tied.num_params() == CFG.vocab_size * CFG.d_model
    assert untied.num_params(non_embedding=True) == tied.num_params(non_embedding=True)


def test_scaled_residual_init():
    cfg = ModelConfig(
        d_model=256,
        n_heads=4,
        n_kv_heads=4,
        ffn_dim=512,
        vocab_size=512,
        max_seq_len=16,
        init_std=0.02,
        ssm_state=16,
        ssm_head_dim=64,
    )
    model = build_model("(AMSW)x2", cfg.with_(tie_embeddings=False))
    n = len(model.blocks)
    out_std = 0.02 / math.sqrt(2 * n)
    for block in model.blocks:
        assert block.mixer.out_proj.weight.std().item() == pytest.approx(out_std, rel=0.05)
    assert model.blocks[0].mixer.qkv_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[1].mixer.w1.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.lm_head.weight.std().item() == pytest.approx(0.02, rel=0.05)
    # Mamba's own parameters keep their init (A_log is not a normal(0, 0.02) draw)
    mamba = model.blocks[2].mixer
    assert mamba.A_log.abs().mean().item() > 0.1


def test_build_model_resolves_presets_and_overrides():
    model = build_model("(AM)x2", "tiny", vocab_size=11, window=8)
    assert model.cfg.vocab_size == 11 and model.cfg.window == 8
    assert model.cfg.d_model == get_preset("tiny").model.d_model
    assert build_model("A", get_preset("mad")).cfg == get_preset("mad").model
    assert isinstance(build_model("M", CFG), HybridLM)
    with pytest.raises(UsageError, match="unknown model setting"):
        build_model("AM", "tiny", widht=3)
    with pytest.raises(UsageError, match="unknown preset"):
        build_model("AM", "huge")
    with pytest.raises(UsageError, match="valid codes"):
        build_model("AX", "tiny")


def test_compiles_without_graph_breaks():
    # torch.compile is the GPU fast path; the eager backend checks tracing only (no C++ toolchain needed).
    import torch._dynamo as dynamo

    torch.manual_seed(0)
    model = build_model("AW", CFG)
    idx = torch.randint(0, CFG.vocab_size, (2, 12))
    explained = dynamo.explain(model)(idx, idx)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    torch.testing.assert_close(torch.compile(model, backend="eager")(idx, idx)[1], model(idx, idx)[1])
