"""Plain data that flows through the harness: jobs, results, nodes, LLM completions.

Everything here is JSON-serialisable (`to_dict` / `from_dict`) so that it can cross a process
boundary (local executor, Ray, sandbox) and be stored in the journal.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    PENDING = "pending"      # proposed, not yet evaluated
    RUNNING = "running"
    OK = "ok"
    INVALID = "invalid"      # the proposal failed validation (or the reply could not be parsed)
    CRASHED = "crashed"      # the evaluation raised / exited non-zero
    TIMED_OUT = "timed-out"  # killed by the harness's wall-clock limit
    DIVERGED = "diverged"    # NaN / inf loss
    KILLED = "killed"        # killed by a resource limit (memory, processes, file size)

    @property
    def failed(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING, Status.OK)


@dataclass(kw_only=True)
class Job:
    """One evaluation to run: call `fn` ("package.module:function") with `kwargs` in a fresh process.

    The function returns a dict accepted by `Result.from_dict` (at least "status" and "metric").
    """

    id: str
    fn: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 600.0
    mem_limit_mb: int | None = None
    gpus: int = 0
    sandbox: bool = False  # run under aira.agents.sandbox (agent-written code)
    workdir: str | None = None
    readonly_paths: list[str] = field(default_factory=list)  # copied read-only into a sandboxed job's data/
    # Jobs with the same batch_key may run together in one worker: `batch_fn` ("package.module:function")
    # takes their kwargs as a list and returns one result dict per job (an executor with batch > 1 does it)
    batch_key: str | None = None
    batch_fn: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        return cls(**d)


@dataclass(kw_only=True)
class Result:
    status: Status
    metric: float | None = None            # on the search split: what the agent sees
    selection_metric: float | None = None  # on the hidden selection split: final ranking only
    metrics: dict[str, Any] = field(default_factory=dict)  # params, flops, tokens/s, ...
    error: str = ""
    seconds: float = 0.0
    log_path: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        d = dict(d)
        d["status"] = Status(d.get("status", "crashed"))
        known = {f for f in cls.__dataclass_fields__}
        extra = {k: d.pop(k) for k in list(d) if k not in known}
        r = cls(**d)
        r.metrics.update(extra)
        return r


@dataclass(kw_only=True)
class Completion:
    """One LLM call: what was asked, what came back, what it cost."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(kw_only=True)
class Node:
    """One proposal in an agent's search tree, with everything needed to audit or resume it."""

    id: str
    agent: str                      # e.g. "greedy:offline#0"
    operator: str                   # draft | improve | debug | crossover | baseline | reference
    parents: list[str] = field(default_factory=list)
    proposal: Any = None            # JSON-serialisable: a pattern string, or {"files": {...}, ...}
    idea: str = ""                  # one-line description of the change
    llm: str = "offline"            # model spec that produced it, "offline" for the search moves
    transcript: list[dict] = field(default_factory=list)  # prompts, replies, token counts
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    status: Status = Status.PENDING
    metric: float | None = None
    selection_metric: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    seed: int = 0
    debug_depth: int = 0
    guidance: int = 0               # the researcher's guidance version in force when it was drafted (0: none)
    guidance_read: bool = False     # the operator's prompt included that guidance (LLM operators only)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def apply(self, result: Result) -> None:
        self.status = result.status
        self.metric = result.metric
        self.selection_metric = result.selection_metric
        self.metrics = dict(result.metrics)
        self.error = result.error
        self.seconds = result.seconds
        self.finished_at = time.time()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Node:
        d = dict(d)
        d["status"] = Status(d.get("status", "pending"))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
