"""The cost ledger: a running total of what the LLM calls of a run cost, with an optional dollar cap.

One ledger is shared by every agent of a run (and its threads), so it is guarded by a lock. A call
is charged after it returns (its cost is known only then), so a run can overshoot the cap by at most
the calls in flight; `check()` before each call stops new ones once the cap is reached.

`MeteredLLM` wraps an agent's LLM for one operator call and keeps every completion made through it,
so the node is charged for the replies it paid for even when the operator raises afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from aira.agents.base import LLM
from aira.agents.types import Completion


class BudgetExceeded(RuntimeError):
    """The run's LLM spending reached its dollar cap."""

    def __init__(self, spent: float, cap: float, completion: Completion | None = None):
        super().__init__(f"LLM budget exhausted: spent ${spent:.4f} of the ${cap:.4f} cap")
        self.spent = spent
        self.cap = cap
        self.completion = completion  # the paid-for reply that crossed the cap, still usable


class CostLedger:
    def __init__(self, cap_usd: float | None = None):
        if cap_usd is not None and cap_usd < 0:
            raise ValueError("cap_usd must be >= 0")
        self.cap_usd = cap_usd
        self._lock = threading.Lock()
        self._spent = 0.0
        self._calls = 0
        self._input_tokens = 0
        self._output_tokens = 0

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def remaining(self) -> float | None:
        with self._lock:
            return None if self.cap_usd is None else max(0.0, self.cap_usd - self._spent)

    def check(self) -> None:
        """Refuse a new call (raise BudgetExceeded) when the cap is already reached."""
        with self._lock:
            if self.cap_usd is not None and self._spent >= self.cap_usd:
                raise BudgetExceeded(self._spent, self.cap_usd)

    def charge(self, completion: Completion) -> None:
        """Record a finished call; raise BudgetExceeded if it took the total past the cap
        (the call is recorded either way: the money is spent)."""
        with self._lock:
            self._spent += completion.cost_usd
            self._calls += 1
            self._input_tokens += completion.input_tokens
            self._output_tokens += completion.output_tokens
            if self.cap_usd is not None and self._spent > self.cap_usd:
                raise BudgetExceeded(self._spent, self.cap_usd, completion)

    def summary(self) -> dict:
        with self._lock:
            return {"spent_usd": self._spent, "cap_usd": self.cap_usd, "calls": self._calls,
                    "input_tokens": self._input_tokens, "output_tokens": self._output_tokens}


class MeteredLLM(LLM):
    """An LLM that records what passes through it: `completions` (paid replies, the one that crossed
    the ledger's cap included) and `transcript`, the conversation in the journal's entry format."""

    def __init__(self, inner: LLM):
        self.inner = inner
        self.spec = getattr(inner, "spec", "llm")
        self.completions: list[Completion] = []
        self.transcript: list[dict] = []
        self._sent = 0  # messages of the conversation already in the transcript

    def complete(self, messages: Sequence[dict], *, system: str | None = None,
                 max_tokens: int = 4096, temperature: float = 1.0) -> Completion:
        if len(messages) < self._sent:  # a new conversation, not the next turn of the last one
            self._sent = 0
        if system and not self.transcript:
            self.transcript.append(_entry("system", system))
        self.transcript += [_entry(m["role"], m["content"]) for m in messages[self._sent:]]
        self._sent = len(messages) + 1  # the reply comes back as the next turn
        try:
            c = self.inner.complete(messages, system=system, max_tokens=max_tokens,
                                    temperature=temperature)
        except BudgetExceeded as e:
            if e.completion is not None:  # paid for: charge it
                self._keep(e.completion)
            raise
        self._keep(c)
        return c

    def _keep(self, c: Completion) -> None:
        self.completions.append(c)
        self.transcript.append(_entry("assistant", c.text, c.model, c.input_tokens, c.output_tokens,
                                      c.cost_usd))

    def usage(self) -> tuple[int, int, float]:
        """(input tokens, output tokens, dollars) of every completion so far."""
        cs = self.completions
        return (sum(c.input_tokens for c in cs), sum(c.output_tokens for c in cs),
                sum(c.cost_usd for c in cs))

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # a backend's model, ledger, ...


def _entry(role: str, content, model: str = "", input_tokens: int = 0, output_tokens: int = 0,
           cost_usd: float = 0.0) -> dict:
    return {"role": role, "content": content, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "cost_usd": cost_usd, "model": model}
