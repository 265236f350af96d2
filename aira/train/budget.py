"""Training budgets: a number of seconds, steps or tokens, parsed from strings such as
"60s", "2m", "1h", "500steps", "300", "2M tokens", "500k tok".

A budget is a horizon for the learning-rate schedule as well as a stopping rule: progress is the
fraction of the budget spent, whichever unit it is in, so a wall-clock budget decays the LR on time
(as autoresearch does) and a token budget on tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aira.errors import UsageError

_UNITS = {
    "s": ("seconds", 1), "sec": ("seconds", 1), "secs": ("seconds", 1), "seconds": ("seconds", 1),
    "m": ("seconds", 60), "min": ("seconds", 60), "mins": ("seconds", 60), "minutes": ("seconds", 60),
    "h": ("seconds", 3600), "hr": ("seconds", 3600), "hours": ("seconds", 3600),
    "step": ("steps", 1), "steps": ("steps", 1),
    "tok": ("tokens", 1), "tokens": ("tokens", 1),
}
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(.*?)\s*$")


@dataclass(frozen=True)
class TrainBudget:
    kind: str  # "seconds" | "steps" | "tokens"
    amount: float

    def progress(self, *, seconds: float, steps: int, tokens: int) -> float:
        spent = {"seconds": seconds, "steps": steps, "tokens": tokens}[self.kind]
        return min(1.0, spent / self.amount)

    def __str__(self) -> str:
        return f"{self.amount:g} {self.kind}"


def parse_budget(text: str | int | float) -> TrainBudget:
    """Parse a budget. A bare number means steps."""
    if isinstance(text, (int, float)):
        return TrainBudget("steps", float(text))
    m = _RE.match(str(text))
    if not m:
        raise UsageError(f"cannot parse budget {text!r}; use e.g. 60s, 10m, 500steps or 2M tokens")
    number, rest = m.groups()
    rest = rest.lower()
    # "2m" alone is two minutes; "2M tokens" / "500k steps" carry a multiplier.
    if rest in _UNITS or rest == "":
        scale, unit = "", rest
    elif rest[0] in _SCALE and rest[1:].strip() in ("", *_UNITS):
        scale, unit = rest[0], rest[1:].strip()
    else:
        raise UsageError(f"unknown budget unit {rest!r} in {text!r}; use s, m, h, steps or tokens")
    kind, mult = _UNITS[unit] if unit else ("steps", 1)
    if scale and kind not in ("tokens", "steps"):
        raise UsageError(f"budget {text!r}: a k/M/B multiplier applies to steps or tokens only")
    amount = float(number) * _SCALE[scale] * mult
    if amount <= 0:
        raise UsageError(f"budget must be positive, got {text!r}")
    return TrainBudget(kind, amount)


def scaled_budget(budget: str | int | float, factor: float) -> str:
    """A budget times `factor`, in its own unit ("384steps" x 3 -> "1152steps")."""
    b = parse_budget(budget)
    amount = round(b.amount * factor)
    return {"steps": f"{amount}steps", "tokens": f"{amount} tokens", "seconds": f"{amount}s"}[b.kind]
