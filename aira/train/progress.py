"""Training progress as plain lines, for a stream that is not a terminal (a log file, CI, a pipe).

tqdm draws nothing there, so `aira train > log 2>&1` used to be silent until the summary. `LineProgress`
has the part of tqdm's interface the trainer uses (`n`, `update`, `set_postfix`, `close`) and writes one
line when it starts, then one every `interval_s` seconds, then a last one when it closes:

    tiny AMSM mad:selective_copying: 120/500 step (24%) | loss 2.314 | 12s
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

INTERVAL_S = 10.0


class LineProgress:
    def __init__(self, total: int, *, unit: str, desc: str = "", stream: TextIO | None = None,
                 interval_s: float = INTERVAL_S, clock=time.monotonic):
        self.total, self.unit, self.desc = total, unit, desc
        self.stream = stream or sys.stderr
        self.interval_s, self.clock = interval_s, clock
        self.n = 0
        self.postfix: dict[str, str] = {}
        self._t0 = self._last = clock()
        self._write()

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.clock() - self._last >= self.interval_s:
            self._write()

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix.update({k: str(v) for k, v in values.items()})

    def close(self) -> None:
        self._write()

    def _write(self) -> None:
        now = self.clock()
        self._last = now
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = "".join(f" | {k} {v}" for k, v in self.postfix.items())
        head = f"{self.desc.strip()}: " if self.desc.strip() else ""
        self.stream.write(f"{head}{self.n}/{self.total} {self.unit}{pct}{extra} | {now - self._t0:.0f}s\n")
        self.stream.flush()
