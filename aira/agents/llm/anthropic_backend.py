"""Anthropic Messages API through the official `anthropic` SDK.

The key comes from ANTHROPIC_API_KEY; ANTHROPIC_BASE_URL points the client at a proxy or gateway
(and at the fake server in tests). The SDK's own retries are off: `retry.py` does them.
"""

from __future__ import annotations

import inspect

from aira.agents.llm.backend import BackendLLM, Reply
from aira.agents.llm.ledger import CostLedger
from aira.agents.llm.retry import MalformedResponse, RetryPolicy
from aira.errors import UsageError


class AnthropicLLM(BackendLLM):
    auth_hint = "check ANTHROPIC_API_KEY"

    def __init__(self, model: str, *, api_key: str, base_url: str | None = None, timeout_s: float = 120,
                 ledger: CostLedger | None = None, retry: RetryPolicy | None = None):
        super().__init__(f"anthropic/{model}", model, ledger=ledger, retry=retry)
        try:
            import anthropic
        except ImportError as e:
            raise UsageError("the anthropic package is not installed: pip install 'aira[llm]'") from e
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url or None,
                                          timeout=timeout_s, max_retries=0)
        # Recent SDKs (2.x) dropped the sampling parameters from messages.create; older ones take
        # `temperature`. Send it only where the installed SDK knows it.
        self._takes_temperature = "temperature" in inspect.signature(self.client.messages.create).parameters

    def _request(self, system, messages, max_tokens, temperature) -> Reply:
        kwargs: dict = {"system": system} if system else {}
        if self._takes_temperature:
            kwargs["temperature"] = temperature
        msg = self.client.messages.create(model=self.model, messages=messages, max_tokens=max_tokens,
                                          **kwargs)
        try:
            return self._reply(msg)
        except (AttributeError, TypeError, IndexError, KeyError) as e:  # JSON, but not a message
            raise MalformedResponse(f"not a message ({type(e).__name__}: {e})") from e

    def _reply(self, msg) -> Reply:
        # Thinking and tool blocks carry no answer text; only the text blocks are the reply.
        text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
        u = msg.usage
        # Cached prompt tokens are reported apart from input_tokens; count them all as input
        # (a slight over-estimate of cost for cache reads, never an under-estimate).
        inp = (u.input_tokens or 0) + (getattr(u, "cache_creation_input_tokens", 0) or 0) + \
            (getattr(u, "cache_read_input_tokens", 0) or 0)
        return Reply(text=text, model=msg.model or self.model, input_tokens=inp,
                     output_tokens=u.output_tokens or 0)
