"""Layer-pattern parsing, formatting, compression and error messages."""

import random
import re

import pytest

from aira.errors import UsageError
from aira.models.pattern import compress_pattern, format_pattern, parse_pattern, ratios


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AMAMSMAM", list("AMAMSMAM")),
        ("amsw", list("AMSW")),
        ("attn,mlp,mamba", ["A", "M", "S"]),
        ("attn mlp  MAMBA, swa", ["A", "M", "S", "W"]),
        ("(AM)x3", list("AMAMAM")),
        ("(AM)x2S(AM)x3", list("AMAMSAMAMAM")),
        ("A (M)x3", list("AMMM")),
        ("((AM)x2 S)x2", list("AMAMSAMAMS")),
        ("(attn, mlp) X 2", list("AMAM")),
        ("(AM)*2", list("AMAM")),
        (["A", "mlp", "S"], ["A", "M", "S"]),
        ("SWA", ["S", "W", "A"]),  # upper-case codes win over the name "swa"
        ("swa Mamba", ["W", "S"]),
        (["(AM)x2"], list("AMAM")),
    ],
)
def test_parse_accepts_every_form(text, expected):
    assert parse_pattern(text) == expected


def test_sixteen_layer_repeat():
    codes = parse_pattern("(AM)x16")
    assert len(codes) == 32 and codes[:2] == ["A", "M"] and codes[-1] == "M"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty pattern"),
        ("  , ", "empty pattern"),
        ("AQM", "unknown primitive 'AQM'"),
        ("attn,mlpx", "unknown primitive 'mlpx'"),
        ("(AM", "unbalanced '('"),
        ("AM)x2", "unbalanced ')'"),
        ("(AM)", "repeat count"),
        ("(AM)x", "missing repeat count"),
        ("(AM)x0", ">= 1"),
        ("()x3", "empty group"),
        ("A-M", "unexpected character '-'"),
        (["A", 3], "must hold strings"),
    ],
)
def test_invalid_patterns_name_the_problem_and_list_codes(text, why):
    with pytest.raises(UsageError) as e:
        parse_pattern(text)
    msg = str(e.value)
    assert why in msg
    assert "A (attn)" in msg and "M (mlp)" in msg and "S (mamba)" in msg and "W (swa)" in msg
    assert "\n" not in msg


def test_max_layers():
    assert len(parse_pattern("(AM)x8", max_layers=16)) == 16
    with pytest.raises(UsageError, match="17 layers is more than the maximum of 16"):
        parse_pattern("(AM)x8A", max_layers=16)


def test_format_and_compress():
    codes = parse_pattern("(AM)x16")
    assert format_pattern(codes) == "AM" * 16
    assert compress_pattern(codes) == "(AM)x16"
    assert compress_pattern(list("AMMM")) == "A (M)x3"
    assert compress_pattern(list("AMAMSAMAMAM")) == "(AM)x2 S (AM)x3"
    assert compress_pattern(list("AMS")) == "AMS"
    assert compress_pattern(list("AAAAMMMM")) == "(A)x4 (M)x4"
    assert compress_pattern(list("AWWS")) == "AWWS"  # a bracket for two layers saves nothing


def test_compress_round_trips_random_patterns():
    rng = random.Random(0)
    for _ in range(200):
        codes = [rng.choice("AMSW") for _ in range(rng.randint(1, 40))]
        if rng.random() < 0.5:  # make repeats likely
            codes = codes[: rng.randint(1, 4)] * rng.randint(2, 6)
        text = compress_pattern(codes)
        assert parse_pattern(text) == codes, text
        assert not re.search(r"\(\w\)x2\b", text), text  # never a bracket around two layers


def test_ratios():
    r = ratios(parse_pattern("AAMMMS"))
    assert r == pytest.approx({"A": 2 / 6, "M": 3 / 6, "S": 1 / 6})
    assert list(r) == ["A", "M", "S"]
    assert sum(ratios(list("AMWW")).values()) == pytest.approx(1.0)
