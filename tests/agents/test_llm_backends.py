"""The real SDK clients against the fake servers: what is sent, what is parsed, retries, errors."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_servers import FakeServer, anthropic_error, anthropic_ok, openai_error, openai_ok

from aira.agents.llm import BudgetExceeded, CostLedger, LLMAuthError, LLMError, is_offline, make_llm
from aira.errors import UsageError

ENV = ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
       "OPENAI_COMPATIBLE_API_KEY", "AIRA_PRICES"]
MSGS = [{"role": "user", "content": "Propose a pattern."}]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    with FakeServer() as s:
        yield s


class Sleeps(list):
    def __call__(self, s: float) -> None:
        self.append(s)


def anthropic_llm(monkeypatch, server, **kw):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    return make_llm("anthropic/claude-haiku-4-5", timeout_s=5, **kw)


def openai_llm(monkeypatch, server, **kw):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oai-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/v1")
    return make_llm("openai/gpt-5", timeout_s=5, **kw)


def test_anthropic_request_and_completion(monkeypatch, server):
    server.push(anthropic_ok("AMAM", input_tokens=1000, output_tokens=200, thinking="hmm"))
    ledger = CostLedger()
    llm = anthropic_llm(monkeypatch, server, ledger=ledger)
    c = llm.complete(MSGS, system="You design architectures.", max_tokens=321, temperature=0.5)
    (req,) = server.requests
    assert req.path == "/v1/messages"
    # SDK 2.x sends the key as a bearer token, older ones as x-api-key
    assert (req.headers.get("x-api-key") == "sk-ant-test"
            or req.headers.get("authorization") == "Bearer sk-ant-test")
    assert req.body["model"] == "claude-haiku-4-5"
    assert req.body["system"] == "You design architectures."
    assert req.body["messages"] == MSGS
    assert req.body["max_tokens"] == 321
    # temperature is sent only where the installed SDK still has the parameter
    assert req.body.get("temperature", 0.5) == 0.5
    assert c.text == "AMAM"  # the thinking block is not part of the answer
    assert c.model == "claude-haiku-4-5-20251001"
    assert (c.input_tokens, c.output_tokens) == (1000, 200)
    # $1 / $5 per million tokens: 1000 * 1e-6 + 200 * 5e-6
    assert c.cost_usd == pytest.approx(0.002)
    assert c.seconds > 0 and llm.spec == "anthropic/claude-haiku-4-5"
    assert ledger.calls == 1 and ledger.spent == pytest.approx(0.002)


def test_system_turns_in_messages_join_the_system_prompt(monkeypatch, server):
    server.push(anthropic_ok("ok"))
    llm = anthropic_llm(monkeypatch, server)
    llm.complete([{"role": "system", "content": "Rules."}] + MSGS, system="Role.")
    body = server.requests[0].body
    assert body["system"] == "Role.\n\nRules." and body["messages"] == MSGS


def test_openai_request_and_completion(monkeypatch, server):
    server.push(openai_ok("AMMA", prompt_tokens=2000, completion_tokens=1000))
    llm = openai_llm(monkeypatch, server)
    c = llm.complete(MSGS, system="sys", max_tokens=77)
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-oai-test"
    assert req.body["model"] == "gpt-5"
    assert req.body["messages"] == [{"role": "system", "content": "sys"}] + MSGS
    assert req.body["max_completion_tokens"] == 77
    assert "temperature" not in req.body  # 1.0 is the default; reasoning models reject it
    assert c.text == "AMMA" and (c.input_tokens, c.output_tokens) == (2000, 1000)
    assert c.cost_usd == pytest.approx(2000 * 1.25e-6 + 1000 * 10e-6)


def test_openai_compatible_local_server(monkeypatch, server, caplog):
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "local-key")
    server.push(openai_ok(None, model="qwen3-8b", usage=False))
    llm = make_llm(f"openai-compatible/Qwen/Qwen3-8B@{server.base_url}/v1", timeout_s=5)
    with caplog.at_level(logging.WARNING, logger="aira.llm"):
        c = llm.complete(MSGS, max_tokens=50, temperature=1.0)
    req = server.requests[0]
    assert req.headers["authorization"] == "Bearer local-key"
    assert req.body["model"] == "Qwen/Qwen3-8B"
    assert req.body["max_tokens"] == 50 and req.body["temperature"] == 1.0
    # null content and no usage block: an empty, free completion, and a warning about the price
    assert (c.text, c.input_tokens, c.cost_usd) == ("", 0, 0.0)
    assert "no price known" in caplog.text


def test_compatible_key_defaults_to_none(monkeypatch, server):
    server.push(openai_ok("x"))
    make_llm(f"openai-compatible/llama3@{server.base_url}/v1", timeout_s=5).complete(MSGS)
    assert server.requests[0].headers["authorization"] == "Bearer none"


def test_429_with_retry_after_then_success(monkeypatch, server, caplog):
    server.push(anthropic_error(429, "rate limited", "rate_limit_error", {"retry-after": "7"}),
                anthropic_ok("second", input_tokens=100, output_tokens=10,
                                                                     model="claude-haiku-4-5"))
    sleeps, ledger = Sleeps(), CostLedger()
    llm = anthropic_llm(monkeypatch, server, ledger=ledger, sleep=sleeps)
    with caplog.at_level(logging.WARNING, logger="aira.llm"):
        c = llm.complete(MSGS)
    assert sleeps == [7.0] and len(server.requests) == 2
    assert c.text == "second" and (c.input_tokens, c.output_tokens) == (100, 10)
    assert ledger.calls == 1 and ledger.spent == pytest.approx(100 * 1e-6 + 10 * 5e-6)
    assert "HTTP 429" in caplog.text and "retry 1/5" in caplog.text


def test_5xx_backs_off_exponentially_then_succeeds(monkeypatch, server):
    server.push(openai_error(500, "boom"), openai_error(503, "busy"), openai_ok("fine"))
    sleeps = Sleeps()
    c = openai_llm(monkeypatch, server, sleep=sleeps).complete(MSGS)
    assert c.text == "fine" and len(server.requests) == 3
    # equal jitter around base 1 s, doubled: [0.5, 1] then [1, 2]
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_retries_are_bounded(monkeypatch, server):
    server.push(*[anthropic_error(529, "overloaded", "overloaded_error")] * 3)
    sleeps = Sleeps()
    llm = anthropic_llm(monkeypatch, server, sleep=sleeps, max_retries=2)
    with pytest.raises(LLMError, match=r"gave up after 3 attempts \(HTTP 529: overloaded\)") as e:
        llm.complete(MSGS)
    assert e.value.status == 529 and len(sleeps) == 2 and len(server.requests) == 3


def test_401_fails_at_once_with_clear_message(monkeypatch, server):
    server.push(anthropic_error(401, "invalid x-api-key", "authentication_error"), anthropic_ok("never"))
    sleeps = Sleeps()
    llm = anthropic_llm(monkeypatch, server, sleep=sleeps)
    with pytest.raises(LLMAuthError) as e:
        llm.complete(MSGS)
    assert str(e.value) == ("anthropic/claude-haiku-4-5: the API rejected the credentials "
                            "(HTTP 401: invalid x-api-key); check ANTHROPIC_API_KEY")
    assert isinstance(e.value, UsageError)  # the CLI prints it on one line, exit code 2
    assert sleeps == [] and len(server.requests) == 1


def test_400_is_not_retried(monkeypatch, server):
    server.push(openai_error(400, "max_tokens is too large", "invalid_request_error"))
    sleeps = Sleeps()
    with pytest.raises(LLMError, match=r"request failed \(HTTP 400: max_tokens is too large\)") as e:
        openai_llm(monkeypatch, server, sleep=sleeps).complete(MSGS)
    assert not isinstance(e.value, UsageError) and sleeps == []


def test_connection_refused_is_retried_then_fails(monkeypatch):
    with FakeServer() as dead:
        url = dead.base_url
    sleeps = Sleeps()
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    llm = make_llm(f"openai-compatible/m@{url}/v1", timeout_s=2, max_retries=2, sleep=sleeps)
    with pytest.raises(LLMError, match="gave up after 3 attempts.*connection failed") as e:
        llm.complete(MSGS)
    assert e.value.status is None and len(sleeps) == 2


def test_timeout_is_retried(monkeypatch, server, caplog):
    slow = openai_ok("late")
    slow.delay_s = 1.0
    server.push(slow, openai_ok("on time"))
    sleeps = Sleeps()
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    llm = make_llm(f"openai-compatible/m@{server.base_url}/v1", timeout_s=0.2, sleep=sleeps)
    with caplog.at_level(logging.WARNING, logger="aira.llm"):
        assert llm.complete(MSGS).text == "on time"
    assert len(sleeps) == 1 and len(server.requests) == 2
    assert "no response: timed out" in caplog.text


def test_ledger_cap_refuses_calls(monkeypatch, server):
    server.push(*[anthropic_ok("x", input_tokens=1_000_000, output_tokens=0)] * 2)
    ledger = CostLedger(cap_usd=1.5)
    llm = anthropic_llm(monkeypatch, server, ledger=ledger)
    llm.complete(MSGS)  # $1
    with pytest.raises(BudgetExceeded) as e:  # $2 > $1.5: charged, then raised
        llm.complete(MSGS)
    assert e.value.completion.text == "x" and ledger.spent == pytest.approx(2.0)
    with pytest.raises(BudgetExceeded, match=r"spent \$2.0000 of the \$1.5000 cap"):
        llm.complete(MSGS)
    assert len(server.requests) == 2  # the third call never reached the server


@pytest.mark.parametrize("spec, message", [
    ("anthropic/claude-opus-4-5", ("ANTHROPIC_API_KEY is not set; export it to use anthropic/claude-opus-4-5, "
                                   "or use --agents greedy:offline to run without an LLM")),
    ("openai/gpt-5", "OPENAI_API_KEY is not set"),
    ("gemini/pro", "unknown LLM spec 'gemini/pro'; expected anthropic/<model>"),
    ("claude", "unknown LLM spec 'claude'"),
    ("openai-compatible/qwen3", "needs a server URL: openai-compatible/<model>@http://host:port/v1"),
    ("replay:/nonexistent/x.jsonl", "replay file not found: /nonexistent/x.jsonl"),
])
def test_bad_specs_are_usage_errors(spec, message):
    with pytest.raises(UsageError) as e:
        make_llm(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_offline():
    assert make_llm("offline") is None and make_llm(" Offline ") is None
    assert is_offline("offline") and not is_offline("anthropic/claude-opus-4-5")


@pytest.mark.parametrize("body, reason", [
    ('{"id": "chatcmpl-fake", "choi', "Unterminated string starting at: line 1 column 25 (char 24)"),
    ("<html>502 Bad Gateway</html>", "Expecting value: line 1 column 1 (char 0)"),
    ("[]", "AttributeError"),  # JSON, but not what the API returns
])
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_malformed_body_is_an_llm_error_retried_like_the_others(monkeypatch, server, caplog, body,
                                                                  reason, provider):
    from fake_servers import Scripted

    ok = anthropic_ok("fine") if provider == "anthropic" else openai_ok("fine")
    make = anthropic_llm if provider == "anthropic" else openai_llm
    server.push(Scripted(200, body), ok)
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING, logger="aira.llm"):
        assert make(monkeypatch, server, sleep=sleeps).complete(MSGS).text == "fine"
    assert len(sleeps) == 1 and len(server.requests) == 2
    assert "malformed response body: " in caplog.text and reason in caplog.text and "retry 1/5" in caplog.text
    # every attempt malformed: an LLMError (the operator records an INVALID node), never a JSONDecodeError
    server.push(*[Scripted(200, body)] * 3)
    with pytest.raises(LLMError, match=r"gave up after 3 attempts \(malformed response body: ") as e:
        make(monkeypatch, server, sleep=Sleeps(), max_retries=2).complete(MSGS)
    assert reason in str(e.value) and e.value.retryable and e.value.status is None
