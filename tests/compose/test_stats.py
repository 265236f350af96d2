"""Fidelity statistics against hand-computed cases (ties included)."""

import math

import pytest

from aira.compose.stats import (
    attenuation_ceiling,
    average_ranks,
    bootstrap_partial_spearman,
    bootstrap_spearman,
    grouped_seed_to_seed_spearman,
    noise_floor,
    paired_bootstrap_spearman_difference,
    partial_spearman,
    saturation,
    seed_to_seed_spearman,
    spearman,
    spearman_brown,
)
from aira.errors import UsageError


def test_average_ranks_with_ties():
    assert average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert average_ranks([5, 5, 5]) == [2, 2, 2]


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties: ranks x = 1, 2.5, 2.5, 4 and y = 1, 2, 3, 4 -> 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    # d^2 formula holds without ties: 1 - 6 sum d^2 / (n (n^2 - 1)); d = (0, 2, -1, -1) -> 1 - 36/60
    assert spearman([1, 2, 3, 4], [1, 4, 2, 3]) == pytest.approx(1 - 6 * 6 / 60)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_matches_scipy_on_random_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    import random

    rng = random.Random(3)
    for _ in range(20):
        xs = [rng.randint(0, 5) for _ in range(12)]
        ys = [rng.randint(0, 5) for _ in range(12)]
        if len(set(xs)) > 1 and len(set(ys)) > 1:
            assert spearman(xs, ys) == pytest.approx(scipy_stats.spearmanr(xs, ys).statistic)


def test_bootstrap_interval():
    rho, lo, hi = bootstrap_spearman([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12], n_boot=200)
    assert rho == lo == hi == pytest.approx(1.0)
    xs = list(range(20))
    ys = [x + (7 if x % 3 == 0 else -7) for x in xs]
    rho, lo, hi = bootstrap_spearman(xs, ys, n_boot=500, seed=1)
    assert lo <= rho <= hi and hi - lo > 0.05
    assert bootstrap_spearman(xs, ys, n_boot=500, seed=1) == (rho, lo, hi)  # seeded


def test_paired_difference_of_two_rankings_against_a_third():
    ys = [1, 2, 3, 4, 5, 6]
    # a ranks like ys, b in reverse: every resample with two distinct items gives 1 - (-1) = 2
    d = paired_bootstrap_spearman_difference(ys, ys[::-1], ys, n_boot=300)
    assert d["difference"] == pytest.approx(2.0) and d["ci"] == pytest.approx([2.0, 2.0])
    assert d["b_at_least_as_good"] == 0.0
    # the same ranking twice: no difference, and b is "at least as good" in every resample
    same = paired_bootstrap_spearman_difference([3, 1, 2, 6, 5, 4], [3, 1, 2, 6, 5, 4], ys, n_boot=300)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0] and same["b_at_least_as_good"] == 1.0
    # by hand: b swaps two neighbours, rho_b = 1 - 6 * 2 / (4 * 15) = 0.8, so the difference is 0.2
    d = paired_bootstrap_spearman_difference([1, 2, 3, 4], [1, 3, 2, 4], [1, 2, 3, 4], n_boot=500, seed=3)
    assert d["difference"] == pytest.approx(0.2)
    assert 0.0 <= d["ci"][0] <= 0.2 <= d["ci"][1] and 0.0 < d["b_at_least_as_good"] < 1.0
    with pytest.raises(UsageError, match="paired scores"):
        paired_bootstrap_spearman_difference([1, 2, 3], [1, 2], [1, 2, 3])


def test_seed_to_seed_and_noise_floor():
    table = {"a": [1.0, 3.0], "b": [2.0, 2.0], "c": [5.0, 6.0]}
    # seed 0 ranks a < b < c, seed 1 ranks b < a < c: rho = 1 - 6 * 2 / 24 = 0.5
    assert seed_to_seed_spearman(table) == pytest.approx(0.5)
    # variances 2, 0, 0.5 -> sqrt(2.5 / 3)
    assert noise_floor(table) == pytest.approx(math.sqrt(2.5 / 3))
    with pytest.raises(UsageError):
        seed_to_seed_spearman({"a": [1.0], "b": [2.0]})


def test_seed_to_seed_of_two_seed_means_by_hand():
    table = {"a": [1.0, 3.0, 0.0, 2.0], "b": [2.0, 2.0, 2.0, 2.0], "c": [5.0, 6.0, 4.0, 1.0]}
    # the three splits into two pairs of seeds, means per pattern (a, b, c):
    #   {0,1}|{2,3}: (2, 2, 5.5) vs (1, 2, 2.5): ranks (1.5, 1.5, 3) vs (1, 2, 3): rho = 1.5 / sqrt(1.5 * 2)
    #   {0,2}|{1,3}: (0.5, 2, 4.5) vs (2.5, 2, 3.5): ranks (1, 2, 3) vs (2, 1, 3): rho = 0.5
    #   {0,3}|{1,2}: (1.5, 2, 3) vs (1.5, 2, 5): rho = 1
    expected = (1.5 / math.sqrt(3.0) + 0.5 + 1.0) / 3
    assert grouped_seed_to_seed_spearman(table, 2) == pytest.approx(expected)
    assert grouped_seed_to_seed_spearman(table, 1) == pytest.approx(seed_to_seed_spearman(table))
    with pytest.raises(UsageError, match="needs 6 seeds"):
        grouped_seed_to_seed_spearman(table, 3)


def test_spearman_brown_prediction():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.865, 1) == pytest.approx(0.865)
    assert spearman_brown(0.865, 2) == pytest.approx(1.73 / 1.865)
    # seeds that disagree completely (a partial fidelity table can): no prediction, rather than a crash
    assert math.isnan(spearman_brown(-1.0, 2)) and math.isnan(spearman_brown(-0.6, 3))
    assert spearman_brown(-0.4, 2) == pytest.approx(-0.8 / 0.6)


def test_attenuation_ceiling_by_hand():
    assert attenuation_ceiling(0.81, 0.9) == pytest.approx(math.sqrt(0.729))
    assert attenuation_ceiling(1.0, 1.0) == 1.0 and attenuation_ceiling(0.64, 1.0) == pytest.approx(0.8)
    assert attenuation_ceiling(-0.2, 0.9) == 0.0  # a side that does not repeat leaves nothing to agree with
    assert math.isnan(attenuation_ceiling(float("nan"), 0.9))


def test_saturation_shares():
    table = {"top1": [0.99, 1.0], "top2": [0.98, 0.99], "mid": [0.6, 0.62], "low": [0.1, 0.11]}
    s = saturation(table, ceiling=1.0, chance=0.1, noise=0.02)
    assert sorted(s["at_ceiling"]) == ["top1", "top2"] and s["at_chance"] == ["low"]
    assert s["ceiling_share"] == 0.5 and s["saturated_share"] == 0.75
    s = saturation(table, ceiling=1.0, chance=None, noise=0.001)
    assert s["saturated_share"] == 0.0


def test_partial_spearman_by_hand():
    """Agreement once a covariate is taken out: within the two covariate groups {1, 2} and {3, 4}, y ranks
    each pair in reverse, so the plain rho of 0.6 (from the groups' order alone) becomes -1."""
    x, y, group = [1, 2, 3, 4], [2, 1, 4, 3], [0, 0, 1, 1]
    assert spearman(x, y) == pytest.approx(0.6)
    assert partial_spearman(x, y, [group]) == pytest.approx(-1.0)
    assert partial_spearman(x, x, [group]) == pytest.approx(1.0)
    # x's ranks less their group means are (-0.5, 0.5, -0.5, 0.5); y = (1, 2, 4, 3) leaves (-0.5, 0.5, 0.5, -0.5):
    # orthogonal, rho 0
    assert partial_spearman(x, [1, 2, 4, 3], [group]) == pytest.approx(0.0, abs=1e-12)
    # a y the covariate explains entirely leaves nothing to agree on; a constant covariate is no covariate
    assert math.isnan(partial_spearman(x, [5, 5, 9, 9], [group]))
    assert partial_spearman(x, y, [[7, 7, 7, 7]]) == pytest.approx(0.6)
    # two covariates that say the same (counts of two primitives in equal-length patterns) = one of them
    assert partial_spearman(x, y, [group, [1, 1, 0, 0]]) == pytest.approx(-1.0)
    with pytest.raises(UsageError, match="one length"):
        partial_spearman(x, y, [[0, 1]])


def test_bootstrap_partial_spearman_interval():
    # x = y within each group, and the groups are in the same order: every resample with an order agrees
    x = [1, 2, 3, 4, 5, 6]
    rho, lo, hi = bootstrap_partial_spearman(x, [10, 20, 30, 40, 50, 60], [[0, 0, 0, 1, 1, 1]], n_boot=300)
    assert rho == pytest.approx(1.0) and lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    rho, lo, hi = bootstrap_partial_spearman(x, [3, 2, 1, 6, 5, 4], [[0, 0, 0, 1, 1, 1]], n_boot=300)
    assert rho == pytest.approx(-1.0) and hi == pytest.approx(-1.0)
