"""`aira train` off a terminal: a plain progress line at the start, every interval, and at the end."""

from __future__ import annotations

import io

from aira.cli import main
from aira.train.progress import LineProgress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_a_line_at_start_every_interval_and_at_the_end():
    clock, out = Clock(), io.StringIO()
    p = LineProgress(500, unit="step", desc="tiny AM mad ", stream=out, interval_s=10.0, clock=clock)
    assert out.getvalue() == "tiny AM mad: 0/500 step (0%) | 0s\n"
    clock.t += 9.9
    p.update(100)
    assert out.getvalue().count("\n") == 1  # within the interval: nothing new
    p.set_postfix(loss="2.314", refresh=False)
    clock.t += 0.1
    p.update(20)
    assert out.getvalue().splitlines()[-1] == "tiny AM mad: 120/500 step (24%) | loss 2.314 | 10s"
    clock.t += 5.0
    p.update(380)
    p.close()
    assert out.getvalue().splitlines()[1:] == ["tiny AM mad: 120/500 step (24%) | loss 2.314 | 10s",
                                               "tiny AM mad: 500/500 step (100%) | loss 2.314 | 15s"]


def test_aira_train_prints_progress_lines_when_stderr_is_not_a_terminal(capsys):
    assert main(["train", "--pattern", "AMSM", "--task", "mad:selective_copying", "--mad-settings", "tiny",
                 "--budget", "3steps", "--threads", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if "/3 step" in ln]
    assert ": 0/3 step (0%) | " in lines[0]  # at once, before the first step
    assert "3/3 step (100%)" in lines[-1]
    assert main(["train", "--pattern", "AMSM", "--task", "mad:selective_copying", "--mad-settings", "tiny",
                 "--budget", "3steps", "--threads", "1", "--quiet"]) == 0
    assert "/3 step" not in capsys.readouterr().err
