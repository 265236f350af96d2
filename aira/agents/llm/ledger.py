"""The cost ledger: a running total of what the LLM calls of a run cost, with an optional dollar cap.

One ledger is shared by every agent of a run (and its threads), so it is guarded by a lock. A call
is charged after it returns (its cost is known only then), so a run can overshoot the cap by at most
the calls in flight; `check()` before each call stops new ones once the cap is reached.
"""

from __future__ import annotations

import threading

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
