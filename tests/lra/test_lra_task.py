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


def test_the_sandbox_copy_holds_no_held_out_row_and_those_rows_are_secret(task):
    public = load_lra("lra-listops", preset="smoke", seed=0)
    inside = load_saved(task.split_dir)
    assert torch.equal(inside.train.x, public.train.x) and torch.equal(inside.train.y, public.train.y)
    # its "val" is a slice of the training split; no validation or test row is there at all
    assert torch.equal(inside.val.x, public.train.x[: len(inside.val)])
    assert len(inside.test) == 0 and inside.test.y is None
    held = load_saved(task.held_dir / "inputs")
    labels = torch.load(task.labels_path, weights_only=True)
    assert held.test.y is None and len(held.test) == task.n_val + task.n_test == len(public.val) + len(public.test)
    # drawn from the run's secret seed: not the public seed's rows, which any code could regenerate
    w = min(held.test.x.shape[1], public.val.x.shape[1])
    assert not torch.equal(held.test.x[: task.n_val, :w], public.val.x[:, :w])
    secret = int((task.held_dir / "hidden_seed").read_text())
    again = load_lra("lra-listops", preset="smoke", seed=0, hidden_seed=secret)
    assert torch.equal(labels["val"], again.val.y) and torch.equal(labels["test"], again.test.y)
    for path, mode in [(task.held_dir, 0o700), (task.labels_path, 0o600), (task.held_dir / "hidden_seed", 0o600)]:
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert not any(p.name == "labels.pt" for p in task.split_dir.rglob("*"))
    assert str(task.held_dir) in task.make_job(task.reference(), seed=0, job_id="x").kwargs["masked"]
    assert "hidden_seed" not in json.dumps(task.make_job(task.reference(), seed=0, job_id="x").kwargs)


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


@pytest.mark.slow
def test_scores_come_from_the_held_out_run_never_from_the_training_claims(task):
    # A hostile file overwrites the evaluator's result with perfect accuracies and saves no weights.
    n = task.n_val + task.n_test
    forged = json.dumps({"status": "ok", "metric": 1.0, "selection_metric": 1.0, "val_accuracy": 1.0,
                         "test_predictions": [0] * n, "params": 7})
    code = f"import os\nopen('result.json', 'w').write({forged!r})\nos._exit(0)\n"
    r = evaluate_job(**task.make_job(_p(code), seed=0, job_id="forger").kwargs)
    assert r["status"] == "crashed" and "saved no readable model.pt" in r["error"], r
    assert r["metric"] is None and r["sandbox_train_slice_accuracy"] == 1.0 and r["params"] == 7
    # It saves junk weights and, when imported again to predict, writes three predictions and leaves.
    code = ("import os, sys\n"
            "if os.path.exists('data/splits'):\n"
            f"    open('result.json', 'w').write({forged!r}); open('model.pt', 'wb').write(b'x')\n"
            "else:\n    open('predictions.json', 'w').write('[0, 0, 0]')\n"
            "os._exit(0)\n")
    r = evaluate_job(**task.make_job(_p(code), seed=0, job_id="short").kwargs)
    assert r["status"] == "crashed" and f"expected {n} integer predictions" in r["error"], r
    # A link to our labels, planted where the weights should be, is not followed.
    code = (f"import os\nopen('result.json', 'w').write({forged!r})\n"
            f"os.symlink({str(task.labels_path)!r}, 'model.pt')\nos._exit(0)\n")
    r = evaluate_job(**task.make_job(_p(code), seed=0, job_id="linker").kwargs)
    assert r["status"] == "crashed" and "saved no readable model.pt" in r["error"], r


HOSTILE_ORACLE = """\
import torch, torch.nn as nn
import aira.tasks.lra.evaluate as ev
from aira.data.lra import load_lra

# Rebuild the task's seeded splits (the package is importable and the data seed is public), then
# answer every row from that table instead of the model's logits.
table = {}
data = load_lra("lra-listops", preset="smoke", seed=0)
for split in (data.train, data.val, data.test):
    for x, y in zip(split.x, split.y):
        table[bytes(x[x != 0].to(torch.int16).numpy().tobytes())] = int(y)
real_predict = ev.predict
def predict(model, split, *, batch_size=256):
    out = real_predict(model, split, batch_size=batch_size)
    for i, x in enumerate(split.x):
        out[i] = table.get(bytes(x[x != 0].to(torch.int16).numpy().tobytes()), int(out[i]))
    return out
ev.predict = predict

class Attention(nn.Module):
    def __init__(self, d_model, n_heads, max_len, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
    def forward(self, x, key_padding_mask):
        return self.proj(x)
"""


@pytest.mark.slow
def test_a_file_that_rebuilds_the_seeded_splits_gains_nothing(task):
    r = evaluate_job(**task.make_job(_p(HOSTILE_ORACLE), seed=0, job_id="oracle").kwargs)
    assert r["status"] == "ok", r
    # before: 1.0 / 1.0 (its table held the validation and test rows); now the rows are secret
    assert r["metric"] < 0.6 and r["selection_metric"] < 0.6, r


@pytest.mark.slow
def test_the_honest_score_is_the_in_process_evaluators_on_the_same_rows(tmp_path):
    from aira.tasks.lra.evaluate import evaluate_attention
    from aira.tasks.lra.mechanisms import path

    public = LraTask("lra-listops", preset="smoke", work_dir=str(tmp_path), hidden_seed=0)  # the public rows
    r = evaluate_job(**public.make_job(public.reference(), seed=0, job_id="ref").kwargs)
    direct = evaluate_attention(str(path("softmax")), "lra-listops", preset="smoke", seed=0)
    # the harness counts exact fractions, the in-process evaluator takes a float32 mean
    assert r["status"] == "ok" and r["metric"] == pytest.approx(direct["metric"], abs=1e-6)
    assert r["selection_metric"] == pytest.approx(direct["selection_metric"], abs=1e-6)
