"""Contract checks catch broken attention modules with one clear line; every library mechanism passes."""

import re
import textwrap

import pytest
import torch

from aira.tasks.lra.contract import check_attention, validate_settings
from aira.tasks.lra.mechanisms import MECHANISMS, path
from aira.tasks.lra.model import ContractError, LraClassifier, load_attention
from aira.tasks.lra.presets import get_preset

HEADER = "import torch\nimport torch.nn as nn\n\n"


def module_file(tmp_path, body: str, name: str = "attention.py"):
    f = tmp_path / name
    f.write_text(HEADER + textwrap.dedent(body))
    return f


def check(tmp_path, body, **kw):
    cls = load_attention(module_file(tmp_path, body))
    args = dict(d_model=16, n_heads=2, max_len=32, length=24) | kw
    return check_attention(cls, **args)


GOOD_INIT = """
class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
"""


@pytest.mark.parametrize("forward, expected", [
    ("return self.proj(x)[..., :-1]", r"output shape: expected \(2, 24, 16\) \(B, L, D\), got \(2, 24, 15\)"),
    ("return self.proj(x) * float('nan')", r"non-finite output: expected all finite, got 768 NaN/inf"),
    ("return self.proj(x) + x.mean(1, keepdim=True)", r"padding leak: changing padded inputs"),
    ("return self.proj(x) + torch.sqrt(x - x)", r"backward: expected a finite gradient"),
    ("return [x]", r"output shape: expected .* got list"),
    ("raise RuntimeError('boom')", r"forward raised RuntimeError: boom"),
])
def test_broken_forward_is_caught(tmp_path, forward, expected):
    rep = check(tmp_path, GOOD_INIT + f"\n    def forward(self, x, key_padding_mask):\n        {forward}\n")
    assert not rep.ok
    assert any(re.search(expected, f) for f in rep.failures), rep.failures


def test_masked_mean_does_not_leak(tmp_path):
    body = GOOD_INIT + """
    def forward(self, x, key_padding_mask):
        keep = (~key_padding_mask).unsqueeze(-1).float()
        return self.proj(x) + (x * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True)
"""
    assert check(tmp_path, body).ok


def test_parameter_and_flop_caps(tmp_path):
    body = """
class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, **kwargs):
        super().__init__()
        self.w = nn.Parameter(torch.randn(d_model, 4096) * 0.01)

    def forward(self, x, key_padding_mask):
        return (x @ self.w) @ self.w.T
"""
    rep = check(tmp_path, body, max_params=10_000, max_flops_per_token=1e5)
    assert f"parameter cap: expected <= 10,000 parameters, got {16 * 4096:,}" in rep.failures
    assert rep.flops_per_token == pytest.approx(2 * 2 * 16 * 4096)
    assert any(f.startswith("FLOP cap: expected <= 1e+05 forward FLOPs per token at length 32, got 2.62e+05")
               for f in rep.failures)
    with pytest.raises(ContractError, match="parameter cap"):
        rep.raise_if_failed()


def test_softmax_flops_include_the_attention_kernel():
    rep = check_attention(load_attention(path("softmax")), d_model=32, n_heads=4, max_len=100)
    projections = 2 * 32 * 96 + 2 * 32 * 32
    assert rep.flops_per_token == pytest.approx(projections + 4 * 100 * 32)
    conv = check_attention(load_attention(path("longconv")), d_model=32, n_heads=4, max_len=100)
    assert conv.flops_per_token > 2 * 32 * 64 + 2 * 32 * 32 + 32 * 5 * 3 * 256 / 100  # FFTs are counted


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ContractError, match=r"importing bad.py failed \(line 4\): SyntaxError"):
        load_attention(module_file(tmp_path, "def broken(:\n", name="bad.py"))
    with pytest.raises(ContractError, match=r"must define `class Attention\(nn.Module\)`"):
        load_attention(module_file(tmp_path, "class Attn(nn.Module):\n    pass\n", name="none.py"))
    rep = check(tmp_path, "class Attention(nn.Module):\n    def __init__(self, dim):\n"
                          "        super().__init__()\n")
    assert rep.failures[0].startswith(
        "construction failed: Attention(d_model=16, n_heads=2, max_len=32) raised TypeError")


@pytest.mark.parametrize("name", list(MECHANISMS))
def test_every_library_mechanism_passes_and_trains_in_the_frozen_model(name):
    cls = load_attention(path(name))
    rep = check_attention(cls, d_model=32, n_heads=4, max_len=80, length=70, max_params=50_000,
                          max_flops_per_token=1e6)
    assert rep.ok, rep.failures
    model = LraClassifier(cls, n_classes=3, pair=True, vocab_size=20, max_len=80, d_model=32, n_layers=1,
                          n_heads=4, mlp_dim=64)
    x = torch.randint(1, 20, (3, 50))
    x[0, 30:] = 0
    x[1] = 0  # an empty document must not produce NaN
    logits = model(x, x.flip(0))
    assert logits.shape == (3, 3) and torch.isfinite(logits).all()
    logits.sum().backward()


def test_softmax_matches_a_plain_reference():
    torch.manual_seed(0)
    cls = load_attention(path("softmax"))
    m = cls(d_model=8, n_heads=2, max_len=10)
    x = torch.randn(1, 5, 8)
    mask = torch.tensor([[False, False, False, True, True]])
    q, k, v = m.qkv(x).view(1, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-1, -2)) / 2.0
    scores[..., 3:] = float("-inf")
    ref = m.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 5, 8))
    torch.testing.assert_close(m(x, mask), ref, atol=1e-5, rtol=1e-5)


def test_settings_are_validated_against_caps():
    p = get_preset("lra-listops", "cpu")
    s = validate_settings('{"d_model": 96, "n_heads": 4, "lr": 0.001, "attention_kwargs": {"window": 8}}', p)
    assert (s.d_model, s.n_heads, s.lr, s.n_layers, s.attention_kwargs) == (96, 4, 0.001, 2, {"window": 8})
    assert validate_settings(None, p) == p.defaults
    for bad, msg in [('{"d_model": 4096}', r"d_model must be in \[8, 128\], got 4096"),
                     ('{"depth": 3}', "unknown key"),
                     ('{"n_layers": 2.5}', "n_layers must be an integer"),
                     ('{"d_model": 100, "n_heads": 8}', "divisible by n_heads"),
                     ("{not json", "not valid JSON"),
                     ('{"attention_kwargs": {"f": [1]}}', "JSON scalars")]:
        with pytest.raises(ContractError, match=msg):
            validate_settings(bad, p)


def test_local_window_matches_a_banded_full_softmax():
    torch.manual_seed(0)
    m = load_attention(path("local"))(d_model=8, n_heads=2, max_len=32, window=4)
    x = torch.randn(2, 19, 8)
    mask = torch.zeros(2, 19, dtype=torch.bool)
    mask[1, 13:] = True
    q, k, v = m.qkv(x).view(2, 19, 3, 2, 4).permute(2, 0, 3, 1, 4)
    idx = torch.arange(19)
    allowed = ((idx[:, None] - idx[None, :]).abs() <= 4)[None, None] & ~mask[:, None, None, :]
    scores = (q @ k.transpose(-1, -2) / 2.0).masked_fill(~allowed, float("-inf"))
    ref = m.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 19, 8))
    keep = ~mask
    torch.testing.assert_close(m(x, mask)[keep], ref[keep], atol=1e-5, rtol=1e-5)
