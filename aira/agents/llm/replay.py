"""Recorded LLM sessions: play them back in tests, record real ones to make new fixtures.

The format is JSONL, one completion a line:

    {"text": "...", "model": "claude-sonnet-4-5", "input_tokens": 812, "output_tokens": 95}

with optional "cost_usd" (else priced from the table) and "match": a substring the prompt (system
prompt plus every message) must contain, so a test fails loudly when the agent asks something other
than what was recorded instead of silently getting the wrong answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from aira.agents.base import LLM
from aira.agents.llm.backend import BackendLLM, Reply
from aira.agents.llm.errors import LLMError
from aira.agents.llm.ledger import BudgetExceeded, CostLedger
from aira.agents.types import Completion
from aira.errors import UsageError


class ReplayExhausted(LLMError):
    """Every recorded completion has been used."""


class ReplayMismatch(LLMError):
    """The prompt does not contain the recorded completion's "match" text."""


def _load(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise UsageError(f"cannot read the replay file {path}: {e.strerror}") from e
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{n}: not valid JSON ({e.msg})") from e
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            raise UsageError(f"{path}:{n}: a replay record needs a \"text\" string")
        records.append(rec)
    return records


class ReplayLLM(BackendLLM):
    """Returns the recorded completions of `path` in order, one per call (thread-safe)."""

    def __init__(self, path: str | Path, *, ledger: CostLedger | None = None):
        self.path = Path(path)
        super().__init__(f"replay:{self.path}", "replay", ledger=ledger)
        self.records = _load(self.path)
        self._next = 0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        return len(self.records) - self._next

    def _request(self, system, messages, max_tokens, temperature) -> Reply:
        with self._lock:
            i = self._next
            if i >= len(self.records):
                raise ReplayExhausted(f"{self.spec}: all {len(self.records)} recorded completions are "
                                      f"used; record more (RecordingLLM) or make fewer calls")
            rec = self.records[i]
            match = rec.get("match")
            if match:
                prompt = "\n".join([system or ""] + [str(m.get("content", "")) for m in messages])
                if match not in prompt:
                    raise ReplayMismatch(f"{self.spec}: completion #{i + 1} was recorded for a prompt "
                                         f"containing {match!r}, which this prompt does not")
            self._next += 1
        return Reply(text=rec["text"], model=rec.get("model", "replay"),
                     input_tokens=int(rec.get("input_tokens", 0)),
                     output_tokens=int(rec.get("output_tokens", 0)), cost_usd=rec.get("cost_usd"))


class RecordingLLM(LLM):
    """Wraps any LLM and appends each completion to `path` in the replay format."""

    def __init__(self, inner: LLM, path: str | Path):
        self.inner = inner
        self.spec = inner.spec
        self.path = Path(path)
        self._lock = threading.Lock()

    def complete(self, messages: Sequence[dict], *, system: str | None = None,
                 max_tokens: int = 4096, temperature: float = 1.0) -> Completion:
        try:
            c = self.inner.complete(messages, system=system, max_tokens=max_tokens,
                                    temperature=temperature)
        except BudgetExceeded as e:
            if e.completion is not None:  # paid for and returned: keep it in the recording
                self._append(e.completion)
            raise
        self._append(c)
        return c

    def _append(self, c: Completion) -> None:
        rec = {"text": c.text, "model": c.model, "input_tokens": c.input_tokens,
               "output_tokens": c.output_tokens, "cost_usd": c.cost_usd}
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
