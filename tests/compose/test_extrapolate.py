"""Stacking and stretching on Composer's worked examples."""

import pytest

from aira.compose.extrapolate import extrapolate, run_length, stack_pattern, stretch_pattern
from aira.errors import UsageError
from aira.models import count_params, get_preset


def test_run_length_and_toy_scaling():
    assert run_length("AAMMMA") == [("A", 2), ("M", 3), ("A", 1)]
    assert stretch_pattern("AAMMMA", 1.5) == "AAA" + "MMMMM" + "AA"  # ceil(3), ceil(4.5), ceil(1.5)
    assert stretch_pattern("AM", 1.0) == "AM"
    assert stack_pattern("AMM", 2.0) == "AMMAMM"
    assert stack_pattern("AMM", 2.5) == "AMMAMM" + "AM"  # partial block: ceil(0.5), ceil(1.0), 2 layers
    assert stack_pattern("AMAM", 1.5) == "AMAM" + "AM"  # stretched by 0.5 then cut to ceil(0.5 * 4)


def test_composer_2a4m_stacked_to_1b_gives_27_layers_with_9_attention():
    e = extrapolate("AAMMMM", "1B", "stack")
    assert len(e.pattern) == 27 and e.pattern.count("A") == 9
    assert e.pattern == "AAMMMM" * 4 + "AMM"
    # M is Llama 3.2 1B without embeddings
    cfg = get_preset("1B").model
    assert e.target_non_embedding == count_params("(AM)x16", cfg, non_embedding=True)
    assert 4 < e.scale < 5
    # the extrapolated model lands near the target size
    assert abs(e.non_embedding_params - e.target_non_embedding) / e.target_non_embedding < 0.1


def test_composer_stretched_composite_to_1b_gives_29_layers_with_10_attention():
    e = extrapolate("AAMMMMMAAMMMAMMM", "1B", "stretch")  # 2A 5M 2A 3M 1A 3M
    assert len(e.pattern) == 29 and e.pattern.count("A") == 10
    assert e.pattern == "AAAA" + "M" * 9 + "AAAA" + "M" * 5 + "AA" + "M" * 5


def test_output_is_a_model_config_with_counts():
    # (AM)x8 against Llama 3.2 3B's (AM)x28: s = 3.5. Stacking gives 3 copies + half a block = (AM)x28;
    # stretching rounds every single-layer run up to 4 and overshoots (why Composer stacks short blocks).
    assert extrapolate("(AM)x8", "3B", "stack").pattern == "AM" * 28
    assert extrapolate("(AM)x8", "3B", "stretch").pattern == "AAAAMMMM" * 8
    d = extrapolate("(AM)x8", "3B", "stack").to_dict()
    assert d["layers"] == 56 and d["params"] == 3_212_749_824
    assert d["flops_per_token"] > 6 * 2.8e9
    assert d["model_config"]["d_model"] == 3072


def test_bad_strategy_and_target():
    with pytest.raises(UsageError, match="strategy"):
        extrapolate("AM", "1B", "smear")
    with pytest.raises(UsageError, match="preset"):
        extrapolate("AM", "7B", "stack")
