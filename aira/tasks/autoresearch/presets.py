"""Harness-side settings per preset: the frozen time budget, evaluation length and limits.

The script sizes its model from the same preset name (train.py's per-preset dials); these numbers are
the harness's and the agent cannot change them.

| preset | training budget | eval seq | eval tokens (cap) | start-up allowance | meant for |
|---|---|---|---|---|---|
| test | 2 s   | 64   | 4,096      | 120 s | tests: seconds per evaluation |
| cpu  | 30 s  | 128  | 32,768     | 120 s | a laptop / CI: about a minute per evaluation on 2 cores |
| gpu  | 300 s | 2048 | 20,971,520 | 300 s | autoresearch's setting: one H100, about 50M parameters |

A run is killed at `kill_factor` (2) x the budget plus the start-up allowance: the allowance covers the
interpreter and torch import, `torch.compile`, and the model export, which autoresearch does not count
either (its budget starts after the first steps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aira.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class ArPreset:
    name: str
    time_budget_s: float
    eval_seq_len: int
    eval_tokens: int
    startup_allowance_s: float
    kill_factor: float = 2.0
    vocab_size: int = 8192
    mem_mb: int | None = None  # address-space limit of the training process (None: none, as for CUDA)

    @property
    def kill_after_s(self) -> float:
        return self.kill_factor * self.time_budget_s + self.startup_allowance_s


PRESETS = {
    "test": ArPreset(name="test", time_budget_s=2.0, eval_seq_len=64, eval_tokens=4096,
                     startup_allowance_s=120.0),
    "cpu": ArPreset(name="cpu", time_budget_s=30.0, eval_seq_len=128, eval_tokens=32768,
                    startup_allowance_s=120.0),
    "gpu": ArPreset(name="gpu", time_budget_s=300.0, eval_seq_len=2048, eval_tokens=40 * 2**19,
                    startup_allowance_s=300.0),
}


def get_preset(name: str, **overrides) -> ArPreset:
    if name not in PRESETS:
        raise UsageError(f"unknown autoresearch preset {name!r}: use one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if (b := overrides.get("time_budget_s")) is not None and not b > 0:
        raise UsageError(f"bad time budget {b}: need a positive number of seconds")
    return replace(PRESETS[name], **overrides)
