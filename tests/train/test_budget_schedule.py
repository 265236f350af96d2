import math

import pytest

from aira.errors import UsageError
from aira.train.budget import TrainBudget, parse_budget
from aira.train.trainer import lr_factor


@pytest.mark.parametrize("text,kind,amount", [
    ("60s", "seconds", 60), ("2m", "seconds", 120), ("1h", "seconds", 3600), ("1.5 min", "seconds", 90),
    ("500steps", "steps", 500), ("300", "steps", 300), ("2M tokens", "tokens", 2e6),
    ("500k tok", "tokens", 5e5), ("3k steps", "steps", 3000),
])
def test_parse_budget(text, kind, amount):
    b = parse_budget(text)
    assert (b.kind, b.amount) == (kind, amount)


@pytest.mark.parametrize("text", ["", "abc", "10 parsecs", "0s", "-5s", "2k s"])
def test_parse_budget_rejects(text):
    with pytest.raises(UsageError):
        parse_budget(text)


def test_progress_uses_budget_unit():
    b = TrainBudget("tokens", 1000)
    assert b.progress(seconds=1e9, steps=10**6, tokens=250) == 0.25
    assert b.progress(seconds=0, steps=0, tokens=5000) == 1.0


def test_cosine_schedule_shape():
    # warmup rises linearly, peak right after warmup, ends at the floor
    assert lr_factor(0.025, "cosine", 0.05, 0.1) == pytest.approx(0.5)
    assert lr_factor(0.05, "cosine", 0.05, 0.1) == pytest.approx(1.0)
    assert lr_factor(1.0, "cosine", 0.05, 0.1) == pytest.approx(0.1)
    mid = 0.05 + 0.95 / 2
    assert lr_factor(mid, "cosine", 0.05, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    xs = [lr_factor(p / 100, "cosine", 0.05, 0.1) for p in range(5, 101)]
    assert all(a >= b for a, b in zip(xs, xs[1:]))


def test_wsd_schedule_shape():
    assert lr_factor(0.5, "wsd", 0.05, 0.0) == 1.0
    assert lr_factor(0.9, "wsd", 0.05, 0.0) == pytest.approx(0.5)
    assert math.isclose(lr_factor(1.0, "wsd", 0.05, 0.0), 0.0, abs_tol=1e-12)
