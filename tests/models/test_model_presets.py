"""Presets: the size dial, Llama 3.2 widths, lookup errors."""

import pytest

from aira.errors import UsageError
from aira.models import PRESETS, Preset, build_model, count_params, get_preset


def test_names_and_lookup():
    assert list(PRESETS) == ["tiny", "mad", "small", "350M", "1B", "3B"]
    assert get_preset("1b") is PRESETS["1B"] and get_preset(" tiny ") is PRESETS["tiny"]
    with pytest.raises(UsageError) as e:
        get_preset("2B")
    assert "tiny, mad, small, 350M, 1B, 3B" in str(e.value)


def test_llama_widths():
    one, three = get_preset("1B").model, get_preset("3B").model
    assert (one.d_model, one.n_heads, one.n_kv_heads, one.ffn_dim, one.vocab_size) == (
        2048,
        32,
        8,
        8192,
        128256,
    )
    assert one.rope_theta == 500_000 and one.tie_embeddings
    assert (three.d_model, three.n_heads, three.n_kv_heads, three.ffn_dim, three.vocab_size) == (
        3072,
        24,
        8,
        8192,
        128256,
    )
    assert three.tie_embeddings and three.head_dim == 128


def test_size_dial_is_monotone_and_hits_its_targets():
    sizes = [count_params(p.baseline, p.model) for p in PRESETS.values()]
    assert sizes == sorted(sizes)
    small = get_preset("small")
    assert 45e6 < count_params("(AM)x8", small.model, non_embedding=True) < 55e6
    assert 330e6 < count_params(get_preset("350M").baseline, get_preset("350M").model) < 370e6
    assert get_preset("mad").model.d_model == 128 and get_preset("mad").seq_len == 128
    assert len(build_model(get_preset("mad").baseline, "mad").blocks) == 16


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=lambda p: p.name)
def test_presets_are_consistent(preset: Preset):
    m = preset.model
    assert m.d_model % m.n_heads == 0 and m.n_heads % m.n_kv_heads == 0 and m.head_dim % 2 == 0
    assert (m.ssm_expand * m.d_model) % m.ssm_head_dim == 0
    assert m.max_seq_len == preset.seq_len and preset.tokens_per_step == preset.batch_size * preset.seq_len
    assert 0 < preset.lr < 0.01 and preset.warmup_steps >= 0 and preset.description


def test_tiny_builds_every_primitive():
    import torch

    model = build_model("AMSW", "tiny")
    logits, loss = model(torch.randint(0, 256, (2, 64)), torch.randint(0, 256, (2, 64)))
    assert logits.shape == (2, 64, 256) and loss.isfinite()
