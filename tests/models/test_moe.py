"""The mixture-of-experts MLP (E): dispatch against the dense reference, the load-balancing loss by hand,
and the auxiliary loss reaching the training loss."""

import math

import pytest
import torch

from aira.models import build_model
from aira.models.config import ModelConfig
from aira.models.primitives.moe import MoESwiGLU, moe_dense, route

CFG = ModelConfig(d_model=16, n_heads=2, n_kv_heads=1, ffn_dim=24, vocab_size=31, max_seq_len=16,
                  moe_experts=4, moe_top_k=2)


def test_load_balancing_loss_by_hand():
    # 4 tokens, 2 experts, top-1: probabilities per token
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    gates, chosen, aux = route(probs.log(), top_k=1)
    assert chosen[:, 0].tolist() == [0, 0, 1, 0] and gates.flatten().tolist() == [1.0] * 4
    # f = (3/4, 1/4), P = mean probabilities = (0.65, 0.35): aux = 2 (0.75 * 0.65 + 0.25 * 0.35) = 1.15
    assert aux.item() == pytest.approx(1.15, rel=1e-6)
    # top-2 of 3 experts: every token picks 2 of 3, gates renormalised over the two
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    gates, chosen, aux = route(probs.log(), top_k=2)
    assert chosen.tolist() == [[0, 1], [1, 2]]
    torch.testing.assert_close(gates, torch.tensor([[0.625, 0.375], [2 / 3, 1 / 3]]))
    # f = (1, 2, 1) / 4, P = (0.3, 0.45, 0.25): aux = 3 (0.075 + 0.225 + 0.0625) = 1.0875
    assert aux.item() == pytest.approx(1.0875, rel=1e-6)


def test_balanced_routing_scores_one():
    logits = torch.eye(3).repeat(2, 1) * 5  # each expert the favourite of two tokens
    _, _, aux = route(logits, top_k=1)
    p = torch.softmax(logits, -1).mean(0)
    assert aux.item() == pytest.approx(3 * (p / 3).sum().item()) == pytest.approx(1.0)


def test_dispatch_equals_the_dense_reference_and_a_per_token_loop():
    torch.manual_seed(0)
    layer = MoESwiGLU(CFG).double()
    x = torch.randn(3, 7, CFG.d_model, dtype=torch.float64)
    y, aux = layer.forward_aux(x)
    flat = x.reshape(-1, CFG.d_model)
    gates, chosen, aux_ref = route(layer.router(flat), CFG.moe_top_k)
    dense = moe_dense(flat, gates.double(), chosen, layer.experts).reshape(x.shape)
    torch.testing.assert_close(y, dense, rtol=1e-12, atol=1e-12)
    assert aux.item() == pytest.approx(CFG.moe_aux_coef * aux_ref.item(), rel=1e-12)
    # per token, by hand: softmax, top 2, renormalise, weighted experts
    for n in range(flat.shape[0]):
        p = torch.softmax(layer.router(flat[n]), -1)
        top, idx = p.topk(2)
        want = sum(w / top.sum() * layer.experts[e](flat[n]) for w, e in zip(top, idx.tolist()))
        torch.testing.assert_close(y.reshape(-1, CFG.d_model)[n], want, rtol=1e-10, atol=1e-12)


def test_gradients_of_dispatch_and_dense_agree():
    torch.manual_seed(1)
    layer = MoESwiGLU(CFG).double()
    x = torch.randn(2, 5, CFG.d_model, dtype=torch.float64)
    y, aux = layer.forward_aux(x)
    g1 = torch.autograd.grad((y.square().sum() + aux), list(layer.parameters()))
    flat = x.reshape(-1, CFG.d_model)
    gates, chosen, aux_ref = route(layer.router(flat), CFG.moe_top_k)
    y2 = moe_dense(flat, gates.double(), chosen, layer.experts)
    g2 = torch.autograd.grad(y2.square().sum() + CFG.moe_aux_coef * aux_ref, list(layer.parameters()))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_auxiliary_loss_reaches_the_training_loss_only():
    torch.manual_seed(0)
    cfg = CFG.with_(moe_aux_coef=0.5)
    model = build_model("AEME", cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, 9))
    model.eval()
    _, ce = model(idx, idx)
    model.train()
    _, loss = model(idx, idx)
    x, aux = model.embed(idx), 0.0
    for block in model.blocks:
        x, a = block(x)
        aux = aux + (0.0 if a is None else a)
    assert isinstance(aux, torch.Tensor) and aux.item() > 0
    assert loss.item() == pytest.approx(ce.item() + aux.item(), rel=1e-6)
    # each E layer's aux is coef * E sum f P >= coef (its minimum, at balance)
    assert aux.item() >= 2 * 0.5 - 1e-6
    # the router learns from it: its gradient changes with the coefficient
    loss.backward()
    g_router = model.blocks[1].mixer.router.weight.grad.clone()
    model.zero_grad()
    model.blocks[1].mixer.aux_coef = model.blocks[3].mixer.aux_coef = 0.0
    model(idx, idx)[1].backward()
    assert not torch.allclose(g_router, model.blocks[1].mixer.router.weight.grad)
    assert math.isfinite(loss.item())


def test_bad_settings_are_refused():
    from aira.errors import UsageError

    with pytest.raises(UsageError, match="moe_top_k"):
        MoESwiGLU(CFG.with_(moe_top_k=5))
