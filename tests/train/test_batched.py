"""Many models trained as one (aira.train.batched) give what training each alone gives."""

import pytest
import torch

import aira.models
from aira.train import trainer
from aira.train.batched import batchable, train_many
from aira.train.trainer import TrainConfig

BASE = {"preset": "tiny", "mad_settings": "tiny", "budget": "12steps", "lr": 3e-3, "progress": False, "threads": 1}
LOSS_RTOL = 1e-4   # batched matrix products round differently: 12 steps keep the drift far below this
WEIGHT_ATOL = 1e-5


def _alone(cfg: TrainConfig, monkeypatch) -> tuple[trainer.TrainResult, list[torch.nn.Module]]:
    """The single path's result and the models it trained (one per task), in task order."""
    built = []
    real = aira.models.build_model

    def recording(*a, **kw):
        built.append(real(*a, **kw))
        return built[-1]

    monkeypatch.setattr(aira.models, "build_model", recording)
    result = trainer.train(cfg, log=lambda *_: None)
    monkeypatch.setattr(aira.models, "build_model", real)
    return result, built


def _check(cfgs, monkeypatch):
    trained = {}
    many = train_many(cfgs, on_models=trained.update)
    n_tasks = len(many[0].per_task)
    assert len(trained) == len(cfgs) * n_tasks
    for ci, (cfg, got) in enumerate(zip(cfgs, many)):
        want, models = _alone(cfg, monkeypatch)
        assert got.status == want.status == "ok"
        assert got.steps == want.steps and got.tokens == want.tokens
        assert got.params == want.params and got.pattern == want.pattern
        for task in want.per_task:
            w, g = want.per_task[task], got.per_task[task]
            assert g.loss == pytest.approx(w.loss, rel=LOSS_RTOL)
            assert g.accuracy == pytest.approx(w.accuracy, abs=1e-3)
        assert got.metric == pytest.approx(want.metric, abs=1e-3)
        assert got.selection_metric == pytest.approx(want.selection_metric, abs=1e-3)
        for si, alone in enumerate(models):
            together = dict(trained[(ci, si)].named_parameters())
            for name, p in alone.named_parameters():
                torch.testing.assert_close(together[name], p, atol=WEIGHT_ATOL, rtol=1e-4, msg=name)
    return many


def test_one_model(monkeypatch):
    _check([TrainConfig(pattern="AMAM", seed=3, task="mad:in_context_recall", **BASE)], monkeypatch)


def test_the_seeds_of_a_candidate(monkeypatch):
    _check([TrainConfig(pattern="AMAM", seed=s, task="mad:selective_copying", **BASE) for s in (0, 1)], monkeypatch)


def test_six_models_two_seeds_of_three_tasks_with_their_own_vocabularies(monkeypatch):
    task = "mad:selective_copying,compression,memorization"
    many = _check([TrainConfig(pattern="MAMA", seed=s, task=task, **BASE) for s in (0, 1)], monkeypatch)
    assert len(many[0].per_task) == 3


@pytest.mark.slow
def test_mixed_patterns_grouped_by_primitive_at_each_layer(monkeypatch):
    pats = ["AMAM", "MMAA", "SMAM", "AWMS", "DGEM", "GDME"]
    _check([TrainConfig(pattern=p, seed=i, task="mad:in_context_recall,compression", **BASE)
            for i, p in enumerate(pats)], monkeypatch)


def test_what_cannot_train_together_says_why():
    a = TrainConfig(pattern="AMAM", **BASE)
    assert batchable([a, TrainConfig(pattern="MMMM", seed=1, **BASE)]) is None
    assert batchable([a, TrainConfig(pattern="AMAM", **{**BASE, "lr": 1e-3})]) == "the configs differ in lr"
    assert batchable([TrainConfig(pattern="AMAM", **{**BASE, "budget": "30s"})]).startswith("a time budget")
    assert batchable([a, TrainConfig(pattern="AMAMAM", **BASE)]) == "the patterns have different depths"
    assert batchable([TrainConfig(pattern="AM", compile=True, **BASE)]) == "torch.compile"
    with pytest.raises(ValueError, match="the configs differ in lr"):
        train_many([a, TrainConfig(pattern="AMAM", **{**BASE, "lr": 1e-3})])


def test_a_diverging_model_stops_alone_and_the_others_train_on(monkeypatch):
    real = aira.models.build_model

    def poisoned(*a, **kw):  # the model seeded 1 starts with a non-finite weight: it diverges at step 0
        m = real(*a, **kw)
        if torch.initial_seed() == 1:
            with torch.no_grad():
                m.blocks[0].norm.weight[0] = float("nan")
        return m

    monkeypatch.setattr(aira.models, "build_model", poisoned)
    cfgs = [TrainConfig(pattern="AMAM", seed=s, task="mad:in_context_recall", **BASE) for s in (0, 1)]
    many = train_many(cfgs)
    alone = [trainer.train(c, log=lambda *_: None) for c in cfgs]
    assert [r.status for r in many] == [r.status for r in alone] == ["ok", "diverged"]
    assert many[1].error == alone[1].error == "loss became nan at step 0"
    assert many[0].val_loss == pytest.approx(alone[0].val_loss, rel=LOSS_RTOL)
