"""The common part of every backend: ledger check, retries, timing, pricing, ledger charge.

A backend subclass only turns (messages, system, max_tokens, temperature) into one request and the
response into a `Reply`; `complete()` here wraps that in the harness's policy.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from aira.agents.base import LLM
from aira.agents.llm.ledger import CostLedger
from aira.agents.llm.pricing import cost_usd
from aira.agents.llm.retry import RetryPolicy, call_with_retries
from aira.agents.types import Completion


@dataclass
class Reply:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None: priced from the table


def split_system(messages: Sequence[dict], system: str | None) -> tuple[str | None, list[dict]]:
    """Move any {"role": "system"} turns into the system prompt; the rest keep their order."""
    extra = [str(m["content"]) for m in messages if m.get("role") == "system"]
    rest = [{"role": m["role"], "content": m["content"]} for m in messages if m.get("role") != "system"]
    parts = ([system] if system else []) + extra
    return ("\n\n".join(parts) if parts else None), rest


class BackendLLM(LLM):
    """An LLM reached through `_request`, with retries and cost accounting around it."""

    auth_hint: str = ""

    def __init__(self, spec: str, model: str, *, ledger: CostLedger | None = None,
                 retry: RetryPolicy | None = None):
        self.spec = spec
        self.model = model
        self.ledger = ledger
        self.retry = retry or RetryPolicy()

    @abstractmethod
    def _request(self, system: str | None, messages: list[dict], max_tokens: int,
                 temperature: float) -> Reply:
        """One attempt; SDK exceptions propagate (call_with_retries classifies them)."""

    def complete(self, messages: Sequence[dict], *, system: str | None = None,
                 max_tokens: int = 4096, temperature: float = 1.0) -> Completion:
        if self.ledger is not None:
            self.ledger.check()
        system, msgs = split_system(messages, system)
        t0 = time.perf_counter()
        reply = call_with_retries(lambda: self._request(system, msgs, max_tokens, temperature),
                                  policy=self.retry, what=self.spec, auth_hint=self.auth_hint)
        cost = reply.cost_usd
        if cost is None:
            cost = cost_usd(reply.model or self.model, reply.input_tokens, reply.output_tokens,
                            alias=self.model)
        c = Completion(text=reply.text, model=reply.model or self.model, input_tokens=reply.input_tokens,
                       output_tokens=reply.output_tokens, cost_usd=cost,
                       seconds=time.perf_counter() - t0)
        if self.ledger is not None:
            self.ledger.charge(c)
        return c

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"
