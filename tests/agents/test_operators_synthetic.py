"""The synthetic pattern task the policy tests run on: score, optimum, noise, validation, moves, job."""

from __future__ import annotations

import importlib
import random

import pytest

from aira.agents.types import Result, Status
from aira.tasks.synthetic import PAIR_BONUS, SyntheticPatternTask, _weights, hidden_target, score


def test_optimum_scores_one_and_everything_else_less():
    task = SyntheticPatternTask(target_seed=3)
    best = task.optimum()
    assert task.evaluate(best)["metric"] == pytest.approx(1.0)
    rng = random.Random(0)
    space = task.space()
    for _ in range(200):
        p, _ = space.mutate(best, rng)
        assert task.evaluate(p)["metric"] < 1.0


def test_score_by_hand_including_the_pair_bonus():
    target = hidden_target(0)
    w = _weights(0, 16)
    flip = {"A": "M", "M": "S", "S": "A"}
    # Only layers 0 and 1 right: two weights and one adjacent-pair bonus.
    p = target[:2] + "".join(flip[c] for c in target[2:])
    best = sum(w) + PAIR_BONUS * 15
    assert score(p, target, w) == pytest.approx((w[0] + w[1] + PAIR_BONUS) / best)
    # Layers 0 and 2 right, 1 wrong: no bonus (the pair term is epistatic).
    q = target[0] + flip[target[1]] + target[2] + "".join(flip[c] for c in target[3:])
    assert score(q, target, w) == pytest.approx((w[0] + w[2]) / best)


def test_lower_is_better_reports_regret_and_noise_is_seeded():
    p = "AMAMAMAMAMAMAMAM"
    up, down = SyntheticPatternTask(), SyntheticPatternTask(lower_is_better=True)
    assert down.evaluate(p)["metric"] == pytest.approx(1 - up.evaluate(p)["metric"])
    noisy = SyntheticPatternTask(noise=0.05)
    a, b, c = noisy.evaluate(p, seed=1), noisy.evaluate(p, seed=1), noisy.evaluate(p, seed=2)
    assert a == b and a["metric"] != c["metric"]
    assert a["metric"] != a["selection_metric"]   # independent draws, as a held-out split
    assert abs(a["metric"] - up.evaluate(p)["metric"]) < 0.25


def test_validate_messages():
    task = SyntheticPatternTask()
    assert task.validate("A" * 16) is None
    assert "16 letters, got 3" in task.validate("AMS")
    assert "'X'" in task.validate("X" * 16)
    assert "must be a string" in task.validate(["A"] * 16)


def test_make_job_runs_the_module_function():
    task = SyntheticPatternTask(target_seed=5, noise=0.01)
    job = task.make_job("SSSSAAAAMMMMSSSS", seed=7, job_id="j1")
    mod, fn = job.fn.split(":")
    out = getattr(importlib.import_module(mod), fn)(**job.kwargs)
    assert out == task.evaluate("SSSSAAAAMMMMSSSS", seed=7)
    r = Result.from_dict(out)
    assert r.status is Status.OK and r.metrics["true_score"] == pytest.approx(r.metric, abs=0.1)


def test_moves_stay_valid():
    task = SyntheticPatternTask()
    space, rng = task.space(), random.Random(1)
    kinds = set()
    for _ in range(100):
        a, _ = space.sample(rng)
        b, idea = space.mutate(a, rng)
        kinds.add(idea.split(":")[0])
        c, _ = space.crossover(a, b, rng)
        assert task.validate(a) is None and task.validate(b) is None and task.validate(c) is None
    assert kinds == {"point mutation", "segment mutation"}
