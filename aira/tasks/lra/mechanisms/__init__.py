"""A library of known mechanisms, each a self-contained `attention.py` an agent could have written.

They are baselines and seeds for AIRA-Design: `path("softmax")` is the file to evaluate or to show an
agent. Each file imports only torch, so it can be copied into a sandbox as is.
"""

from __future__ import annotations

from pathlib import Path

from aira.errors import UsageError

_HERE = Path(__file__).parent
MECHANISMS = {
    "softmax": "full softmax attention, O(L^2)",
    "local": "sliding-window softmax attention, window 32 each side",
    "linear": "linear attention, elu + 1 feature map",
    "performer": "Performer-style positive orthogonal random features",
    "nystrom": "Nystrom landmark attention, 16 landmarks",
    "longconv": "gated long convolution by FFT (H3 / Hyena style)",
}


def path(name: str) -> Path:
    if name not in MECHANISMS:
        raise UsageError(f"unknown mechanism {name!r}; valid: {', '.join(MECHANISMS)}")
    return _HERE / f"{name}.py"
