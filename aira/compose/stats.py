"""Rank statistics for proxy fidelity: Spearman with ties, bootstrap intervals, noise floor, saturation.

All functions take plain Python lists so they can be checked by hand; numpy is used only for speed in
the bootstrap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from itertools import combinations

from aira.errors import UsageError


def average_ranks(xs: Sequence[float]) -> list[float]:
    """Ranks 1..n; tied values share the mean of the ranks they span."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return float("nan")  # a constant ranking carries no order
    return sxy / math.sqrt(sxx * syy)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho = Pearson correlation of average ranks (correct with ties)."""
    if len(xs) != len(ys):
        raise UsageError(f"spearman needs paired scores, got {len(xs)} and {len(ys)}")
    if len(xs) < 2:
        raise UsageError("spearman needs at least 2 paired scores")
    return pearson(average_ranks(xs), average_ranks(ys))


def _percentile_interval(values: list[float], alpha: float) -> tuple[float, float]:
    values = sorted(values)
    return values[math.floor(alpha / 2 * (len(values) - 1))], values[math.ceil((1 - alpha / 2) * (len(values) - 1))]


def _resampled(stat, n: int, n_boot: int, seed: int) -> list[float]:
    """`stat(idx)` over `n_boot` resamples of the n items with replacement (fixed seed); undefined (nan) ones
    skipped. The one resampler of every bootstrap here, so their intervals are comparable."""
    rng = random.Random(seed)
    boots = []
    for _ in range(n_boot):
        v = stat([rng.randrange(n) for _ in range(n)])
        if not math.isnan(v):
            boots.append(v)
    return boots


def _interval(boots: list[float], alpha: float) -> tuple[float, float]:
    return _percentile_interval(boots, alpha) if boots else (float("nan"), float("nan"))


def bootstrap_spearman(xs: Sequence[float], ys: Sequence[float], *, n_boot: int = 2000, alpha: float = 0.05,
                       seed: int = 0) -> tuple[float, float, float]:
    """(rho, low, high): percentile interval from resampling the paired items with replacement.
    Resamples whose ranking is constant (rho undefined) are skipped."""
    boots = _resampled(lambda idx: spearman([xs[i] for i in idx], [ys[i] for i in idx]), len(xs), n_boot, seed)
    return (spearman(xs, ys), *_interval(boots, alpha))


def paired_bootstrap_spearman_difference(xs_a: Sequence[float], xs_b: Sequence[float], ys: Sequence[float], *,
                                         n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Is proxy a's ranking closer to ys than proxy b's? rho(a, ys) - rho(b, ys) with a percentile interval
    from resampling the items jointly (both proxies see the same resampled patterns, so what the patterns
    share cancels), and the share of resamples in which b agrees at least as well as a."""
    if not len(xs_a) == len(xs_b) == len(ys):
        raise UsageError(f"a paired comparison needs paired scores, got {len(xs_a)}, {len(xs_b)} and {len(ys)}")
    diff = spearman(xs_a, ys) - spearman(xs_b, ys)

    def stat(idx: list[int]) -> float:
        y = [ys[i] for i in idx]
        return spearman([xs_a[i] for i in idx], y) - spearman([xs_b[i] for i in idx], y)

    boots = _resampled(stat, len(ys), n_boot, seed)
    if not boots:
        return {"difference": diff, "ci": [float("nan"), float("nan")], "b_at_least_as_good": float("nan")}
    return {"difference": diff, "ci": list(_interval(boots, alpha)),
            "b_at_least_as_good": sum(d <= 0 for d in boots) / len(boots)}


def _residual_ranks(values: Sequence[float], design) -> list[float]:
    """The average ranks of `values` minus their least-squares fit on the columns of `design` (numpy)."""
    import numpy as np

    r = np.asarray(average_ranks(values), dtype=float)
    beta, *_ = np.linalg.lstsq(design, r, rcond=None)
    return list(r - design @ beta)


def partial_spearman(xs: Sequence[float], ys: Sequence[float], covariates: Sequence[Sequence[float]]) -> float:
    """Spearman of xs and ys once the covariates are accounted for: the Pearson correlation of xs's and ys's
    average ranks after each is fitted (least squares, with an intercept) on the covariates' average ranks,
    i.e. the agreement left when what the covariates explain (linearly in their ranks) is taken out.
    Covariates that do not vary are ignored (with none left it is `spearman`). nan where a side is
    entirely explained by the covariates (nothing is left to agree on)."""
    import numpy as np

    n = len(xs)
    if len(ys) != n or any(len(c) != n for c in covariates):
        raise UsageError(f"partial_spearman needs paired scores and covariates of one length, got {len(xs)}, "
                         f"{len(ys)} and {[len(c) for c in covariates]}")
    cols = [average_ranks(c) for c in covariates if len(set(c)) > 1]
    if not cols:
        return spearman(xs, ys)
    design = np.column_stack([np.ones(n)] + [np.asarray(c, dtype=float) for c in cols])
    rx, ry = _residual_ranks(xs, design), _residual_ranks(ys, design)
    tol = 1e-9 * n * n  # ranks are O(n): residuals below this are rounding, not order
    if sum(v * v for v in rx) <= tol * tol or sum(v * v for v in ry) <= tol * tol:
        return float("nan")
    return float(pearson(rx, ry))


def bootstrap_partial_spearman(xs: Sequence[float], ys: Sequence[float], covariates: Sequence[Sequence[float]],
                               *, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(rho, low, high) for `partial_spearman`, resampling the items (with their covariates) as
    `bootstrap_spearman` does; resamples where it is undefined are skipped."""
    boots = _resampled(lambda idx: partial_spearman([xs[i] for i in idx], [ys[i] for i in idx],
                                                     [[c[i] for i in idx] for c in covariates]), len(xs), n_boot, seed)
    return (partial_spearman(xs, ys, covariates), *_interval(boots, alpha))


def seed_to_seed_spearman(table: Mapping[str, Sequence[float]]) -> float:
    """Mean Spearman between every pair of seeds; table: pattern -> scores per seed (same seed order)."""
    n_seeds = min(len(v) for v in table.values())
    if n_seeds < 2:
        raise UsageError("seed-to-seed agreement needs at least 2 seeds per pattern")
    keys = list(table)
    rhos = [spearman([table[k][a] for k in keys], [table[k][b] for k in keys])
            for a, b in combinations(range(n_seeds), 2)]
    rhos = [r for r in rhos if not math.isnan(r)]
    return sum(rhos) / len(rhos) if rhos else float("nan")


def grouped_seed_to_seed_spearman(table: Mapping[str, Sequence[float]], group: int) -> float:
    """Seed-to-seed Spearman of candidates scored as the mean of `group` seeds: the mean Spearman, over
    every pair of disjoint seed groups of that size, between the patterns' group means. With group 1 it is
    `seed_to_seed_spearman`. Needs at least 2 * group seeds per pattern."""
    if group < 1:
        raise UsageError(f"a seed group has at least 1 seed, got {group}")
    n_seeds = min(len(v) for v in table.values())
    if n_seeds < 2 * group:
        raise UsageError(f"seed-to-seed agreement of {group}-seed means needs {2 * group} seeds per pattern, "
                         f"got {n_seeds}")
    keys = list(table)
    groups = list(combinations(range(n_seeds), group))
    rhos = []
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            if set(a) & set(b):
                continue
            xs = [sum(table[k][s] for s in a) / group for k in keys]
            ys = [sum(table[k][s] for s in b) / group for k in keys]
            r = spearman(xs, ys)
            if not math.isnan(r):
                rhos.append(r)
    return sum(rhos) / len(rhos) if rhos else float("nan")


def spearman_brown(rho: float, k: float) -> float:
    """Predicted reliability of the mean of k replicates from the reliability of one (Spearman-Brown); k may
    be a mean number of seeds per pattern where patterns hold different numbers.
    An estimate for rank correlations, not a measurement: fidelity reports label it "predicted".
    Undefined (nan) where 1 + (k - 1) rho <= 0, e.g. rho = -1 from a partial table of 3 patterns."""
    denom = 1 + (k - 1) * rho
    return k * rho / denom if denom > 0 else float("nan")


def attenuation_ceiling(rel_a: float, rel_b: float) -> float:
    """The largest correlation two noisy measurements of the same ranking can be expected to show:
    sqrt(rel_a * rel_b), each `rel` the reliability of one side (how well its scores repeat on fresh seeds,
    for the number of seeds it averages). Spearman's correction for attenuation, used here on rank
    correlations as an approximation: a proxy that ranked exactly like the large scale would still measure
    about this much against it, because both sides carry seed noise. A side whose scores do not repeat at
    all (reliability <= 0) leaves nothing to agree with: 0. nan where a reliability is unknown."""
    if math.isnan(rel_a) or math.isnan(rel_b):
        return float("nan")
    return math.sqrt(max(rel_a, 0.0) * max(rel_b, 0.0))


def std(xs: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def noise_floor(table: Mapping[str, Sequence[float]]) -> float:
    """Pooled seed-to-seed standard deviation over patterns: sqrt(mean of per-pattern variances)."""
    variances = [std(v) ** 2 for v in table.values() if len(v) >= 2]
    if not variances:
        raise UsageError("the noise floor needs at least 2 seeds for some pattern")
    return math.sqrt(sum(variances) / len(variances))


def saturation(table: Mapping[str, Sequence[float]], *, ceiling: float | None, chance: float | None,
               noise: float | None = None) -> dict:
    """Share of patterns whose mean score is within `noise` (default: 2 x the noise floor) of the metric's
    ceiling (e.g. accuracy 1.0) or of chance: such patterns cannot be ranked by this proxy."""
    if noise is None:
        noise = 2 * noise_floor(table) if any(len(v) >= 2 for v in table.values()) else 0.0
    means = {k: sum(v) / len(v) for k, v in table.items()}
    at_ceiling = [k for k, m in means.items() if ceiling is not None and abs(ceiling - m) <= noise]
    at_chance = [k for k, m in means.items() if chance is not None and abs(m - chance) <= noise]
    n = len(means)
    return {"noise": noise, "at_ceiling": at_ceiling, "at_chance": at_chance,
            "ceiling_share": len(at_ceiling) / n, "chance_share": len(at_chance) / n,
            "saturated_share": len(set(at_ceiling) | set(at_chance)) / n}


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile for probability p and df >= 1 degrees of freedom (fractional too, as Welch's are),
    without scipy. With t = sqrt(df) tan(theta) the density becomes proportional to cos(theta)^(df - 1) on
    [0, pi/2), so P(0 <= T <= t) = K * integral_0^atan(t / sqrt(df)) cos^(df-1), K = G((df+1)/2) / (sqrt(pi)
    G(df/2)): a bounded integral (Simpson's rule), solved for t by doubling, then bisection."""
    if not 0 < p < 1:
        raise UsageError(f"a quantile needs 0 < p < 1, got {p}")
    if not df >= 1:  # below 1 the integrand has a pole at pi/2; Welch's df is never below 1
        raise UsageError(f"t_quantile needs df >= 1, got {df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    k = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(math.pi)

    def mass(theta: float, n: int = 256) -> float:  # P(0 <= T <= sqrt(df) tan(theta))
        h = theta / n
        s = sum((4 if i % 2 else 2) * math.cos(i * h) ** (df - 1) for i in range(1, n))
        return k * h / 3 * (1 + s + math.cos(theta) ** (df - 1))

    def below(t: float) -> bool:  # Simpson's steps stay a fraction of the peak's width, 1 / sqrt(df), near t
        return mass(math.atan(t / math.sqrt(df))) < p - 0.5

    lo, hi = 0.0, 2.0
    while below(hi):
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if below(mid) else (lo, mid)
    return (lo + hi) / 2


def welch_difference(a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05) -> dict:
    """mean(a) - mean(b) with Welch's t interval (unequal variances; Welch-Satterthwaite degrees of freedom).
    Needs 2 values a side; where both sides have no spread at all the interval is the difference itself."""
    if len(a) < 2 or len(b) < 2:
        raise UsageError(f"a t interval needs at least 2 values a side, got {len(a)} and {len(b)}")
    diff = sum(a) / len(a) - sum(b) / len(b)
    va, vb = std(a) ** 2 / len(a), std(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"difference": diff, "ci": [diff, diff], "df": float("inf"), "se": 0.0}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(1 - alpha / 2, df) * se
    return {"difference": diff, "ci": [diff - half, diff + half], "df": df, "se": se}
