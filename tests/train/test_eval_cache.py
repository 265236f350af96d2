"""The cross-run evaluation cache: what its key holds, hits and misses, and `aira cache`."""

import json
from pathlib import Path

import pytest

from aira.cli import main
from aira.errors import UsageError
from aira.train import cache as cache_mod
from aira.train.cache import EvalCache, cache_key, cached_train, resolve_dir
from aira.train.result import TrainResult
from aira.train.trainer import TrainConfig

# a result as the trainer wrote it before TrainResult was a dataclass (tests/train/test_trainer.py)
STORED = json.loads((Path(__file__).with_name("results_before_dataclass.json")).read_text())["single"]
SMOKE = {"task": "mad:in_context_recall", "preset": "tiny", "mad_settings": "tiny", "budget": "4steps", "lr": 3e-3}


def cfg(**kw) -> TrainConfig:
    return TrainConfig(pattern="AMAM", progress=False, **{"seed": 0, **SMOKE, **kw})


def test_key_ignores_runtime_fields_and_follows_everything_that_changes_a_score(monkeypatch):
    base = cache_key(cfg(), "cpu")
    assert cache_key(cfg(threads=2, tune_malloc=False, device="cpu"), "cpu") == base
    assert cache_key(cfg(seed=1), "cpu") != base
    assert cache_key(cfg(budget="5steps"), "cpu") != base
    assert cache_key(cfg(lr=1e-3), "cpu") != base
    assert cache_key(cfg(), "cuda") != base  # bf16 on CUDA does not score what fp32 on a CPU does
    monkeypatch.setattr(cache_mod, "EVALUATOR_VERSION", cache_mod.EVALUATOR_VERSION + 1)
    assert cache_key(cfg(), "cpu") != base
    monkeypatch.setattr("torch.__version__", "9.9.0")
    monkeypatch.setattr(cache_mod, "EVALUATOR_VERSION", cache_mod.EVALUATOR_VERSION - 1)
    assert cache_key(cfg(), "cpu") != base


def test_a_miss_trains_and_stores_then_a_hit_returns_the_same_result(tmp_path, monkeypatch):
    calls = []
    import aira.train.trainer as trainer

    orig = trainer.train

    def counting(c, log=None):
        calls.append(c.seed)
        return orig(c, log=log or (lambda *_: None))

    monkeypatch.setattr(trainer, "train", counting)
    first, hit1 = cached_train(cfg(), tmp_path)
    again, hit2 = cached_train(cfg(threads=1), tmp_path)
    assert (hit1, hit2, calls) == (False, True, [0])
    assert again == first and isinstance(again, TrainResult)
    _, hit3 = cached_train(cfg(seed=1), tmp_path)
    assert not hit3 and calls == [0, 1]
    assert len(EvalCache(tmp_path).files()) == 2


def test_failures_and_unreadable_files_are_not_served(tmp_path):
    c = EvalCache(tmp_path)
    c.put("ab" + "0" * 22, TrainResult.from_dict({**STORED, "status": "diverged", "metric": None}))
    assert c.files() == []
    c.put("cd" + "0" * 22, TrainResult.from_dict({**STORED, "metric": 0.5}))
    assert c.get("cd" + "0" * 22).metric == 0.5
    path = tmp_path / "cd" / ("cd" + "0" * 22 + ".json")
    path.write_text('{"status": "ok", "met')  # truncated
    assert c.get("cd" + "0" * 22) is None
    path.write_text('{"status": "ok", "metric": 0.5}')  # not a result: train again
    assert c.get("cd" + "0" * 22) is None


def test_an_entry_written_before_results_were_typed_is_a_hit_stored_as_it_was(tmp_path):
    key = cache_key(cfg(), "cpu")
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir()
    path.write_text(json.dumps(STORED))
    r, hit = cached_train(cfg(), tmp_path)
    assert hit and r.metric == STORED["metric"] and r.per_task["memorization"].loss == \
        STORED["per_task"]["memorization"]["loss"]
    EvalCache(tmp_path).put(key, r)
    assert path.read_text() == json.dumps(STORED)  # the stored form is unchanged: EVALUATOR_VERSION stays


def test_resolve_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRA_CACHE", str(tmp_path / "env"))
    assert resolve_dir(None) == str(tmp_path / "env")
    assert resolve_dir("off") is None
    assert resolve_dir(str(tmp_path / "mine")) == str(tmp_path / "mine")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="it is a file"):
        resolve_dir(str(tmp_path / "file"))
    monkeypatch.delenv("AIRA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_dir(None) == str(tmp_path / "xdg" / "aira" / "evaluations")


def test_cache_command_info_and_clear(tmp_path, capsys):
    c = EvalCache(tmp_path / "c")
    for k in ("aa", "ab", "bb"):
        c.put(k + "0" * 22, TrainResult.from_dict(STORED))
    assert main(["cache", "info", "--cache", str(tmp_path / "c"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["evaluations"] == 3 and info["bytes"] > 0
    assert main(["cache", "clear", "--cache", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.startswith("removed 3 cached evaluations")
    assert EvalCache(tmp_path / "c").files() == []
    assert main(["cache", "info", "--cache", "off"]) == 2
    assert "--cache off names no cache folder" in capsys.readouterr().err
