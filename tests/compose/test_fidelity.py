"""Proxy fidelity: hand-computed figures, calibration sets, the shipped table, and a run end to end."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from aira.cli import main
from aira.compose import fidelity as fid
from aira.compose.calibration import ORDERINGS, calibration_patterns, load_patterns, place
from aira.errors import UsageError
from aira.tasks import proxies
from aira.tasks.compose import PROXIES

# ---------------------------------------------------------------- Spearman across fidelities


def test_cross_fidelity_spearman_matches_hand_computation():
    # one swapped pair in 4: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    a = {"p1": [1.0], "p2": [2.0], "p3": [3.0], "p4": [4.0]}
    b = {"p1": [1.0], "p2": [3.0], "p3": [2.0], "p4": [4.0]}
    assert fid.cross_fidelity(a, b)["spearman"] == pytest.approx(0.8)


def test_cross_fidelity_uses_seed_means_and_average_ranks_for_ties():
    # means a = 1, 2, 2, 3 (a tie at 2) vs b = 1, 2, 3, 4: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4);
    # Pearson of the ranks = 4.5 / sqrt(4.5 * 5)
    a = {"p1": [0.5, 1.5], "p2": [2.0, 2.0], "p3": [1.0, 3.0], "p4": [3.0, 3.0]}
    b = {"p1": [1.0], "p2": [2.0], "p3": [3.0], "p4": [4.0]}
    r = fid.cross_fidelity(a, b)
    assert r["spearman"] == pytest.approx(4.5 / math.sqrt(22.5))
    assert r["patterns"] == 4


def test_bootstrap_interval_hand_computed_cases():
    # a perfect ranking stays perfect in every resample that has an order at all
    a = {f"p{i}": [float(i)] for i in range(6)}
    b = {f"p{i}": [float(i * i)] for i in range(6)}
    r = fid.cross_fidelity(a, b)
    assert r["spearman"] == pytest.approx(1.0) and r["ci"] == [pytest.approx(1.0), pytest.approx(1.0)]
    # x = 1, 2, 3 vs y = 1, 3, 2: of the 24 resamples with an order, 6 give -1 (the swapped pair alone),
    # 6 give 0.5 (all three), 12 give +1, so the 95% interval runs from -1 to 1
    a3 = {"p1": [1.0], "p2": [2.0], "p3": [3.0]}
    b3 = {"p1": [1.0], "p2": [3.0], "p3": [2.0]}
    r3 = fid.cross_fidelity(a3, b3)
    assert r3["spearman"] == pytest.approx(0.5)
    assert r3["ci"] == [pytest.approx(-1.0), pytest.approx(1.0)]


def test_cross_fidelity_needs_three_shared_patterns():
    r = fid.cross_fidelity({"p1": [1.0], "p2": [2.0], "p3": [3.0]}, {"p1": [1.0], "p2": [2.0]})
    assert r == {"spearman": None, "ci": None, "patterns": 2, "ceiling": None}


def test_ceiling_from_both_sides_seed_noise_by_hand():
    """How much agreement the two sides' seed noise leaves room for: sqrt(rel_small x rel_large), each side's
    single-seed seed-to-seed carried to its mean number of seeds per pattern by Spearman-Brown."""
    # small: seed 0 ranks p1 < p2 < p3 < p4, seed 1 swaps p2 and p3: single-seed rho 0.8, 2-seed means
    # 2 x 0.8 / 1.8 = 8/9. Large: both seeds rank alike: reliability 1. Ceiling sqrt(8/9).
    small = {"p1": [1.0, 1.0], "p2": [2.0, 3.0], "p3": [3.0, 2.0], "p4": [4.0, 4.0]}
    large = {"p1": [1.0, 1.1], "p2": [2.0, 2.1], "p3": [3.0, 3.1], "p4": [4.0, 4.1]}
    c = fid.cross_fidelity(small, large)["ceiling"]
    assert c["seed_to_seed"] == [pytest.approx(0.8), pytest.approx(1.0)] and c["seeds"] == [2.0, 2.0]
    assert c["reliability"] == [pytest.approx(8 / 9), pytest.approx(1.0)]
    assert c["spearman"] == pytest.approx(math.sqrt(8 / 9))
    # a large side with one seed on half its patterns: mean 1.5 seeds; its two-seed patterns agree (rho 1 on
    # 4 of them), so its reliability stays 1 and the ceiling is unchanged; the seeds are reported as 1.5
    wide = {f"p{i}": [float(i), float(i)] if i <= 4 else [float(i)] for i in range(1, 9)}
    small8 = {f"p{i}": [float(i), float(i) + (0.5 if i % 2 else -0.5)] for i in range(1, 9)}
    c8 = fid.cross_fidelity(small8, wide)["ceiling"]
    assert c8["seeds"] == [2.0, 1.5] and c8["reliability"][1] == pytest.approx(1.0) and c8["patterns"] == [8, 4]
    # a side with one seed everywhere has no measured noise: no ceiling rather than a guess
    assert fid.cross_fidelity(small, {p: [v[0]] for p, v in large.items()})["ceiling"] is None
    # seeds that rank in reverse: Spearman-Brown is undefined there, so no ceiling is claimed
    flip = {"p1": [1.0, 3.0], "p2": [2.0, 2.0], "p3": [3.0, 1.0]}
    assert fid.cross_fidelity(flip, {"p1": [1.0, 1.0], "p2": [2.0, 2.0], "p3": [3.0, 3.0]})["ceiling"] is None


# ---------------------------------------------------------------- per-fidelity figures

SYNTHETIC = {"a": [0.10, 0.12], "b": [0.50, 0.52], "c": [0.99, 1.00], "d": [0.30, 0.26]}


def test_noise_floor_seed_agreement_and_saturation_on_a_synthetic_table():
    f = fid.fidelity_figures(SYNTHETIC, ceiling=1.0, chance=0.1)
    # per-pattern variances of two seeds are diff^2 / 2: 0.0002, 0.0002, 0.00005, 0.0008
    assert f["noise_floor"] == pytest.approx(math.sqrt(0.0003125))
    assert f["seed_to_seed"] == pytest.approx(1.0)  # both seeds order a < d < b < c
    sat = f["saturation"]
    assert sat["noise"] == pytest.approx(2 * math.sqrt(0.0003125))
    assert sat["at_ceiling"] == ["c"] and sat["at_chance"] == ["a"]  # 0.995 and 0.11 are within 0.035
    assert sat["saturated_share"] == pytest.approx(0.5)
    assert f["score_range"] == [pytest.approx(0.11), pytest.approx(0.995)]
    assert (f["patterns"], f["seeds"]) == (4, 2)


def test_seed_disagreement_lowers_seed_to_seed_spearman():
    swapped = {"a": [0.1, 0.4], "b": [0.2, 0.3], "c": [0.3, 0.2], "d": [0.4, 0.1]}
    f = fid.fidelity_figures(swapped, ceiling=1.0, chance=0.0)
    assert f["seed_to_seed"] == pytest.approx(-1.0)
    # variances 0.045, 0.005, 0.005, 0.045: floor sqrt(0.025); every mean (0.25) is within 2 floors of chance
    assert f["noise_floor"] == pytest.approx(math.sqrt(0.025))
    assert f["saturation"]["saturated_share"] == 1.0


def test_saturation_is_undefined_for_a_metric_without_ceiling_or_chance():
    f = fid.fidelity_figures({"a": [3.1, 3.2], "b": [2.9, 2.95], "c": [3.6, 3.6]}, ceiling=None, chance=None)
    assert f["saturation"] is None and f["seed_to_seed"] == pytest.approx(1.0)
    s = fid.summarize({"small": {"a": [3.1, 3.2], "b": [2.9, 2.95]}}, {"small": (None, None)}, {"small": [1.0]})
    assert s["saturation"] is None
    assert "saturated" not in fid.format_entry({"status": "measured", **fid.table_entry({**s, "fidelities": ["small"]})})


def test_one_seed_gives_no_seed_figures():
    f = fid.fidelity_figures({"a": [0.2], "b": [0.5], "c": [0.7]}, ceiling=1.0, chance=0.1)
    assert f["seed_to_seed"] is None and f["noise_floor"] is None and f["seeds"] == 1


def test_candidates_scored_as_two_seed_means():
    four = {"a": [1.0, 3.0, 0.0, 2.0], "b": [2.0, 2.0, 2.0, 2.0], "c": [5.0, 6.0, 4.0, 1.0]}
    f = fid.fidelity_figures(four, ceiling=None, chance=None, group=2)
    # measured from the three splits of 4 seeds into two pairs (hand-computed in test_stats)
    assert f["seed_to_seed_candidates"] == pytest.approx((1.5 / math.sqrt(3.0) + 0.5 + 1.0) / 3)
    r1 = f["seed_to_seed"]
    assert f["seed_to_seed_predicted"] == pytest.approx(2 * r1 / (1 + r1))
    assert f["candidate_noise"] == pytest.approx(f["noise_floor"] / math.sqrt(2))
    # 2 seeds cannot measure 2-seed candidates: only the prediction
    two = fid.fidelity_figures({k: v[:2] for k, v in four.items()}, ceiling=None, chance=None, group=2)
    assert two["seed_to_seed_candidates"] is None and two["seed_to_seed_predicted"] is not None
    # 1 seed per candidate: the candidates' figure is the seed-to-seed figure itself
    one = fid.fidelity_figures(four, ceiling=None, chance=None)
    assert one["seed_to_seed_candidates"] == one["seed_to_seed"] and one["seed_to_seed_predicted"] is None


def test_table_line_names_the_candidates_figure_and_says_when_it_is_predicted():
    base = {"status": "measured", "date": "d", "machine": "m", "patterns": 20, "seeds": 4, "space": "attn-mlp",
            "seed_to_seed": 0.86, "seeds_per_candidate": 2}
    assert "2-seed candidates rho 0.93," in fid.format_entry({**base, "seed_to_seed_candidates": 0.93})
    line = fid.format_entry({**base, "seed_to_seed_predicted": 0.92})
    assert "2-seed candidates rho 0.92 (predicted)" in line


def test_warnings_name_the_figures_below_target():
    good = {"seed_to_seed": 0.85, "seeds_per_candidate": 2, "seed_to_seed_candidates": 0.92, "spearman": 0.85,
            "large_patterns": 8}
    assert fid.fidelity_warnings(good) == []
    # a transfer never measured is a warning of its own (lm-cpu: seed figures, no small-to-large)
    unmeasured = fid.fidelity_warnings({"seed_to_seed": 0.95, "spearman": None})
    assert unmeasured == [("its agreement with 4x wider, 4x longer training (small-to-large) is not measured: "
                           "treat the winners as candidates to check at a larger scale, not as results")]
    noisy = fid.fidelity_warnings({**good, "seed_to_seed_candidates": 0.8})
    assert len(noisy) == 1 and "rho 0.80 only (target 0.9)" in noisy[0]
    one_seed = fid.fidelity_warnings({"seed_to_seed": 0.79, "spearman": 0.85})  # 1 seed a candidate: the seed figure is it
    assert len(one_seed) == 1 and "rho 0.79 only" in one_seed[0]
    far = fid.fidelity_warnings({**good, "spearman": 0.33})
    assert len(far) == 1 and "agrees poorly" in far[0] and "rho 0.33 on 8 patterns; target 0.8" in far[0]
    # with its interval: one that holds 0 cannot tell the proxy from a random ranking, and says so
    weak = fid.fidelity_warnings({**good, "spearman": 0.45, "ci": [0.05, 0.8]})
    assert "agrees poorly" in weak[0] and "rho 0.45 [0.05, 0.80] on 8 patterns" in weak[0]
    none = fid.fidelity_warnings({**good, "spearman": 0.08, "ci": [-0.4, 0.51], "large_patterns": 20})
    assert "shows no measurable agreement" in none[0] and "rho 0.08 [-0.40, 0.51] on 20 patterns" in none[0]
    # too few seeds to measure 2-seed candidates: the Spearman-Brown prediction stands in, labelled
    pred = fid.fidelity_warnings({"seed_to_seed": 0.74, "seeds_per_candidate": 2, "seed_to_seed_predicted": 0.85,
                                  "spearman": 0.85})
    assert len(pred) == 1 and "rho 0.85 (predicted from single seeds) only" in pred[0]
    assert fid.fidelity_warnings({**good, "seed_to_seed_candidates": None, "seed_to_seed_predicted": 0.91}) == []
    sat = fid.fidelity_warnings({**good, "saturation": 0.25})
    assert len(sat) == 1 and "25% of its calibration patterns score within the noise of chance" in sat[0]


def test_summary_headline_keys_are_what_the_report_shows():
    large = {"a": [0.2], "b": [0.6], "c": [0.9], "d": [0.4]}
    s = fid.summarize(
        {"small": SYNTHETIC, "large": large},
        {"small": (1.0, 0.1), "large": (1.0, 0.1)},
        {"small": [2.0, 4.0], "large": [30.0]},
    )
    assert list(s)[:5] == ["spearman", "ci", "seed_to_seed", "noise_floor", "saturation"]
    assert s["spearman"] == pytest.approx(1.0)  # means a < d < b < c at both fidelities
    assert s["saturation"] == pytest.approx(0.5)
    assert s["per_fidelity"]["small"]["seconds_per_eval"] == pytest.approx(3.0)
    assert s["per_fidelity"]["large"]["evaluations"] == 1
    assert s["compared"] == "small vs large (4 patterns)"


def test_composition_counts_and_agreement_beyond_them_by_hand():
    """Two attention layers in 4 patterns, three in the other 2. The large scale: more attention is better,
    and within each composition the order below. A count ranks it with the Pearson of the count ranks
    (2.5 x 4, 5.5 x 2) and the large ranks (1..6): 12 / sqrt(12 x 17.5). The mlp count is that reversed, so
    only the attention count is reported."""
    large = {"AAMM": [1.0], "AMAM": [2.0], "MAMA": [3.0], "MMAA": [4.0], "AAAM": [5.0], "MAAA": [6.0]}
    c = fid.composition_check(large, large)
    assert list(c["counts"]) == ["A"] and c["patterns"] == 6
    assert c["counts"]["A"]["spearman"] == pytest.approx(12 / math.sqrt(12 * 17.5))
    assert c["given_composition"]["spearman"] == pytest.approx(1.0)
    # a small side that ranks each composition's orderings in reverse but the compositions right: it agrees
    # overall (rho > 0) and disagrees beyond the composition (-1 after the counts are taken out)
    rev = {"AAMM": [4.0], "AMAM": [3.0], "MAMA": [2.0], "MMAA": [1.0], "AAAM": [6.0], "MAAA": [5.0]}
    r = fid.composition_check(rev, large)
    assert fid.cross_fidelity(rev, large)["spearman"] > 0 and r["given_composition"]["spearman"] == pytest.approx(-1.0)
    # three primitives: every count is reported; too few shared patterns: nothing
    three = {"AMS": [1.0], "AAS": [2.0], "SSA": [3.0], "MMA": [4.0]}
    assert set(fid.composition_check(three, three)["counts"]) == {"A", "M", "S"}
    assert fid.composition_check({"AM": [1.0], "MA": [2.0]}, {"AM": [1.0], "MA": [2.0]})["counts"] == {}
    # a large side that only the composition explains leaves nothing beyond it
    flat = {p: [float(p.count("A"))] for p in large}
    assert fid.composition_check(large, flat)["given_composition"] is None
    # in the summary (against the last fidelity) and in the printed result
    s = fid.summarize({"small": rev, "large": large}, {"small": (1.0, 0.0), "large": (1.0, 0.0)}, {})
    assert s["composition"]["given_composition"]["spearman"] == pytest.approx(-1.0)
    text = fid.format_result({**s, "proxy": "x", "patterns_total": 6, "seeds_per_pattern": 1})
    assert "composition alone vs large (6 patterns): attn count +0.828" in text
    assert "beyond the composition (counts partialled out): rho -1.000" in text
    entry = fid.table_entry({**s, "fidelities": ["small", "large"]})
    assert entry["count_spearman"] == {"A": pytest.approx(0.828, abs=1e-3)}
    assert entry["given_composition"] == pytest.approx(-1.0)


def test_per_task_figures_name_the_tasks_that_carry_the_ranking():
    """Two MAD tasks: copying ranks the patterns as the large scale does, memorization in reverse (as v3's
    did); the per-task figures say so, each against its own chance level."""
    pats = ["MMMM", "MMAM", "AMAM", "AAAM", "AAAA"]
    copy_s = {p: [0.1 + 0.1 * i, 0.12 + 0.1 * i] for i, p in enumerate(pats)}
    copy_l = {p: [0.2 + 0.15 * i] for i, p in enumerate(pats)}
    mem_s = {p: [0.9 - 0.2 * i, 0.88 - 0.2 * i] for i, p in enumerate(pats)}
    mem_l = {p: [1.0] for p in pats}  # saturated at the large scale
    mean = {f: {p: [(a + b) / 2 for a, b in zip(c[p], m[p])] for p in pats}
            for f, c, m in (("small", copy_s, mem_s), ("large", copy_l, mem_l))}
    train = {"task": "mad:selective_copying,memorization", "mad_settings": "cpu32"}
    s = fid.summarize(mean, {"small": (1.0, 0.0), "large": (1.0, 0.0)}, {},
                      meta={"train": {"small": train, "large": train}},
                      tasks={"small": {"selective_copying": copy_s, "memorization": mem_s},
                             "large": {"selective_copying": copy_l, "memorization": mem_l}})
    copy, mem = s["per_task"]["selective_copying"], s["per_task"]["memorization"]
    assert copy["spearman"] == pytest.approx(1.0) and copy["small"]["seed_to_seed"] == pytest.approx(1.0)
    assert mem["small"]["seed_to_seed"] == pytest.approx(1.0) and mem["spearman"] is None  # large ties: no order
    assert mem["large"]["saturated_share"] == 1.0 and copy["large"]["saturated_share"] == 0.0
    # each against its own chance: 1 / 16 values for both at these settings
    assert copy["small"]["chance"] == pytest.approx(1 / 16) and mem["small"]["chance"] == pytest.approx(1 / 16)
    text = fid.format_result({**s, "proxy": "x", "patterns_total": 5, "seeds_per_pattern": 2})
    assert "per task (seed-to-seed rho, saturated share" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("selective_copying"))
    assert "small 1.00, 0%, 0.11..0.51" in line and "rho 1.00 [" in line
    # while a run goes, its figures skip the bootstrap intervals (rewritten after every evaluation)
    quick = fid.summarize(mean, {"small": (1.0, 0.0), "large": (1.0, 0.0)}, {},
                          meta={"train": {"small": train, "large": train}}, intervals=False,
                          tasks={"small": {"selective_copying": copy_s}, "large": {"selective_copying": copy_l}})
    assert quick["per_task"]["selective_copying"]["spearman"] == pytest.approx(1.0)
    assert quick["per_task"]["selective_copying"]["ci"] is None and quick["composition"]["counts"]["A"]["ci"] == [None, None]


def test_warns_when_counting_layers_ranks_the_large_scale_better_than_the_proxy():
    base = {"seed_to_seed": 0.95, "spearman": -0.18, "ci": [-0.5, 0.18], "large_patterns": 34}
    warned = fid.fidelity_warnings({**base, "count_spearman": {"A": 0.65}})
    assert len(warned) == 2
    assert "counting a pattern's attn layers ranks that larger training better (|rho| 0.65, its sign read off the " \
           "larger runs) than the proxy does (rho -0.18)" in warned[1]
    # a count that ranks worse than the proxy, or no count figures (older tables): no such warning
    assert len(fid.fidelity_warnings({**base, "spearman": 0.7, "count_spearman": {"A": 0.65}})) == 1
    assert len(fid.fidelity_warnings(base)) == 1


# ---------------------------------------------------------------- fidelities and metric bounds


def test_large_counterpart_is_4x_width_and_4x_tokens():
    small = fid.fidelity_train(PROXIES["mad-cpu"], "small")
    large = fid.fidelity_train(PROXIES["mad-cpu"], "large")
    assert small == PROXIES["mad-cpu"].train_kwargs()
    from aira.train.budget import parse_budget

    assert parse_budget(large["budget"]).amount == 4 * parse_budget(small["budget"]).amount
    ov = large["overrides"]
    assert (ov["d_model"], ov["n_heads"], ov["ffn_dim"]) == (256, 16, 768)  # head size 16 and FFN 3x kept
    assert large["lr"] == pytest.approx(small["lr"] / 2)
    same = ("budget", "lr", "overrides")
    assert {k: v for k, v in large.items() if k not in same} == {
        k: v for k, v in small.items() if k not in same
    }
    with pytest.raises(UsageError, match="unknown fidelity"):
        fid.fidelity_train(PROXIES["mad-cpu"], "medium")


def test_metric_bounds_of_mad_and_lm():
    ceiling, chance = fid.metric_bounds(
        {"task": "mad:in_context_recall,selective_copying", "mad_settings": "cpu32"}
    )
    # recall answers are one of 8 values; copying answers one of 16 content tokens
    assert (ceiling, chance) == (1.0, pytest.approx((1 / 8 + 1 / 16) / 2))
    assert fid.metric_bounds({"task": "lm:shakespeare"}) == (None, None)
    assert fid.metric_bounds({"task": "mad:compression", "mad_score": "loglik"}) == (1.0, 0.0)
    # a task with settings of its own counts its own vocabulary (cpu32: 16 tokens, test-v8: 8)
    from aira.data import mad

    mad.MAD_PRESETS["test-v8"] = mad.MadSettings(vocab_size=8, seq_len=16, n_copy=2)
    try:
        _, chance = fid.metric_bounds({"task": "mad:selective_copying@test-v8,selective_copying",
                                       "mad_settings": "cpu32"})
    finally:
        del mad.MAD_PRESETS["test-v8"]
    assert chance == pytest.approx((1 / 8 + 1 / 16) / 2)
    # MAD-lab's settings: noisy recall's 8 values (of 32 tokens), memorization's 128 values (of 256)
    _, chance = fid.metric_bounds({"task": "mad:noisy_in_context_recall,memorization", "mad_settings": "madlab"})
    assert chance == pytest.approx((1 / 8 + 1 / 128) / 2)


# ---------------------------------------------------------------- calibration sets


@pytest.mark.parametrize("space, codes", [("attn-mlp", "AM"), ("attn-mlp-mamba", "AMS"),
                                          ("attn-mlp-deltanet", "AMD")])
def test_calibration_sets_span_the_mixes_and_orderings(space, codes):
    pats = calibration_patterns(space)
    assert len(pats) >= 24 and len(set(pats)) == len(pats)
    assert all(len(p) == 16 and set(p) <= set(codes) for p in pats)
    shares = {p.count("A") / 16 for p in pats}
    assert min(shares) == 0.0 and max(shares) == 1.0
    third = codes[2:]  # Mamba-2 or Gated DeltaNet
    if third:
        recurrent = {p.count(third) / 16 for p in pats}
        assert min(recurrent) == 0.0 and max(recurrent) == 1.0
    # the same mix appears in several orders
    mixes = Counter(tuple(sorted(Counter(p).items())) for p in pats)
    assert max(mixes.values()) >= 3
    # a short prefix already spans the attention shares
    assert {p.count("A") for p in pats[:10]} >= {0, 8, 16}
    assert {p.count(third or "S") for p in pats[:10]} >= ({0, 8, 16} if third else {0})
    if third == "D":  # the same recipes as the Mamba-2 space, D in S's place
        assert pats == [p.replace("S", "D") for p in calibration_patterns("attn-mlp-mamba")]


def test_place_orderings():
    assert place({"A": 2}, "M", 8, "front") == "AAMMMMMM"
    assert place({"A": 2}, "M", 8, "back") == "MMMMMMAA"
    assert place({"A": 2}, "M", 8, "middle") == "MMMAAMMM"
    assert place({"A": 2}, "M", 8, "even") == "MMAMMMAM"
    assert set(ORDERINGS) == {"even", "front", "back", "middle"}
    with pytest.raises(UsageError, match="exceed"):
        place({"A": 9}, "M", 8, "even")


def test_pattern_files_and_their_errors(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# three patterns\nAMAM\n(AM)x2  # the same, compressed\nMMMM\n")
    with pytest.raises(UsageError, match="twice"):
        load_patterns(str(f), "attn-mlp", 4)
    f.write_text("AMAM\nMMMM\nAAMM\n")
    assert load_patterns(str(f), "attn-mlp", 4) == ["AMAM", "MMMM", "AAMM"]
    f.write_text("AMAM\nMMMM\n")
    with pytest.raises(UsageError, match="at least 3"):
        load_patterns(str(f), "attn-mlp", 4)
    with pytest.raises(UsageError, match="no file"):
        load_patterns(str(tmp_path / "missing.txt"), "attn-mlp", 4)


# ---------------------------------------------------------------- the shipped table


def test_shipped_table_marks_unmeasured_proxies():
    table = fid.load_table()
    assert set(PROXIES) - {"smoke"} <= set(table)
    for name, entry in table.items():
        line = fid.measured_fidelity(name)
        if entry.get("status") == "measured":
            # a shipped figure must describe the proxy as it is now: retuning a proxy means re-measuring it
            assert fid.measured_entry(name) == entry, f"{name}: figures of other settings (re-measure it)"
            assert "measured 20" in line and entry["patterns"] >= 3
        else:
            assert line is None and "not measured" in entry["status"]
    assert fid.measured_fidelity("no-such-proxy") is None


def test_compose_run_prints_figures_or_warns(capsys, monkeypatch, tmp_path):
    from aira.commands.compose import _print_fidelity

    table = tmp_path / "t.json"
    table.write_text(
        json.dumps(
            {
                "mad-cpu": {
                    "status": "measured",
                    "fingerprint": _fingerprint("mad-cpu"),
                    "date": "2026-11-27",
                    "machine": "2 cores",
                    "patterns": 10,
                    "seeds": 2,
                    "seed_to_seed": 0.93,
                    "noise_floor": 0.012,
                    "saturation": 0.0,
                }
            }
        )
    )
    monkeypatch.setattr(proxies, "TABLE_PATH", table)
    _print_fidelity("mad-cpu")
    _print_fidelity("smoke")
    err = capsys.readouterr().err
    assert (
        "proxy fidelity (mad-cpu): seed-to-seed rho 0.93 (10 patterns x 2 seeds), small-to-large not "
        "measured, noise floor 0.012, 0% saturated; measured 2026-11-27 on 2 cores"
    ) in err
    assert "warning: proxy smoke has no measured fidelity figures" in err


def _fingerprint(proxy: str) -> str:
    from aira.tasks.compose import settings_fingerprint

    return settings_fingerprint(PROXIES[proxy].train_kwargs())


def test_figures_of_a_retuned_proxy_are_not_used(capsys, monkeypatch, tmp_path):
    from aira.commands.compose import _print_fidelity
    from aira.tasks.compose import ComposeTask

    table = tmp_path / "t.json"
    entry = {"status": "measured", "fingerprint": _fingerprint("mad-cpu"), "date": "2026-11-27",
             "space": "attn-mlp", "layers": 16, "noise_floor": 0.06, "patterns": 10, "seeds": 2}
    table.write_text(json.dumps({"mad-cpu": entry}))
    monkeypatch.setattr(proxies, "TABLE_PATH", table)
    assert fid.measured_entry("mad-cpu") == entry and fid.stale_entry("mad-cpu") is None
    # the same name with another budget: its figures no longer apply, and the run says so
    monkeypatch.setitem(PROXIES, "mad-cpu", PROXIES["mad-cpu"].with_train(budget="100steps"))
    assert fid.measured_entry("mad-cpu") is None and fid.stale_entry("mad-cpu") == entry
    assert ComposeTask(proxy="mad-cpu", space="attn-mlp").measured_noise is None
    _print_fidelity("mad-cpu")
    assert "settings changed after its fidelity was measured (2026-11-27)" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end


def _cli(out, *extra):
    return main(
        [
            "compose",
            "fidelity",
            "--proxy",
            "smoke",
            "--space",
            "attn-mlp",
            "--layers",
            "4",
            "--limit",
            "4",
            "--seeds",
            "2",
            "--executor",
            "inline",
            "--workers",
            "2",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_fidelity_run_end_to_end_then_from_cache(tmp_path, monkeypatch, capsys):
    # a cheaper large fidelity keeps the test fast; the machinery is the same
    monkeypatch.setattr(fid, "LARGE_WIDTH_FACTOR", 2)
    monkeypatch.setattr(fid, "LARGE_TOKEN_FACTOR", 1)
    monkeypatch.setattr(
        fid,
        "large_overrides",
        lambda preset, factor=2: {"d_model": 128, "n_heads": 8, "n_kv_heads": 4, "ffn_dim": 384},
    )
    table = tmp_path / "table.json"
    monkeypatch.setattr(proxies, "TABLE_PATH", table)
    out = tmp_path / "fid"
    assert _cli(out, "--fidelities", "small,large", "--record") == 0
    r = json.loads((out / "fidelity.json").read_text())
    scores = json.loads((out / "fidelity-scores.json").read_text())
    assert r["complete"] and not r["failed"] and r["patterns_total"] == 4
    assert set(scores) == {"small", "large"}
    for f in ("small", "large"):
        assert len(scores[f]) == 4 and all(
            len(v) == 2 and 0 <= min(v) <= max(v) <= 1 for v in scores[f].values()
        )
        assert r["per_fidelity"][f]["evaluations"] == 8 and r["per_fidelity"][f]["seconds_per_eval"] > 0
    assert r["train"]["large"]["overrides"]["d_model"] == 128
    if r["spearman"] is not None:
        lo, hi = r["ci"]
        assert -1 <= lo <= r["spearman"] <= hi <= 1
    assert r["noise_floor"] >= 0 and 0 <= r["saturation"] <= 1
    assert r["per_fidelity"]["small"]["chance"] == pytest.approx(2 / 16)
    rows = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(row["status"] == "ok" and row["cached"] == 0 for row in rows)
    assert "small  seed-to-seed rho" in capsys.readouterr().out
    entry = json.loads(table.read_text())["smoke"]
    assert entry["status"] == "measured" and entry["patterns"] == 4 and entry["seeds"] == 2
    assert entry["large_patterns"] == 4 and entry["space"] == "attn-mlp"
    line = fid.measured_fidelity("smoke")
    assert line.startswith("seed-to-seed rho ") and "(4 attn-mlp patterns x 2 seeds)" in line
    if r["spearman"] is not None:
        assert "small-to-large rho" in line and "(4 patterns)" in line
        if entry["ceiling"] is not None:  # both fidelities ran 2 seeds: the seed-noise ceiling is named
            assert f"~{entry['ceiling']:.2f} at most given both sides' seed noise" in line
            assert entry["ceiling"] == pytest.approx(r["ceiling"]["spearman"])
    # a rerun is served by the cache and gives the same figures
    assert _cli(out, "--fidelities", "small,large") == 0
    rows = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert all(row["cached"] == 1 for row in rows)
    assert json.loads((out / "fidelity-scores.json").read_text()) == scores
    # per-task scores (served from the cache too): the smoke proxy has one task, so they are the suite's
    tasks = json.loads((out / "fidelity-tasks.json").read_text())
    assert tasks == {f: {"in_context_recall": scores[f]} for f in ("small", "large")}
    small_task = r["per_task"]["in_context_recall"]["small"]
    assert small_task["seed_to_seed"] == r["per_fidelity"]["small"]["seed_to_seed"]
    assert small_task["chance"] == pytest.approx(2 / 16)
    # and the report renders it
    from aira.report.data import load_run
    from aira.report.sections_stage2 import fidelity_section

    html = str(fidelity_section(load_run(out)))
    assert "Proxy fidelity" in html and "seed_to_seed" in html


def test_large_fidelity_can_take_fewer_seeds(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "LARGE_TOKEN_FACTOR", 1)
    monkeypatch.setattr(
        fid, "large_overrides", lambda preset, factor=2: {"d_model": 96, "n_heads": 6, "n_kv_heads": 3, "ffn_dim": 288}
    )
    out = tmp_path / "fid"
    assert _cli(out, "--fidelities", "small,large", "--large-seeds", "1") == 0
    r = json.loads((out / "fidelity.json").read_text())
    scores = json.loads((out / "fidelity-scores.json").read_text())
    assert r["seeds_per_fidelity"] == {"small": 2, "large": 1}
    assert all(len(v) == 2 for v in scores["small"].values()) and all(len(v) == 1 for v in scores["large"].values())
    assert r["per_fidelity"]["large"]["evaluations"] == 4 and r["compared_patterns"] == 4


def test_proxy_seeds_are_the_default_of_searches_and_fidelity_runs(monkeypatch):
    import dataclasses

    from aira.tasks.compose import ComposeTask

    monkeypatch.setitem(PROXIES, "smoke", dataclasses.replace(PROXIES["smoke"], seeds=3))
    t = ComposeTask(proxy="smoke", layers=4)
    assert t.seeds == 3 and t.make_job("AMAM", seed=0, job_id="j").kwargs["seeds"] == 3
    assert ComposeTask(proxy="smoke", layers=4, seeds=1).seeds == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--large-seeds", "0"], "--large-seeds must be at least 1"),
        (["--fidelities", "small,medium"], "--fidelities must be"),
        (["--limit", "2"], "--limit must be at least 3"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--patterns", "nope.txt"], "no file"),
        (["--proxy", "nope"], "unknown proxy"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, message):
    assert _cli(tmp_path / "o", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_compose_search_accepts_only_gains_above_the_measured_noise(tmp_path, monkeypatch, capsys):
    """The orchestrator measures the floor on the reference pattern and the greedy policy's acceptance
    (`best`: improve / keep) uses one std of it as its margin, for the Compose task too."""
    from aira.agents.policies._common import SearchPolicy

    margins = []
    real_best = SearchPolicy.best

    def spy(self, nodes):
        margins.append(self.improve_margin)
        return real_best(self, nodes)

    monkeypatch.setattr(SearchPolicy, "best", spy)
    out = tmp_path / "c"
    assert (
        main(
            [
                "compose",
                "run",
                "--proxy",
                "smoke",
                "--layers",
                "4",
                "--agents",
                "greedy:offline?num_drafts=1",
                "--no-controls",
                "--budget",
                "3evals",
                "--executor",
                "inline",
                "--noise-seeds",
                "3",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["runs", "show", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    refs = [n["metric"] for n in shown["nodes"] if n["agent"] == "reference"]
    assert len(refs) == 3
    mean = sum(refs) / 3
    std = math.sqrt(sum((r - mean) ** 2 for r in refs) / 2)
    assert std > 0 and margins and all(m == pytest.approx(std) for m in margins)


def test_compose_task_takes_its_measured_noise_from_the_table_for_its_space_and_depth(tmp_path, monkeypatch):
    from aira.tasks.compose import ComposeTask

    table = tmp_path / "t.json"
    entry = {"status": "measured", "fingerprint": _fingerprint("mad-cpu"), "space": "attn-mlp", "layers": 16,
             "noise_floor": 0.06}
    table.write_text(json.dumps({"mad-cpu": entry}))
    monkeypatch.setattr(proxies, "TABLE_PATH", table)
    # a candidate's score is the mean of its seeds: the std of one seed / sqrt(seeds)
    assert ComposeTask(proxy="mad-cpu", space="attn-mlp", seeds=2).measured_noise == pytest.approx(0.06 / math.sqrt(2))
    assert ComposeTask(proxy="mad-cpu", space="attn-mlp", seeds=1).measured_noise == pytest.approx(0.06)
    # measured elsewhere: no figure, the run measures its own
    assert ComposeTask(proxy="mad-cpu", space="attn-mlp-mamba").measured_noise is None
    assert ComposeTask(proxy="mad-cpu", space="attn-mlp", layers=8).measured_noise is None
    assert ComposeTask(proxy="smoke", space="attn-mlp").measured_noise is None


# ---------------------------------------------------------------- a reference run


def _fake_reference(d, scores: dict, *, task="mad:in_context_recall", fidelity="large"):
    d.mkdir(parents=True)
    (d / "fidelity.json").write_text(json.dumps({"proxy": "other", "fidelities": ["small", fidelity],
                                                 "train": {fidelity: {"task": task}}}))
    (d / "fidelity-scores.json").write_text(json.dumps({"small": {}, fidelity: scores}))
    return d


def test_a_run_is_ranked_against_a_reference_runs_scores(tmp_path, capsys):
    out = tmp_path / "fid"
    assert _cli(out, "--fidelities", "small") == 0
    small = json.loads((out / "fidelity-scores.json").read_text())["small"]
    means = {p: sum(v) / len(v) for p, v in small.items()}
    order = sorted(means, key=means.get)
    # a reference that ranks the patterns exactly as this run does (rho 1), then in reverse (rho -1)
    same = _fake_reference(tmp_path / "same", {p: [float(i)] for i, p in enumerate(order)})
    flip = _fake_reference(tmp_path / "flip", {p: [float(-i), float(-i)] for i, p in enumerate(order)})
    capsys.readouterr()
    assert _cli(out, "--fidelities", "small", "--reference", str(same)) == 0
    r = json.loads((out / "fidelity.json").read_text())
    from aira.compose.stats import spearman

    expected = spearman([means[p] for p in order], list(range(4)))  # 1.0 unless this run has tied means
    assert r["reference"]["spearman"] == pytest.approx(expected) and expected > 0.7
    assert r["reference"]["patterns"] == 4 and r["reference"]["against"].startswith("other large (")
    assert r["reference"]["train"] == {"task": "mad:in_context_recall"}  # what the reference was trained on
    printed = capsys.readouterr().out
    assert "small vs reference other large" in printed and "(4 patterns): rho" in printed
    # a reference with per-task scores: this run's tasks are ranked against the same tasks (smoke has one)
    (same / "fidelity-tasks.json").write_text(json.dumps({"large": {"in_context_recall": {
        p: [float(i)] for i, p in enumerate(order)}}}))
    assert _cli(out, "--fidelities", "small", "--reference", str(same)) == 0
    per = json.loads((out / "fidelity.json").read_text())["reference"]["per_task"]
    assert per["in_context_recall"]["spearman"] == pytest.approx(expected) and per["in_context_recall"]["patterns"] == 4
    assert "in_context_recall alone vs the reference's in_context_recall: rho" in capsys.readouterr().out
    assert _cli(out, "--fidelities", "small", "--reference", f"{flip}:large") == 0
    r2 = json.loads((out / "fidelity.json").read_text())
    assert r2["reference"]["spearman"] == pytest.approx(-r["reference"]["spearman"])
    # compared on the shared patterns only; the rest of the figures do not change
    part = _fake_reference(tmp_path / "part", {p: [float(i)] for i, p in enumerate(order[:3])})
    assert _cli(out, "--fidelities", "small", "--reference", str(part)) == 0
    r3 = json.loads((out / "fidelity.json").read_text())
    assert r3["reference"]["patterns"] == 3 and r3["seed_to_seed"] == r["seed_to_seed"]
    assert "the reference has 3 of these 4 patterns" in capsys.readouterr().err


def test_a_run_is_compared_with_the_reference_runs_own_small_side(tmp_path, capsys):
    """A reference run that holds its own small scores is the baseline a new proxy design has to beat: the
    run's agreement with the reference minus the baseline's, with a paired bootstrap interval."""
    out = tmp_path / "fid"
    assert _cli(out, "--fidelities", "small") == 0
    small = json.loads((out / "fidelity-scores.json").read_text())["small"]
    means = {p: sum(v) / len(v) for p, v in small.items()}
    order = sorted(means, key=means.get)
    d = tmp_path / "ref"
    d.mkdir()
    (d / "fidelity.json").write_text(json.dumps({"proxy": "base", "fidelities": ["small", "large"],
                                                 "train": {"large": {"task": "mad:in_context_recall"}}}))
    # large ranks like this run; the reference's own small side ranks in reverse
    (d / "fidelity-scores.json").write_text(json.dumps({
        "small": {p: [float(-i), float(-i)] for i, p in enumerate(order)},
        "large": {p: [float(i)] for i, p in enumerate(order)}}))
    capsys.readouterr()
    assert _cli(out, "--fidelities", "small", "--reference", str(d)) == 0
    r = json.loads((out / "fidelity.json").read_text())["reference"]
    base = r["baseline"]
    assert base["against"] == "base small" and base["patterns"] == 4
    assert base["spearman"] == pytest.approx(-1.0) and base["run_spearman"] == pytest.approx(r["spearman"])
    assert base["difference"] == pytest.approx(r["spearman"] + 1.0) and base["baseline_at_least_as_good"] == 0.0
    printed = capsys.readouterr().out
    assert "against the same reference, base small (its own small side): rho -1.000; this run minus that +" in printed
    # a reference whose small side is empty has no baseline
    flat = _fake_reference(tmp_path / "flat", {p: [float(i)] for i, p in enumerate(order)})
    assert _cli(out, "--fidelities", "small", "--reference", str(flat)) == 0
    assert "baseline" not in json.loads((out / "fidelity.json").read_text())["reference"]


def test_a_reference_with_two_seeds_names_the_ceiling_its_noise_allows(tmp_path, capsys):
    """Against a reference whose own seeds disagree, even an exact proxy cannot reach rho 1: the output names
    the most the two sides' seed noise allows, and says which side needs seeds when that is below target."""
    out = tmp_path / "fid"
    assert _cli(out, "--fidelities", "small") == 0
    small = json.loads((out / "fidelity-scores.json").read_text())["small"]
    order = sorted(small, key=lambda p: sum(small[p]) / len(small[p]))
    # reference seeds: the same order, then the two middle patterns swapped: rho 0.8 between its seeds
    swapped = [order[0], order[2], order[1], order[3]]
    ref = {p: [float(order.index(p)), float(swapped.index(p))] for p in order}
    d = _fake_reference(tmp_path / "ref", ref)
    capsys.readouterr()
    assert _cli(out, "--fidelities", "small", "--reference", str(d)) == 0
    c = json.loads((out / "fidelity.json").read_text())["reference"]["ceiling"]
    assert c["seed_to_seed"][1] == pytest.approx(0.8) and c["reliability"][1] == pytest.approx(8 / 9)
    expected = fid.cross_fidelity(small, ref)["ceiling"]["spearman"]
    assert c["spearman"] == pytest.approx(expected)
    printed = capsys.readouterr().out
    assert c["spearman"] is not None, "the smoke run's seeds should rank its 4 patterns"
    assert f"at most ~{c['spearman']:.2f} expected even for an exact proxy" in printed
    # a noisier reference: its second seed ranks the four (2, 3, 1, 4): rho 1 - 6 x 6 / 60 = 0.4 between its
    # seeds, 2-seed reliability 0.8 / 1.4, so the ceiling is under sqrt(0.571) = 0.76 whatever this run's noise
    second = [1.0, 2.0, 0.0, 3.0]
    noisy = {p: [float(i), second[i]] for i, p in enumerate(order)}
    d2 = _fake_reference(tmp_path / "noisy", noisy)
    assert _cli(out, "--fidelities", "small", "--reference", str(d2)) == 0
    c2 = json.loads((out / "fidelity.json").read_text())["reference"]["ceiling"]
    assert c2["seed_to_seed"][1] == pytest.approx(0.4) and c2["reliability"][1] == pytest.approx(0.8 / 1.4)
    assert c2["spearman"] < c["spearman"] and c2["spearman"] < 0.8
    side = "large" if c2["reliability"][1] < c2["reliability"][0] else "small"
    assert f"below the 0.8 target: more {side} seeds before another proxy design" in capsys.readouterr().out
    # above the target (the first reference, if this run repeats well enough) nothing is said about seeds
    if c["spearman"] >= 0.8:
        assert "below the 0.8 target" not in printed


def test_bad_references_are_one_line(tmp_path, capsys):
    pats = load_patterns("calibration", "attn-mlp", 4)[:4]  # what _cli trains
    good = {p: [0.1 * i] for i, p in enumerate(pats)}
    cases = [
        (str(tmp_path / "missing"), "no fidelity.json and fidelity-scores.json"),
        (f"{_fake_reference(tmp_path / 'a', good)}:medium", "holds no medium scores (it has: small, large)"),
        (str(_fake_reference(tmp_path / "b", good, task="lm:shakespeare")), "are not comparable"),
        (str(_fake_reference(tmp_path / "c", {pats[0]: [0.5], "AAAA": [0.1]})), "shares 1 of these 4 patterns"),
    ]
    for spec, message in cases:
        assert _cli(tmp_path / "o", "--fidelities", "small", "--reference", spec) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_the_shipped_large_reference_is_the_measured_mad_cpu_check():
    """`--reference mad-cpu-large`: v3's large fidelity on all 34 attn-mlp calibration patterns, as the
    shipped table's small-to-large figure was computed from it."""
    ref = fid.load_reference("mad-cpu-large", {"task": "mad:compression"})
    assert ref["fidelity"] == "large" and ref["proxy"] == "mad-cpu" and len(ref["scores"]) == 34
    assert ref["dir"] == "shipped: mad-cpu-large"
    assert ref["train"]["overrides"]["d_model"] == 256 and ref["train"]["budget"] == "1536steps"
    calib = load_patterns("calibration", "attn-mlp", 16)
    assert set(ref["scores"]) == set(calib) and all(0 <= v[0] <= 1 for v in ref["scores"].values())
    # two large seeds for every pattern, so the large side's own seed noise is measured
    assert sorted(Counter(len(v) for v in ref["scores"].values()).items()) == [(2, 34)]
    small = fid.load_reference("mad-cpu-large:small", {"task": "mad:compression"})["scores"]
    cross = fid.cross_fidelity(small, ref["scores"])
    entry = fid.load_table()["mad-cpu"]
    assert cross["spearman"] == pytest.approx(entry["spearman"]) and entry["large_patterns"] == 34
    assert cross["ci"] == pytest.approx(entry["ci"])
    assert cross["ceiling"]["spearman"] == pytest.approx(entry["ceiling"]) and 0 < entry["ceiling"] < 1
    # what the composition alone says about the large scale, and v3's agreement beyond it
    comp = fid.composition_check(small, ref["scores"])
    assert entry["count_spearman"] == {"A": pytest.approx(comp["counts"]["A"]["spearman"])}
    assert entry["given_composition"] == pytest.approx(comp["given_composition"]["spearman"])
    assert entry["count_spearman"]["A"] > entry["spearman"]  # counting attention layers beats the proxy
    # its per-task scores: each evaluation's score is the mean of its three tasks', seed by seed
    tasks = json.loads((fid.REFERENCES_DIR / "mad-cpu-large" / "fidelity-tasks.json").read_text())
    for f, side in (("large", ref["scores"]), ("small", small)):
        assert set(tasks[f]) == {"selective_copying", "compression", "memorization"}
        for p, v in side.items():
            for s, total in enumerate(v):
                assert sum(tasks[f][t][p][s] for t in tasks[f]) / 3 == pytest.approx(total, abs=1e-12)
    assert ref["tasks"] == tasks["large"]
    stored = json.loads((fid.REFERENCES_DIR / "mad-cpu-large" / "fidelity.json").read_text())["per_task"]
    assert stored["selective_copying"]["spearman"] == pytest.approx(
        fid.cross_fidelity(tasks["small"]["selective_copying"], tasks["large"]["selective_copying"])["spearman"])
    # its small side is the baseline a new design is compared with: the shipped figure again, against itself
    base = fid.baseline_comparison(small, small, ref["scores"])
    assert base["spearman"] == pytest.approx(entry["spearman"]) and base["difference"] == 0.0
    with pytest.raises(UsageError, match="shipped reference: mad-cpu-large"):
        fid.load_reference("no-such-reference", {"task": "mad:compression"})


def test_show_prints_a_finished_run_or_the_shipped_reference_without_training(tmp_path, capsys):
    assert main(["compose", "fidelity", "--show", "mad-cpu-large"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("shipped reference mad-cpu-large: 2026-11-27 on ")
    assert "small vs large (34 patterns): rho -0.183" in out and "composition alone vs large (34 patterns)" in out
    assert "selective_copying          small 0.48" in out
    # a run that was stopped part-way says so; a folder without a run is one line and exit 2
    d = tmp_path / "part"
    d.mkdir()
    r = fid.summarize({"small": SYNTHETIC}, {"small": (1.0, 0.1)}, {}, meta={"complete": False, "proxy": "x"})
    (d / "fidelity.json").write_text(json.dumps(r))
    assert main(["compose", "fidelity", "--show", str(d)]) == 0
    assert "(the run did not finish: these are the figures of the evaluations it completed)" in capsys.readouterr().out
    for bad, message in ((tmp_path / "none", "no fidelity.json in"), (tmp_path, "no fidelity.json in")):
        assert main(["compose", "fidelity", "--show", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    (tmp_path / "fidelity.json").write_text("[1, 2]")
    assert main(["compose", "fidelity", "--show", str(tmp_path)]) == 2
    assert "is not the output of `aira compose fidelity`" in capsys.readouterr().err


def test_figures_of_a_table_whose_seeds_disagree_completely_do_not_crash():
    """A partial table can hold 3 patterns whose two seeds rank them in reverse (rho -1): the figures say
    so and the predicted 2-seed figure is undefined (this crashed a fidelity run mid-way once)."""
    figs = fid.fidelity_figures({"a": [0.1, 0.3], "b": [0.2, 0.2], "c": [0.3, 0.1]}, ceiling=1.0, chance=0.0, group=2)
    assert figs["seed_to_seed"] == pytest.approx(-1.0) and figs["seed_to_seed_predicted"] is None


def _processes_naming(text: str) -> list[int]:
    import os

    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        pids.append(int(d))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not __import__("os").path.isdir("/proc"), reason="reads /proc to find the workers")
def test_sigterm_stops_the_jobs_it_started(tmp_path):
    # jobs run in their own sessions (so a timeout kills their whole tree); a SIGTERM to the command, from
    # `timeout`, `kill` or a cluster's scheduler, must not leave them running on, holding CPUs or a GPU
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "fid"
    cmd = [sys.executable, "-m", "aira", "compose", "fidelity", "--proxy", "smoke", "--space", "attn-mlp",
           "--limit", "4", "--seeds", "3", "--fidelities", "small", "--workers", "2", "--out", str(out)]
    parent = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and not workers:
        workers = [p for p in _processes_naming(str(out / "jobs")) if p != parent.pid]
        time.sleep(0.05)
    assert workers, "no worker started within 60 s"
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=30)
    assert parent.returncode == 128 + signal.SIGTERM
    assert "aira: stopped by SIGTERM" in err
    left = [p for p in _processes_naming(str(out / "jobs")) if p != parent.pid]
    assert left == [], f"workers still running after the command stopped: {left}"
    assert (out / "evaluations.jsonl").exists()  # what finished before the signal is on disk


@pytest.mark.slow
def test_fidelity_with_batches_scores_as_without(tmp_path):
    assert _cli(tmp_path / "one", "--fidelities", "small", "--cache", "off") == 0
    assert _cli(tmp_path / "many", "--fidelities", "small", "--cache", "off", "--batch", "4", "--executor", "local",
                "--workers", "1") == 0
    one = json.loads((tmp_path / "one" / "fidelity-scores.json").read_text())["small"]
    many = json.loads((tmp_path / "many" / "fidelity-scores.json").read_text())["small"]
    assert one.keys() == many.keys()
    for p in one:
        assert many[p] == pytest.approx(one[p], abs=1e-3)
    log = (tmp_path / "many" / "jobs")
    assert any("+" in f.name for f in log.glob("*.log"))  # jobs ran several to a worker
