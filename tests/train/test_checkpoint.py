"""Checkpoints: atomic writes, the `latest` pointer, pruning, clear errors, and exact in-process resume."""

import pickle
import random

import numpy as np
import pytest
import torch

from aira.data.shards import prepare_text_data
from aira.errors import UsageError
from aira.train.checkpoint import (
    LATEST,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    read_model_weights,
    save_checkpoint,
    unwrap_state_dict,
)
from aira.train.ddp import PretrainConfig, pretrain


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "optimizer": {}}


def test_save_points_latest_and_prunes_old(tmp_path):
    for step in (10, 20, 30, 40):
        path = save_checkpoint(tmp_path, _state(step), step, keep=2)
        assert path == checkpoint_path(tmp_path, step)
        assert latest_checkpoint(tmp_path) == path
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_00000030.pt", "step_00000040.pt"]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert (
        state["step"] == 40
        and state["format"] == 1
        and torch.equal(state["model"]["w"], torch.full((3,), 40.0))
    )


def test_latest_falls_back_to_the_highest_step_file(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, _state(1), 5, keep=None)
    save_checkpoint(tmp_path, _state(2), 12, keep=None)
    (tmp_path / LATEST).unlink()
    assert latest_checkpoint(tmp_path).name == "step_00000012.pt"
    (tmp_path / LATEST).write_text("step_00000099.pt\n")  # names a file that is gone
    assert latest_checkpoint(tmp_path).name == "step_00000012.pt"


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path):
    good = save_checkpoint(tmp_path, _state(1), 10)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a local lambda cannot be pickled
        save_checkpoint(tmp_path, {**_state(2), "bad": lambda: 0}, 20)
    assert latest_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST, good.name]  # no temporary left behind
    assert load_checkpoint(good)["step"] == 10


def test_unreadable_or_foreign_files_are_usage_errors(tmp_path):
    good = save_checkpoint(tmp_path, _state(1), 3)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(UsageError, match="cannot read checkpoint"):
        load_checkpoint(cut)
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pt")
    with pytest.raises(UsageError, match="not an aira training checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    with pytest.raises(UsageError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UsageError, match="neither"):
        read_model_weights(tmp_path / "list.pt")


def test_wrapper_prefixes_are_removed():
    sd = {"module._orig_mod.embed.weight": 1, "_orig_mod.norm.weight": 2, "blocks.0.mixer.module_x": 3}
    assert unwrap_state_dict(sd) == {"embed.weight": 1, "norm.weight": 2, "blocks.0.mixer.module_x": 3}


@pytest.fixture(scope="module")
def byte_data(tmp_path_factory):
    """A small corpus as a prepared byte-token folder (what --data points at)."""
    rng = random.Random(0)
    words = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "runs", "far", "hills")
    root = tmp_path_factory.mktemp("data")
    (root / "corpus.txt").write_text(
        "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(1500))
    )
    return prepare_text_data(str(root / "corpus.txt"), tokenizer="bytes", cache_dir=root / "cache").root


def _cfg(data, **kw) -> PretrainConfig:
    base = {
        "pattern": "AMSW",
        "preset": "tiny",
        "data": str(data),
        "budget": "12steps",
        "batch_size": 4,
        "seq_len": 32,
        "threads": 1,
        "log_every": 100,
        "eval_tokens": 256,
    }
    return PretrainConfig(**{**base, **kw})


def test_in_process_resume_equals_an_uninterrupted_run(tmp_path, byte_data):
    straight = pretrain(_cfg(byte_data, ckpt_dir=str(tmp_path / "a"), ckpt_every=6), log=lambda *_: None)
    assert straight.steps == 12 and len(straight.losses) == 12
    assert np.mean(straight.losses[-3:]) < straight.losses[0] - 0.5  # it learns
    final = load_checkpoint(tmp_path / "a" / "step_00000012.pt")
    # Interrupt after step 6: the run's newest checkpoint is the one at step 6.
    (tmp_path / "a" / "step_00000012.pt").unlink()
    resumed = pretrain(
        _cfg(byte_data, ckpt_dir=str(tmp_path / "a"), ckpt_every=6, resume=True), log=lambda *_: None
    )
    assert resumed.resumed_from.endswith("step_00000006.pt") and resumed.steps_this_run == 6
    assert resumed.losses == straight.losses
    again = load_checkpoint(tmp_path / "a" / "step_00000012.pt")
    for k, v in final["model"].items():
        assert torch.equal(again["model"][k], v), k
    assert again["optimizer"]["state"][0]["step"] == final["optimizer"]["state"][0]["step"] == 12


def test_gradient_accumulation_gives_the_same_run(byte_data):
    whole = pretrain(_cfg(byte_data, budget="4steps"), log=lambda *_: None)
    micro = pretrain(_cfg(byte_data, budget="4steps", micro_batch=1), log=lambda *_: None)
    assert np.allclose(whole.losses, micro.losses, atol=1e-5, rtol=0)


def test_resume_refuses_another_model_and_a_fresh_run_keeps_off_old_checkpoints(tmp_path, byte_data):
    pretrain(_cfg(byte_data, budget="2steps", ckpt_dir=str(tmp_path)), log=lambda *_: None)
    with pytest.raises(UsageError, match="pass --resume to continue it"):
        pretrain(_cfg(byte_data, budget="4steps", ckpt_dir=str(tmp_path)), log=lambda *_: None)
    with pytest.raises(UsageError, match="another model"):
        pretrain(
            _cfg(byte_data, pattern="AMAM", budget="4steps", ckpt_dir=str(tmp_path), resume=True),
            log=lambda *_: None,
        )
