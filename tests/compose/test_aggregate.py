"""N_c aggregation on hand-made candidate sets: each variant, ties, fallback, top selection."""

import pytest

from aira.compose.aggregate import Candidate, aggregate, kmeans_1d, top_candidates, vote
from aira.errors import UsageError


def C(*pairs):
    return [Candidate(p, s) for p, s in pairs]


def test_n0_is_a_plain_per_layer_vote():
    top = C(("AM", 0.9), ("AM", 0.8), ("MM", 0.7), ("MA", 0.6), ("MA", 0.5))
    # layer 0: A 2, M 3 -> M; layer 1: M 3 (AM, AM, MM), A 2 -> M
    assert vote(top, "n0", lower_is_better=False).pattern == "MM"


def test_n1_conditions_on_the_previous_layer():
    top = C(("AM", 0.9), ("AM", 0.8), ("MM", 0.7), ("MA", 0.6), ("MA", 0.5))
    # layer 0 -> M; layer 1 among candidates with M at layer 0: MM, MA, MA -> A
    agg = vote(top, "n1", lower_is_better=False)
    assert agg.pattern == "MA"
    assert agg.layers[1]["votes"] == {"A": 2, "M": 1} and agg.layers[1]["context"] == 1


def test_n2_and_nall_follow_the_prefix():
    top = C(("AAMM", 1.0), ("MAAM", 0.9), ("MAAA", 0.8), ("MMMA", 0.7), ("AMMA", 0.6))
    # layer0: A 2, M 3 -> M. n1 layer1 | M: A 2 (MAAM, MAAA), M 1 -> A. layer2 | A: AAMM->M, MAAM->A, MAAA->A -> A
    # layer3 | prev A: MAAM->M, MAAA->A: tie 1-1 -> better mean score: M (0.9) beats A (0.8)
    assert vote(top, "n1", lower_is_better=False).pattern == "MAAM"
    # n2 layer 3 | "AA": MAAM, MAAA -> tie -> M (0.9). nall layer 3 | "MAA": same two -> M
    assert vote(top, "n2", lower_is_better=False).pattern == "MAAM"
    assert vote(top, "nall", lower_is_better=False).pattern == "MAAM"
    # n0: layer1 A 3 (AAMM, MAAM, MAAA) vs M 2 -> A; layer2 M 2 (AAMM, MMMA, AMMA -> 3) vs A 2 -> M
    # layer3: M 2 (AAMM, MAAM), A 3 -> A
    assert vote(top, "n0", lower_is_better=False).pattern == "MAMA"


def test_tie_break_by_mean_score_then_best_candidate_then_code():
    # equal counts, different mean scores: A's supporters average 0.75, S's 0.85
    top = C(("A", 0.9), ("A", 0.6), ("S", 0.8), ("S", 0.9))
    assert vote(top, "n0", lower_is_better=False).pattern == "S"
    # lower is better flips which mean wins
    assert vote(top, "n0", lower_is_better=True).pattern == "A"
    # equal counts and equal means: the single best candidate's choice wins (here M, score 0.95)
    top = C(("A", 0.9), ("A", 0.7), ("M", 0.95), ("M", 0.65))
    assert vote(top, "n0", lower_is_better=False).pattern == "M"


def test_fallback_to_shorter_context_when_no_candidate_matches():
    top = C(("AMM", 0.9), ("AMA", 0.8), ("MAA", 0.7))
    # pin layer 0 to S, which no candidate has: layer 1 falls back from c=1 to c=0 (votes M 2, A 1)
    agg = vote(top, "n1", lower_is_better=False, prefix="S")
    assert agg.pattern[:2] == "SM"
    assert agg.layers[1]["fallback"] is True and agg.layers[1]["context"] == 0
    # layer 2 conditions on "M" again (AMM, AMA match): tie M/A -> mean 0.9 vs 0.8 -> M
    assert agg.layers[2]["context"] == 1 and agg.layers[2]["fallback"] is False
    assert agg.pattern == "SMM"
    # nall with pinned "SA": layer 2 shrinks to c=1 ("A" at layer 1: MAA) -> A
    agg = vote(top, "nall", lower_is_better=False, prefix="SA")
    assert agg.pattern == "SAA" and agg.layers[2]["context"] == 1


def test_best_method_returns_single_best():
    top = C(("AAM", 0.5), ("MMS", 0.9), ("SSS", 0.1))
    assert vote(top, "best", lower_is_better=False).pattern == "MMS"
    assert vote(top, "best", lower_is_better=True).pattern == "SSS"


def test_kmeans_and_top_cluster():
    labels = kmeans_1d([0.1, 0.12, 0.11, 0.5, 0.52, 0.9, 0.91], 3)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4] != labels[5] == labels[6]
    cands = C(("AAAA", 0.91), ("AAAM", 0.9), ("AAMM", 0.89), ("MMMM", 0.5), ("SSSS", 0.1), ("SSSM", 0.12))
    top = top_candidates(cands, lower_is_better=False, clusters=3)
    assert [c.pattern for c in top] == ["AAAA", "AAAM", "AAMM"]
    # a single outlier at the top is padded to min_top candidates
    cands = C(("AAAA", 0.99), ("AAAM", 0.5), ("AAMM", 0.49), ("MMMM", 0.48), ("SSSS", 0.1))
    assert len(top_candidates(cands, lower_is_better=False, clusters=3, min_top=3)) == 3
    agg = aggregate(cands, method="n0", clusters=3)
    assert len(agg.pattern) == 4 and agg.to_dict()["method"] == "n0"


def test_bad_input():
    with pytest.raises(UsageError, match="method"):
        vote(C(("AM", 1.0)), "n7", lower_is_better=False)
    with pytest.raises(UsageError, match="lengths"):
        vote(C(("AM", 1.0), ("AMA", 0.5)), "n0", lower_is_better=False)
    with pytest.raises(UsageError, match="no finished"):
        aggregate([], method="n0")
