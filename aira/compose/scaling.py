"""isoFLOP scaling fits: compute-optimal points per budget and the frontier L*(C) = a * C^b.

For each architecture and compute budget C, models of several sizes N are trained for D = C / (6N)
tokens (or C / counted-FLOPs-per-token). Loss against log10 N is fitted with a parabola; its minimum is
the compute-optimal point (N*, L*). The frontier is a least-squares line through log L* against log C,
giving L*(C) = a * C^b with b < 0.

Comparison, aira's formula (Meta's paper does not publish its own): architecture X "scales p% faster"
than Y when its frontier falls faster in log-log space, p = 100 * (b_X / b_Y - 1). Example: b_X = -0.077,
b_Y = -0.05 -> X scales 54% faster. At equal slopes p = 0, and a lower intercept with the same slope is
"better at every budget", not "faster".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aira.errors import UsageError


@dataclass
class IsoFlopPoint:
    compute: float
    n_opt: float
    loss_opt: float
    fitted: bool  # False when fewer than 3 sizes (or a non-convex fit): the best observed point is used


@dataclass
class Frontier:
    a: float
    b: float
    points: list[IsoFlopPoint]

    def loss(self, compute: float) -> float:
        return self.a * compute ** self.b

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "points": [p.__dict__ for p in self.points]}


def isoflop_minimum(sizes: Sequence[float], losses: Sequence[float], compute: float) -> IsoFlopPoint:
    """Compute-optimal point of one isoFLOP curve (parabola in log10 N, clamped to the tried range)."""
    if len(sizes) != len(losses) or not sizes:
        raise UsageError("isoFLOP fit needs one loss per size")
    pairs = [(n, l_) for n, l_ in zip(sizes, losses) if l_ is not None and math.isfinite(l_)]
    if not pairs:
        raise UsageError(f"no finite losses at compute {compute:g}")
    best_n, best_l = min(pairs, key=lambda t: t[1])
    if len({n for n, _ in pairs}) < 3:
        return IsoFlopPoint(compute, best_n, best_l, fitted=False)
    x = np.log10([n for n, _ in pairs])
    y = np.array([l_ for _, l_ in pairs])
    c2, c1, c0 = np.polyfit(x, y, 2)
    if c2 <= 0:  # concave or flat: no interior minimum
        return IsoFlopPoint(compute, best_n, best_l, fitted=False)
    x_opt = float(np.clip(-c1 / (2 * c2), x.min(), x.max()))
    return IsoFlopPoint(compute, 10 ** x_opt, float(c2 * x_opt**2 + c1 * x_opt + c0), fitted=True)


def fit_frontier(points: Sequence[IsoFlopPoint]) -> Frontier:
    """L*(C) = a * C^b by least squares in log-log space."""
    if len(points) < 2:
        raise UsageError("a frontier needs at least 2 compute budgets")
    lc = np.log([p.compute for p in points])
    ll = np.log([p.loss_opt for p in points])
    b, log_a = np.polyfit(lc, ll, 1)
    return Frontier(a=float(math.exp(log_a)), b=float(b), points=list(points))


def scales_faster(b_x: float, b_y: float) -> float:
    """Percent by which X's frontier falls faster than Y's (see the module docstring)."""
    if b_y == 0:
        raise UsageError("the reference frontier is flat (b = 0); the comparison is undefined")
    return 100.0 * (b_x / b_y - 1.0)


def tokens_for(compute: float, params: float, flops_per_token: float | None = None) -> int:
    """Tokens to spend budget C: C / (6N), or C / counted training FLOPs per token when given."""
    per_token = flops_per_token if flops_per_token else 6.0 * params
    return max(1, int(compute / per_token))
