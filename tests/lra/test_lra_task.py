"""The LRA design Task: validation, data staging (no scored labels in the sandbox), the offline agent's
moves, and how the harness turns a sandboxed run into a Result."""

import dataclasses
import json
import os
import random
import stat

import pytest
import torch

from aira.data.lra import load_lra, load_saved
from aira.tasks.lra.contract import check_attention, validate_settings
from aira.tasks.lra.model import load_attention
from aira.tasks.lra.offline import MechanismSpace, hyperparameters, read_settings, skeleton, write_settings
from aira.tasks.lra.presets import get_preset
from aira.tasks.lra.task import EDITABLE, LraTask, evaluate_job


def _p(code: str) -> dict:
    return {"files": {EDITABLE: code}}


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> LraTask:
    return LraTask("lra-listops", preset="smoke", work_dir=str(tmp_path_factory.mktemp("lra")))


def test_validate_gives_one_line_for_each_bad_proposal(task, tmp_path):
    ref = task.reference()
    assert task.validate(ref) is None
    assert "only attention.py" in task.validate({"files": {EDITABLE: "x", "model.py": "y"}})
    assert "missing or empty" in task.validate(_p("  "))
    assert "line 1" in task.validate(_p("class Attention(:\n"))
    assert "must define `class Attention" in task.validate(_p("import torch\n"))
    with_settings = write_settings(ref["files"][EDITABLE], {"d_model": 16})
    assert "fixed setting takes no SETTINGS" in task.validate(_p(with_settings))

    conf = LraTask("lra-listops", preset="smoke", setting="configurable", work_dir=str(tmp_path))
    assert conf.validate(_p(with_settings)) is None
    assert conf.settings_of(_p(with_settings)) == {"d_model": 16}
    too_wide = write_settings(ref["files"][EDITABLE], {"d_model": 4096})
    assert conf.validate(_p(too_wide)) == "SETTINGS: settings: d_model must be in [8, 64], got 4096"
    computed = ref["files"][EDITABLE] + "\nSETTINGS = dict(d_model=16)\n"
    assert "must be a literal dict" in conf.validate(_p(computed))
    assert conf.make_job(_p(with_settings), seed=3, job_id="n1").kwargs["settings"] == {"d_model": 16}


def test_the_sandbox_copy_holds_no_label_it_is_scored_on(task):
    data = load_lra("lra-listops", preset="smoke", seed=0)
    inside = load_saved(task.split_dir)
    assert inside.test.y is None
    n_val, n_test = len(data.val), len(data.test)
    assert len(inside.test) == n_val + n_test
    w = data.val.x.shape[1]
    assert torch.equal(inside.test.x[:n_val, :w], data.val.x) and not inside.test.x[:n_val, w:].any()
    assert torch.equal(inside.test.x[n_val:, : data.test.x.shape[1]], data.test.x)
    # the sandbox's "val" is a slice of the training split, not the validation split
    assert torch.equal(inside.val.x, data.train.x[: len(inside.val)])
    assert torch.equal(inside.val.y, data.train.y[: len(inside.val)])
    held = torch.load(task.labels_path, weights_only=True)
    assert torch.equal(held["val"], data.val.y) and torch.equal(held["test"], data.test.y)
    assert stat.S_IMODE(os.stat(task.labels_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(task.labels_path.parent).st_mode) == 0o700
    assert not any(p.name == "labels.pt" for p in task.split_dir.rglob("*"))


def test_reference_score_only_for_real_lra_data(task, monkeypatch, tmp_path):
    assert task.standin and task.reference_score is None
    real = dataclasses.replace(load_lra("lra-listops", preset="smoke", seed=0), standin=False)
    monkeypatch.setattr("aira.data.lra.load_lra", lambda *a, **k: real)
    assert LraTask("lra-listops", preset="smoke", work_dir=str(tmp_path)).reference_score == pytest.approx(0.6314)


def test_offline_moves_edit_hyperparameters_in_place():
    space = MechanismSpace(get_preset("lra-listops", "smoke"))
    rng = random.Random(0)
    local = space.library_proposal("local")
    child, idea = space.mutate(local, rng)
    before, after = local["files"][EDITABLE].splitlines(), child["files"][EDITABLE].splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and len(changed) == 1
    assert "window=32" in changed[0][0] and idea in ("window 32 -> 16", "window 32 -> 64")
    assert skeleton(child["files"][EDITABLE]) == skeleton(local["files"][EDITABLE])
    # crossover: the first parent's file with the second parent's hyperparameter
    nys = space.library_proposal("nystrom")
    other = _p(nys["files"][EDITABLE].replace("n_landmarks=16", "n_landmarks=8"))
    mixed, idea = space.crossover(nys, other, rng)
    assert idea == "crossover: n_landmarks from the second parent"
    assert {h.name: h.value for h in hyperparameters(mixed["files"][EDITABLE])}["n_landmarks"] == 8
    # repair after a cap: one step down; after anything else: a library mechanism
    _, idea = space.repair(local, "FLOP cap: expected <= 1e+06 forward FLOPs per token", rng)
    assert idea.endswith("window 32 -> 16")
    fresh, idea = space.repair(local, "forward raised KeyError: 3", rng)
    assert fresh["files"][EDITABLE] in space.library.values() and "back to the library" in idea


def test_crossover_of_two_mechanisms_is_their_sum_and_keeps_the_contract(tmp_path):
    space = MechanismSpace(get_preset("lra-listops", "smoke"))
    a, b = space.library_proposal("local"), space.library_proposal("longconv")
    child, idea = space.crossover(a, b, random.Random(0))
    assert idea == "crossover: the sum of the two parents' mixers"
    (tmp_path / "attention.py").write_text(child["files"][EDITABLE])
    cls = load_attention(tmp_path / "attention.py")
    rep = check_attention(cls, d_model=32, n_heads=2, max_len=60)
    assert rep.ok, rep.failures
    assert {h.cls for h in hyperparameters(child["files"][EDITABLE])} == {"_MixerA", "_MixerB"}


def test_configurable_moves_stay_within_the_caps():
    preset = get_preset("lra-listops", "smoke")
    space = MechanismSpace(preset, configurable=True)
    rng = random.Random(1)
    proposal = space.library_proposal("local")
    assert read_settings(proposal["files"][EDITABLE]) == space.default_settings()
    seen = set()
    for _ in range(40):
        proposal, idea = space.mutate(proposal, rng)
        settings = read_settings(proposal["files"][EDITABLE])
        validate_settings(settings, preset)  # raises if a move left the caps
        seen.add(idea.split()[0])
    assert seen & {"d_model", "n_layers", "lr", "batch_size", "dropout", "weight_decay", "n_heads"}
    assert "window" in seen  # half the moves turn the mechanism's own hyperparameter


def test_a_run_past_the_wall_clock_is_a_timed_out_result(task):
    job = task.make_job(_p("import time\ntime.sleep(10**6)\n"), seed=0, job_id="sleeper")
    r = evaluate_job(**job.kwargs | {"timeout_s": 3.0})
    assert r["status"] == "timed-out" and r["metric"] is None
    assert "3 s wall-clock limit" in r["error"] and r["sandbox_seconds"] < 10


def test_scores_come_from_predictions_never_from_the_sandbox_claims(task):
    # A hostile file overwrites the evaluator's result with perfect accuracies and all-zero predictions.
    n = task.n_val + task.n_test
    forged = json.dumps({"status": "ok", "metric": 1.0, "selection_metric": 1.0, "val_accuracy": 1.0,
                         "test_predictions": [0] * n, "params": 7})
    code = (f"import os\nopen('result.json', 'w').write({forged!r})\nos._exit(0)\n")
    r = evaluate_job(**task.make_job(_p(code), seed=0, job_id="forger").kwargs)
    held = torch.load(task.labels_path, weights_only=True)
    assert r["status"] == "ok"
    assert r["metric"] == pytest.approx((held["val"] == 0).float().mean().item())
    assert r["selection_metric"] == pytest.approx((held["test"] == 0).float().mean().item())
    assert r["metric"] < 0.5 and r["sandbox_train_slice_accuracy"] == 1.0 and r["params"] == 7
    short = json.dumps({"status": "ok", "test_predictions": [0] * 3})
    code = f"import os\nopen('result.json', 'w').write({short!r})\nos._exit(0)\n"
    r = evaluate_job(**task.make_job(_p(code), seed=0, job_id="short").kwargs)
    assert r["status"] == "crashed" and f"expected {n} integer predictions" in r["error"]
