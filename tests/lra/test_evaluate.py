"""End-to-end evaluation on the smoke preset, failure statuses, and the published references."""

import math

import pytest

from aira.agents.types import Result, Status
from aira.errors import UsageError
from aira.tasks.lra import references
from aira.tasks.lra.evaluate import evaluate_attention, hold_out, score_test
from aira.tasks.lra.mechanisms import path


def test_softmax_listops_runs_end_to_end_and_reports_accuracy():
    r = evaluate_attention(str(path("softmax")), "lra-listops", preset="smoke", seed=0)
    assert r["status"] == "ok", r["error"]
    assert 0.0 <= r["metric"] <= 1.0 and 0.0 <= r["selection_metric"] <= 1.0
    assert r["metric"] == r["val_accuracy"] and r["selection_metric"] == r["test_accuracy"]
    assert math.isfinite(r["train_loss"]) and r["train_loss"] < math.log(10) + 0.2
    assert r["params"] > r["attention_params"] > 0 and r["flops"] > 0
    assert r["standin"] is True
    res = Result.from_dict(r)  # what the harness stores
    assert res.status is Status.OK and res.metrics["test_accuracy"] == r["test_accuracy"]


def test_training_prints_progress_at_most_every_report_interval(monkeypatch, capsys):
    from aira.tasks.lra import evaluate

    monkeypatch.setattr(evaluate, "REPORT_EVERY_S", 0.0)  # every step
    r = evaluate_attention(str(path("softmax")), "lra-listops", preset="smoke", seed=0)
    steps = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    assert r["status"] == "ok" and len(steps) == r["steps"]
    assert steps[-1].startswith(f"step {r['steps']}/{r['steps']}: loss ")
    monkeypatch.setattr(evaluate, "REPORT_EVERY_S", 3600.0)  # the smoke preset ends long before: silent
    evaluate_attention(str(path("softmax")), "lra-listops", preset="smoke", seed=0)
    assert "step " not in capsys.readouterr().out


def test_two_tower_retrieval_with_held_out_test_labels(tmp_path):
    labels = hold_out("lra-retrieval", tmp_path / "data", preset="smoke")
    r = evaluate_attention(str(path("linear")), "lra-retrieval", preset="smoke",
                           split_dir=str(tmp_path / "data"), settings={"d_model": 16, "batch_size": 16})
    assert r["status"] == "ok", r["error"]
    assert r["settings"]["d_model"] == 16 and 0.0 <= r["metric"] <= 1.0
    assert r["selection_metric"] is None and len(r["test_predictions"]) == len(labels)
    scored = score_test(r, labels)
    expected = sum(int(p == y) for p, y in zip(r["test_predictions"], labels.tolist())) / len(labels)
    assert scored["selection_metric"] == scored["test_accuracy"] == pytest.approx(expected)
    assert "test_predictions" not in scored
    assert score_test(r | {"test_predictions": [0]}, labels)["status"] == "crashed"


def test_contract_failure_and_bad_settings_are_invalid(tmp_path):
    f = tmp_path / "attention.py"
    f.write_text("import torch.nn as nn\nclass Attention(nn.Module):\n"
                 "    def __init__(self, d_model, n_heads, max_len, **kw):\n        super().__init__()\n"
                 "    def forward(self, x, key_padding_mask):\n        return x.sum(-1)\n")
    r = evaluate_attention(str(f), "lra-listops", preset="smoke")
    assert r["status"] == "invalid" and r["error"].startswith("output shape: expected (2, ")
    r = evaluate_attention(str(path("softmax")), "lra-listops", preset="smoke", settings={"n_layers": 99})
    assert r["status"] == "invalid" and "n_layers must be in [1, 2], got 99" in r["error"]
    assert Result.from_dict(r).status is Status.INVALID


def test_crash_while_training_is_reported(tmp_path):
    f = tmp_path / "attention.py"
    f.write_text("import torch.nn as nn\nclass Attention(nn.Module):\n"
                 "    def __init__(self, d_model, n_heads, max_len, **kw):\n        super().__init__()\n"
                 "        self.calls = 0\n"
                 "    def forward(self, x, key_padding_mask):\n        self.calls += 1\n"
                 "        if self.calls > 5:\n            raise MemoryError('out of memory at step 5')\n"
                 "        return x\n")
    r = evaluate_attention(str(f), "lra-listops", preset="smoke")
    assert r["status"] == "crashed" and "out of memory at step 5" in r["error"]


def test_harness_input_errors_raise_usage_error(tmp_path):
    with pytest.raises(UsageError, match="unknown LRA preset 'tiny'"):
        evaluate_attention(str(path("softmax")), "lra-listops", preset="tiny")
    with pytest.raises(UsageError, match="no IMDb data found"):
        evaluate_attention(str(path("softmax")), "lra-text", preset="smoke", data_dir=str(tmp_path))


def test_references_table():
    assert references.published("lra-text")["S4"] == 86.82
    assert references.best_published("lra-retrieval") == ("S5", 91.40)
    assert references.best_published("lra-listops") == ("Mega", 63.14)
    assert set(references.SOURCES) == set(references.PUBLISHED)
    with pytest.raises(UsageError):
        references.published("lra-audio")
