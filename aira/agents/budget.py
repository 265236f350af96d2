"""Run budgets: wall clock, number of evaluations, LLM dollars, and a per-evaluation timeout.

A budget is written as comma-separated items (the `--budget` flag):

    2h                      wall clock (also 90s, 10m, 1h30m, 1.5h)
    50evals | evals=50      completed candidate evaluations (the noise-floor reference runs do not count)
    $5 | usd=5              LLM dollars, enforced by the cost ledger
    timeout=10m             per-evaluation wall-clock limit (caps each job's own timeout)
    stop=wait | stop=kill   when a budget is spent: wait for in-flight jobs, or kill them (default wait)

e.g. `--budget 2h,200evals,$20,timeout=15m`. An empty budget is unlimited (a run then ends when every
policy is done). The run stops cleanly when any budget is spent.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass

from aira.errors import UsageError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str | float) -> float:
    """Seconds in "90s", "10m", "2h", "1h30m", "1.5h" or a plain number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", s):
            seconds = float(s)
        elif s and _DURATION.sub("", s) == "":
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(s))
        else:
            raise UsageError(f"bad duration {text!r}: use e.g. 90s, 10m, 2h or 1h30m")
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"bad duration {text!r}: must be positive")
    return seconds


def parse_dollars(text: str | float) -> float:
    """Dollars in "$5", "5", "5usd" or "2.50"."""
    s = str(text).strip().lower().removeprefix("$").removesuffix("usd").strip()
    try:
        usd = float(s)
    except ValueError:
        raise UsageError(f"bad dollar amount {text!r}: use e.g. $5 or usd=5") from None
    if not math.isfinite(usd) or usd <= 0:
        raise UsageError(f"bad dollar amount {text!r}: must be positive")
    return usd


def _parse_evals(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"bad number of evaluations {text!r}: use e.g. 50evals or evals=50") from None
    if n <= 0:
        raise UsageError(f"bad number of evaluations {text!r}: must be positive")
    return n


@dataclass(kw_only=True)
class Budget:
    wall_s: float | None = None
    evals: int | None = None
    usd: float | None = None
    eval_timeout_s: float | None = None
    on_stop: str = "wait"  # "wait": let in-flight jobs finish; "kill": kill them (status KILLED)

    def __post_init__(self):
        if self.on_stop not in ("wait", "kill"):
            raise UsageError(f"bad budget stop={self.on_stop!r}: use stop=wait or stop=kill")

    @classmethod
    def parse(cls, spec: str | None) -> Budget:
        b = cls()
        for item in (spec or "").split(","):
            item = item.strip()
            if not item:
                continue
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if eq:
                value = value.strip()
                if key in ("time", "wall", "wall_s"):
                    b.wall_s = parse_duration(value)
                elif key in ("evals", "evaluations"):
                    b.evals = _parse_evals(value)
                elif key in ("usd", "dollars", "cost"):
                    b.usd = parse_dollars(value)
                elif key in ("timeout", "eval_timeout"):
                    b.eval_timeout_s = parse_duration(value)
                elif key == "stop":
                    b.on_stop = value
                    b.__post_init__()
                else:
                    raise UsageError(
                        f"unknown budget key {key!r}: use time=, evals=, usd=, timeout= or stop="
                    )
            elif item.startswith("$") or item.lower().endswith("usd"):
                b.usd = parse_dollars(item)
            elif m := re.fullmatch(r"(\d+)\s*(evals?|evaluations?)", item.lower()):
                b.evals = _parse_evals(m.group(1))
            elif re.fullmatch(r"\d+", item):
                raise UsageError(f"ambiguous budget {item!r}: write {item}s, {item}evals or ${item}")
            else:
                try:
                    b.wall_s = parse_duration(item)
                except UsageError:
                    raise UsageError(
                        f"bad budget item {item!r}: use e.g. 2h, 50evals, $5, timeout=10m, stop=kill"
                    ) from None
        return b

    @classmethod
    def coerce(cls, value: Budget | str | dict | None) -> Budget:
        if isinstance(value, Budget):
            return value
        if isinstance(value, dict):
            return cls(**value)
        return cls.parse(value)

    def to_dict(self) -> dict:
        return asdict(self)

    def extended(self, more: Budget, *, spent_s: float = 0.0, spent_evals: int = 0,
                 spent_usd: float = 0.0) -> Budget:
        """This budget with `more`'s wall clock, evaluations and dollars added; where this budget had no
        such limit, `more` is added to what the run already spent."""
        def add(total, extra, spent):
            return total if extra is None else (spent if total is None else total) + extra

        return Budget(wall_s=add(self.wall_s, more.wall_s, spent_s), evals=add(self.evals, more.evals, spent_evals),
                      usd=add(self.usd, more.usd, spent_usd),
                      eval_timeout_s=more.eval_timeout_s or self.eval_timeout_s, on_stop=self.on_stop)

    def describe(self) -> str:
        parts = []
        if self.wall_s is not None:
            parts.append(f"{self.wall_s:g}s wall clock")
        if self.evals is not None:
            parts.append(f"{self.evals} evaluations")
        if self.usd is not None:
            parts.append(f"${self.usd:g} LLM")
        if self.eval_timeout_s is not None:
            parts.append(f"{self.eval_timeout_s:g}s per evaluation")
        return ", ".join(parts) or "unlimited"


class BudgetTracker:
    """Counts what a run has spent. `spent_reason()` is None while every budget has some left.

    `elapsed_before` and `evals_before` carry what earlier segments of a resumed run spent; time paused
    (`pause` .. `unpause`, a researcher's `aira runs pause`) does not count.
    """

    def __init__(
        self, budget: Budget, *, elapsed_before: float = 0.0, evals_before: int = 0, usd_before: float = 0.0,
        clock=None,
    ):
        self.budget = budget
        self.elapsed_before = elapsed_before
        self.evals = evals_before
        self.usd = usd_before
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self.paused_s = 0.0  # time spent paused by the researcher: not counted
        self.paused_at: float | None = None

    def elapsed(self) -> float:
        now = self.clock()
        paused = self.paused_s + (now - self.paused_at if self.paused_at is not None else 0.0)
        return self.elapsed_before + now - self.started - paused

    def pause(self) -> None:
        """Stop the wall clock (a paused run spends none of its budget) until `unpause`."""
        if self.paused_at is None:
            self.paused_at = self.clock()

    def unpause(self) -> None:
        if self.paused_at is not None:
            self.paused_s += self.clock() - self.paused_at
            self.paused_at = None

    def remaining_evals(self) -> int | None:
        return None if self.budget.evals is None else max(0, self.budget.evals - self.evals)

    def hard_stop_reason(self) -> str | None:
        """Wall clock or dollars spent: the run stops now (in-flight jobs waited for or killed)."""
        b = self.budget
        if b.wall_s is not None and self.elapsed() >= b.wall_s:
            return f"wall-clock budget spent ({b.wall_s:g}s)"
        if b.usd is not None and self.usd >= b.usd:
            return f"LLM budget spent (${b.usd:g})"
        return None

    def may_submit(self, in_flight: int) -> bool:
        """In-flight jobs count against the evaluation budget, so a run never launches more
        evaluations than it may complete."""
        return self.budget.evals is None or self.evals + in_flight < self.budget.evals

    def evals_spent(self) -> bool:
        return self.budget.evals is not None and self.evals >= self.budget.evals

    def job_timeout(self, timeout_s: float) -> float:
        """A job's own limit, capped by the per-evaluation budget. (With stop=kill the orchestrator
        kills in-flight jobs when the clock runs out, so the wall clock needs no cap here.)"""
        return timeout_s if self.budget.eval_timeout_s is None else min(timeout_s, self.budget.eval_timeout_s)


@dataclass(frozen=True)
class BudgetPlan:
    """What a wall-clock budget buys, estimated before any job starts (`plan_budget`)."""

    noise_seeds: int            # reference evaluations to run (possibly fewer than asked for)
    candidates: int | None      # candidate evaluations the wall clock buys (None: no estimate)
    lines: tuple[str, ...]      # what to tell the user


def plan_budget(budget: Budget, *, slots: int, noise_seeds: int, job_s: float | None, source: str = "",
                measured_noise: bool = False, spent_s: float = 0.0) -> BudgetPlan:
    """Estimate, from a measured `job_s` seconds per evaluation, what the wall clock left buys on `slots`
    workers. The noise-floor reference runs may take at most half of it: above that they shrink (to 0
    when the task's measured noise can set the floor, else to 1), and a budget that buys no candidate at
    all is refused with a UsageError before anything runs."""
    if budget.wall_s is None or not job_s or job_s <= 0:
        return BudgetPlan(noise_seeds, None, ())
    left = max(0.0, budget.wall_s - spent_s)
    capacity = left * slots  # worker-seconds
    seeds, lines = noise_seeds, []
    if seeds * job_s > capacity / 2:
        floor_min = 0 if measured_noise else min(1, noise_seeds)
        seeds = max(floor_min, min(noise_seeds, int(capacity / 2 // job_s)))
        if seeds < noise_seeds:
            lines.append(f"noise floor: {seeds} reference evaluation{'s' if seeds != 1 else ''} instead of "
                         f"{noise_seeds}, so the budget reaches the agents"
                         + (" (the proxy's measured noise sets the margin)" if measured_noise else ""))
    candidates = int(max(0.0, capacity - seeds * job_s) // job_s)
    need = math.ceil((seeds + 1) * job_s / slots)
    if candidates < 1:
        raise UsageError(f"a budget of {left:g}s on {slots} worker{'s' if slots != 1 else ''} buys no candidate "
                         f"evaluation: one takes ~{job_s:.0f}s ({source or 'measured'}); give at least "
                         f"{need}s, or more workers")
    lines.insert(0, f"plan: {left:g}s x {slots} worker{'s' if slots != 1 else ''} buys ~{candidates} candidate "
                    f"evaluation{'s' if candidates != 1 else ''} at ~{job_s:.0f}s each ({source or 'measured'})"
                    + (f", after {seeds} reference evaluation{'s' if seeds != 1 else ''}" if seeds else "")
                    + "; cached ones are free")
    return BudgetPlan(seeds, candidates, tuple(lines))
