"""Prices, the cost ledger and its cap, and the back-off schedule."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time

import pytest

from aira.agents.llm import BudgetExceeded, CostLedger, cost_usd, load_prices, pricing, register_price
from aira.agents.llm.retry import RetryPolicy, parse_retry_after
from aira.agents.types import Completion
from aira.errors import UsageError


@pytest.fixture(autouse=True)
def fresh_prices(monkeypatch):
    """Each test sees the built-in table only (and the env file it sets itself)."""
    monkeypatch.delenv("AIRA_PRICES", raising=False)
    monkeypatch.setattr(pricing, "_prices", {})
    monkeypatch.setattr(pricing, "_warned", set())
    monkeypatch.setattr(pricing, "_env_loaded", False)


@pytest.mark.parametrize("model, expected", [
    ("claude-opus-4-5", 1000 * 5e-6 + 100 * 25e-6),
    ("claude-opus-4-5-20251101", 1000 * 5e-6 + 100 * 25e-6),   # dated snapshot
    ("anthropic/claude-sonnet-4.5", 1000 * 3e-6 + 100 * 15e-6),  # OpenRouter spelling
    ("gpt-5-mini-2025-08-07", 1000 * 0.25e-6 + 100 * 2e-6),
    ("gpt-4.1", 1000 * 2e-6 + 100 * 8e-6),
])
def test_builtin_prices(model, expected):
    assert cost_usd(model, 1000, 100) == pytest.approx(expected)


def test_unknown_model_costs_zero_and_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="aira.llm"):
        assert cost_usd("my-local-llama", 10**6, 10**6) == 0.0
        assert cost_usd("my-local-llama", 5, 5) == 0.0
    assert caplog.text.count("no price known for model 'my-local-llama'") == 1
    # the requested name is the fallback when the response names an unknown snapshot
    assert cost_usd("gpt-5-experimental-x", 10**6, 0, alias="gpt-5") == pytest.approx(1.25)


def test_register_price_and_price_files(tmp_path, monkeypatch):
    register_price("my-local-llama", 0.1, 0.2)
    assert cost_usd("my-local-llama", 10**6, 10**6) == pytest.approx(0.3)
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"gpt-5": [2, 20], "tiny": {"input": 1, "output": 3}}))
    monkeypatch.setenv("AIRA_PRICES", str(f))
    monkeypatch.setattr(pricing, "_env_loaded", False)
    assert cost_usd("gpt-5", 10**6, 10**6) == pytest.approx(22.0)  # the file overrides the table
    assert cost_usd("tiny", 10**6, 10**6) == pytest.approx(4.0)
    assert load_prices(f) == 2


@pytest.mark.parametrize("content, reason", [
    ("{not json", "is not valid JSON"),
    ('["gpt-5"]', "must hold a JSON object"),
    ('{"m": [1]}', "'m' needs [input, output] USD per million tokens"),
    ('{"m": [-1, 2]}', "must not be negative"),
])
def test_bad_price_files(tmp_path, content, reason):
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(UsageError) as e:
        load_prices(f)
    assert reason in str(e.value)
    with pytest.raises(UsageError, match="cannot read the price file"):
        load_prices(tmp_path / "missing.json")


def _c(cost: float) -> Completion:
    return Completion(text="", model="m", input_tokens=3, output_tokens=1, cost_usd=cost)


def test_ledger_cap():
    ledger = CostLedger(cap_usd=1.0)
    ledger.check()
    ledger.charge(_c(0.6))
    ledger.check()  # 0.6 < 1.0: still allowed
    with pytest.raises(BudgetExceeded) as e:
        ledger.charge(_c(0.6))
    assert (e.value.spent, e.value.cap) == (pytest.approx(1.2), 1.0) and ledger.calls == 2
    with pytest.raises(BudgetExceeded):
        ledger.check()
    s = ledger.summary()
    assert s["input_tokens"] == 6 and s["output_tokens"] == 2 and ledger.remaining == 0.0
    # reaching the cap exactly is not "passing" it, but the next call is refused
    exact = CostLedger(cap_usd=0.5)
    exact.charge(_c(0.5))
    with pytest.raises(BudgetExceeded):
        exact.check()
    assert CostLedger().remaining is None


def test_ledger_is_thread_safe():
    ledger = CostLedger()

    def work():
        for _ in range(2000):
            ledger.charge(_c(0.001))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.calls == 8000 and ledger.spent == pytest.approx(8.0)


def test_backoff_grows_with_jitter_and_caps():
    p = RetryPolicy(base_s=1.0, max_s=8.0, rng=random.Random(0))
    for retry, (lo, hi) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8), (4, 8), (4, 8)]):
        d = [p.delay(retry) for _ in range(50)]
        assert lo <= min(d) and max(d) <= hi and len(set(d)) > 1  # jittered, within the step
    assert p.delay(3, retry_after=2.5) == 2.5
    assert p.delay(0, retry_after=10_000) == p.max_retry_after_s


def test_parse_retry_after():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({}) is None and parse_retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"retry-after": date}) <= 31


def test_bad_price_file_stops_make_llm_before_any_call(tmp_path, monkeypatch):
    from aira.agents.llm import make_llm

    bad = tmp_path / "prices.json"
    bad.write_text('{"gpt-5": "cheap"}')
    monkeypatch.setenv("AIRA_PRICES", str(bad))
    replay = tmp_path / "r.jsonl"
    replay.write_text('{"text": "x"}\n')
    with pytest.raises(UsageError, match="'gpt-5' needs"):
        make_llm(f"replay:{replay}")
    assert make_llm("offline") is None  # the offline path needs no prices
