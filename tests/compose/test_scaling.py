"""isoFLOP fits recover known minima and exponents."""

import math

import pytest

from aira.compose.scaling import (IsoFlopPoint, fit_frontier, isoflop_minimum, scales_faster, tokens_for)
from aira.errors import UsageError


def test_isoflop_parabola_recovers_the_minimum():
    # loss = 2 + 0.5 (log10 N - 6)^2: minimum at N = 1e6, loss 2
    sizes = [1e5, 3e5, 1e6, 3e6, 1e7]
    losses = [2 + 0.5 * (math.log10(n) - 6) ** 2 for n in sizes]
    p = isoflop_minimum(sizes, losses, compute=1e15)
    assert p.fitted and p.n_opt == pytest.approx(1e6, rel=1e-6) and p.loss_opt == pytest.approx(2.0)


def test_isoflop_fallbacks():
    p = isoflop_minimum([1e5, 1e6], [3.0, 2.5], compute=1.0)
    assert not p.fitted and p.n_opt == 1e6 and p.loss_opt == 2.5
    # concave: best observed point, not a maximum
    p = isoflop_minimum([1e5, 1e6, 1e7], [3.0, 3.5, 3.2], compute=1.0)
    assert not p.fitted and p.loss_opt == 3.0
    p = isoflop_minimum([1e5, 1e6, 1e7], [3.0, float("nan"), 2.0], compute=1.0)
    assert p.loss_opt == 2.0
    with pytest.raises(UsageError):
        isoflop_minimum([1e5], [float("nan")], compute=1.0)


def test_frontier_recovers_power_law_and_comparison():
    pts_x = [IsoFlopPoint(c, 1.0, 50 * c ** -0.077, True) for c in (1e15, 1e16, 1e17, 1e18)]
    pts_y = [IsoFlopPoint(c, 1.0, 30 * c ** -0.05, True) for c in (1e15, 1e16, 1e17, 1e18)]
    fx, fy = fit_frontier(pts_x), fit_frontier(pts_y)
    assert fx.b == pytest.approx(-0.077) and fx.a == pytest.approx(50, rel=1e-6)
    assert fx.loss(1e16) == pytest.approx(50 * 1e16 ** -0.077)
    assert scales_faster(fx.b, fy.b) == pytest.approx(54.0)
    assert scales_faster(fy.b, fx.b) == pytest.approx(100 * (0.05 / 0.077 - 1))
    with pytest.raises(UsageError):
        fit_frontier(pts_x[:1])


def test_tokens_for_budget():
    assert tokens_for(6e12, 1e6) == 1_000_000
    assert tokens_for(6e12, 1e6, flops_per_token=1.2e7) == 500_000
