"""Live progress of a run: one rewritten line on a terminal, a line every `interval` seconds otherwise.

    [12m03s] 2 agents | 41 done, 4 running, 7 failed | best 0.8123 (n0037) | $1.42
    [0m41s] measuring the noise floor (1 of 3 reference runs done) | 2 agents | 0 done, 3 running, ...

The orchestrator updates it whenever it polls its executor, so the line keeps coming while the
noise-floor references train and while the last jobs finish, not only during the search; `phase`
says which of those it is. `quiet=True` prints nothing (tests, or when a caller draws its own view).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO


@dataclass(kw_only=True)
class Snapshot:
    agents: int
    done: int
    running: int
    failed: int
    stopped: int = 0  # killed because the run's budget ran out (stop=kill): not failures
    best: float | None = None
    best_node: str | None = None
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    phase: str = ""  # "" during the search, else what the run is waiting for

    def line(self) -> str:
        m, s = divmod(int(self.elapsed_s), 60)
        h, m = divmod(m, 60)
        clock = f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
        best = "-" if self.best is None else f"{self.best:.4g} ({self.best_node})"
        stopped = f", {self.stopped} stopped by the budget" if self.stopped else ""
        phase = f"{self.phase} | " if self.phase else ""
        return (
            f"[{clock}] {phase}{self.agents} agent{'s' if self.agents != 1 else ''} | {self.done} done, "
            f"{self.running} running, {self.failed} failed{stopped} | best {best} | ${self.cost_usd:.2f}"
        )


INTERVAL_S = 30.0  # seconds between two lines when the stream is not a terminal


class Progress:
    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None, interval: float | None = None,
                 clock=time.monotonic):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = INTERVAL_S if interval is None else interval
        self.clock = clock
        self._last = -float("inf")
        self._width = 0

    def update(self, snap: Snapshot, *, force: bool = False) -> None:
        if self.quiet:
            return
        now = self.clock()
        line = snap.line()
        if self.tty:
            # Pad over the previous line so a shorter one leaves no tail behind.
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
        elif force or now - self._last >= self.interval:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last = now

    def close(self, snap: Snapshot | None = None) -> None:
        if self.quiet:
            return
        if snap is not None:
            self.update(snap, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
