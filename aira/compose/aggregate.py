"""Composer's layer-wise N_c aggregation of the top candidates into one pattern.

Top candidates: the scores (selection split) are clustered with 1-D K-means (k = `clusters`); the
members of the best cluster are the top candidates. With fewer than `min_top` members, the best
`min_top` candidates overall are used instead, so a single outlier cannot decide every layer.

N_c vote, layer by layer: at layer i, among the top candidates whose previous c layers equal the
already chosen layers i-c..i-1, pick the most frequent primitive. c = 0 is a plain per-layer vote (N_0),
c = "all" conditions on the whole chosen prefix (N_all). When no candidate matches the prefix, c shrinks
by one until some do (c = 0 always matches): that is the fallback. On equal-length candidates with no
pinned layers the fallback never fires (the candidates that voted for layer i-1 also match the prefix at
layer i); it fires when the user pins the first layers (`prefix`) to something no top candidate has.

Tie-break (equal counts): the primitive whose supporting candidates have the better mean score wins;
if still tied, the one the single best candidate has at that layer; if still tied, the alphabetically
first code, so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aira.errors import UsageError

METHODS = ("n0", "n1", "n2", "nall", "best")


@dataclass
class Candidate:
    pattern: str
    score: float


@dataclass
class Aggregation:
    pattern: str
    method: str
    top: list[Candidate]
    layers: list[dict] = field(default_factory=list)  # per layer: votes, context used, fallback

    def to_dict(self) -> dict:
        return {"pattern": self.pattern, "method": self.method,
                "top": [{"pattern": c.pattern, "score": c.score} for c in self.top], "layers": self.layers}


def kmeans_1d(values: Sequence[float], k: int, iters: int = 100) -> list[int]:
    """Deterministic 1-D K-means (centroids start at evenly spaced quantiles); returns labels."""
    xs = list(values)
    if not xs:
        return []
    distinct = sorted(set(xs))
    k = max(1, min(k, len(distinct)))
    centroids = [distinct[round(i * (len(distinct) - 1) / max(k - 1, 1))] for i in range(k)]
    labels = [0] * len(xs)
    for _ in range(iters):
        new = [min(range(k), key=lambda j: (abs(x - centroids[j]), j)) for x in xs]
        for j in range(k):
            members = [x for x, lab in zip(xs, new) if lab == j]
            if members:
                centroids[j] = sum(members) / len(members)
        if new == labels:
            break
        labels = new
    return labels


def top_candidates(cands: Sequence[Candidate], *, lower_is_better: bool, clusters: int = 5,
                   min_top: int = 3) -> list[Candidate]:
    """The best K-means cluster of scores, best first (see the module docstring)."""
    if not cands:
        raise UsageError("no finished candidates to aggregate")
    sign = -1.0 if lower_is_better else 1.0
    ranked = sorted(cands, key=lambda c: -sign * c.score)
    labels = kmeans_1d([c.score for c in ranked], clusters)
    best_label = labels[0]
    top = [c for c, lab in zip(ranked, labels) if lab == best_label]
    if len(top) < min(min_top, len(ranked)):
        top = ranked[:min_top]
    return top


def vote(top: Sequence[Candidate], method: str, *, lower_is_better: bool, prefix: str = "") -> Aggregation:
    if method not in METHODS:
        raise UsageError(f"unknown aggregation method {method!r}; valid: {', '.join(METHODS)}")
    if not top:
        raise UsageError("no candidates to aggregate")
    lengths = {len(c.pattern) for c in top}
    if len(lengths) != 1:
        raise UsageError(f"candidates have different lengths {sorted(lengths)}; aggregate one depth at a time")
    sign = -1.0 if lower_is_better else 1.0
    best = max(top, key=lambda c: sign * c.score)
    if method == "best":
        return Aggregation(best.pattern, method, list(top),
                           [{"layer": i, "chosen": p, "context": "best"} for i, p in enumerate(best.pattern)])
    n = lengths.pop()
    if len(prefix) > n:
        raise UsageError(f"pinned prefix {prefix!r} is longer than the candidates ({n} layers)")
    want = {"n0": 0, "n1": 1, "n2": 2, "nall": n}[method]
    chosen: list[str] = list(prefix)
    layers = [{"layer": i, "chosen": p, "context": "pinned"} for i, p in enumerate(prefix)]
    for i in range(len(prefix), n):
        c = min(want, i)
        while True:
            prefix = "".join(chosen[i - c:i])
            matching = [cand for cand in top if cand.pattern[i - c:i] == prefix]
            if matching or c == 0:
                break
            c -= 1
        counts: dict[str, list[float]] = {}
        for cand in matching:
            counts.setdefault(cand.pattern[i], []).append(cand.score)

        def rank(code: str) -> tuple:
            scores = counts[code]
            return (-len(scores), -sign * sum(scores) / len(scores), code != best.pattern[i], code)

        pick = min(counts, key=rank)
        chosen.append(pick)
        layers.append({"layer": i, "chosen": pick, "context": c, "fallback": c < min(want, i),
                       "votes": {k: len(v) for k, v in sorted(counts.items())}})
    return Aggregation("".join(chosen), method, list(top), layers)


def aggregate(cands: Sequence[Candidate], *, method: str = "n0", lower_is_better: bool = False,
              clusters: int = 5, min_top: int = 3, prefix: str = "") -> Aggregation:
    top = top_candidates(cands, lower_is_better=lower_is_better, clusters=clusters, min_top=min_top)
    return vote(top, method, lower_is_better=lower_is_better, prefix=prefix)
