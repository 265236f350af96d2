"""LLM backends for the agents, chosen by a spec string.

    anthropic/<model>                    Anthropic Messages API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL)
    openai/<model>                       OpenAI Chat Completions (OPENAI_API_KEY, OPENAI_BASE_URL)
    openai-compatible/<model>@<base_url> any OpenAI-compatible server: vLLM, Ollama, llama.cpp, OpenRouter
                                         (OPENAI_COMPATIBLE_API_KEY, else OPENAI_API_KEY, else "none")
    offline                              no LLM: make_llm returns None, the agent uses search moves
    replay:<file.jsonl>                  recorded completions, for tests (see replay.py)

The SDKs are imported only when a backend is built, so the offline path needs neither installed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from aira.agents.base import LLM
from aira.agents.llm import pricing
from aira.agents.llm.errors import LLMAuthError, LLMError
from aira.agents.llm.ledger import BudgetExceeded, CostLedger
from aira.agents.llm.parse import (
    ParseError,
    Usage,
    complete_with_retries,
    extract_code_block,
    extract_json,
    strip_reasoning,
)
from aira.agents.llm.pricing import cost_usd, load_prices, register_price
from aira.agents.llm.replay import RecordingLLM, ReplayExhausted, ReplayLLM, ReplayMismatch
from aira.agents.llm.retry import RetryPolicy
from aira.errors import UsageError

__all__ = [
    "BudgetExceeded", "CostLedger", "LLMAuthError", "LLMError", "ParseError", "RecordingLLM",
    "ReplayExhausted", "ReplayLLM", "ReplayMismatch", "RetryPolicy", "Usage", "complete_with_retries",
    "cost_usd", "extract_code_block", "extract_json", "is_offline", "load_prices", "make_llm",
    "register_price", "strip_reasoning",
]

SPEC_HELP = ("anthropic/<model>, openai/<model>, openai-compatible/<model>@<base_url>, offline, "
             "or replay:<file.jsonl>")


def is_offline(spec: str) -> bool:
    return spec.strip().lower() == "offline"


def _key(*names: str, spec: str) -> str:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise UsageError(f"{names[0]} is not set; export it to use {spec}, or use --agents greedy:offline "
                     f"to run without an LLM")


def make_llm(spec: str, *, ledger: CostLedger | None = None, timeout_s: float = 120,
             max_retries: int = 5, sleep: Callable[[float], None] = time.sleep) -> LLM | None:
    """The backend for `spec`, or None for "offline". Bad specs and missing keys raise UsageError.

    `ledger` is charged for every call (and refuses calls once its cap is reached); `sleep` is the
    back-off's wait function (tests pass a fake one).
    """
    spec = spec.strip()
    if is_offline(spec):
        return None
    pricing.ensure_loaded()
    retry = RetryPolicy(max_retries=max_retries, sleep=sleep)
    if spec.startswith("replay:"):
        path = spec.removeprefix("replay:")
        if not path or not os.path.isfile(path):
            raise UsageError(f"replay file not found: {path or '(empty)'}")
        return ReplayLLM(path, ledger=ledger)
    provider, _, model = spec.partition("/")
    if not model:
        raise UsageError(f"unknown LLM spec {spec!r}; expected {SPEC_HELP}")
    if provider == "anthropic":
        from aira.agents.llm.anthropic_backend import AnthropicLLM

        return AnthropicLLM(model, api_key=_key("ANTHROPIC_API_KEY", spec=spec),
                            base_url=os.environ.get("ANTHROPIC_BASE_URL"), timeout_s=timeout_s,
                            ledger=ledger, retry=retry)
    if provider == "openai":
        from aira.agents.llm.openai_backend import OpenAILLM

        return OpenAILLM(model, api_key=_key("OPENAI_API_KEY", spec=spec),
                         base_url=os.environ.get("OPENAI_BASE_URL"), timeout_s=timeout_s,
                         ledger=ledger, retry=retry)
    if provider == "openai-compatible":
        from aira.agents.llm.openai_backend import OpenAILLM

        m = re.fullmatch(r"(.+?)@(https?://\S+)", model)
        if not m:
            raise UsageError(f"{spec!r} needs a server URL: openai-compatible/<model>@http://host:port/v1")
        key = (os.environ.get("OPENAI_COMPATIBLE_API_KEY") or os.environ.get("OPENAI_API_KEY")
               or "none")  # local servers usually ignore the key, but the SDK insists on one
        return OpenAILLM(m.group(1), api_key=key, base_url=m.group(2), compatible=True,
                         timeout_s=timeout_s, ledger=ledger, retry=retry)
    raise UsageError(f"unknown LLM spec {spec!r}; expected {SPEC_HELP}")
