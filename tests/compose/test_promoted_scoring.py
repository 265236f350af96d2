"""Harness-computed scores of candidates with a promoted primitive (aira/tasks/promoted_score.py): the same
numbers as the trainer's for a built-in pattern, secret select rows, the causality audit catching a
mechanism that reads later tokens only at evaluation time, and a mechanism that patches the trainer
gaining nothing."""

import math
import os
import stat

import pytest
import torch
import torch.nn.functional as F

from aira.agents.sandbox import isolation_mode
from aira.cli import main
from aira.data.mad import make_mad
from aira.errors import UsageError
from aira.tasks.compose import ComposeTask, evaluate_pattern
from aira.tasks.lra.mechanisms import path
from aira.tasks.promoted import check_promoted, load_promoted, proxy_model_config, register_promoted
from aira.tasks.promoted_score import evaluate_promoted, reduce_logits, task_metrics
from aira.tasks.proxies import PROXIES
from aira.train.metrics import masked_accuracy

needs_sandbox = pytest.mark.skipif(isolation_mode() is None, reason="no namespaces here: the sandbox cannot run")
SMOKE = PROXIES["smoke"].train_kwargs()

CAUSAL = '''
import torch
import torch.nn as nn
{patch}

class Attention(nn.Module):
    """A causal running mean{doc}."""

    def __init__(self, d_model, n_heads, max_len, causal=False, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.causal = causal

    def forward(self, x, key_padding_mask):
        count = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype).view(1, -1, 1)
        mean = x.cumsum(dim=1) / count
        if {cheat}:  # every position reads the whole row, later tokens too
            mean = mean[:, -1:].expand_as(x)
        return self.proj(mean)
'''
HONEST = CAUSAL.format(patch="", doc="", cheat="False")
# causal in the contract check (batch 2), reading the future in evaluation mode on larger batches, or on any
# large batch (training too)
CHEATS = {"eval-mode": CAUSAL.format(patch="", doc=", but not in eval mode on large batches",
                                     cheat="not self.training and x.shape[0] > 2"),
          "large-batch": CAUSAL.format(patch="", doc=", but not on large batches", cheat="x.shape[0] > 16")}
# the honest mechanism, whose module body patches the trainer's scoring and the harness's own functions
PATCHER = CAUSAL.format(doc="", cheat="False", patch='''
import aira.train.sources, aira.train.trainer, aira.tasks.promoted_score as ps

def _perfect(self, model, split, device, batch_size=128, limit=None):
    return {"accuracy": 1.0, "loss": 0.0, "prob": 1.0, "loglik": 1.0}

aira.train.sources.MadSource.evaluate = _perfect
aira.train.trainer._score = lambda *a, **k: ("ok", "", _perfect(None, None, None, None), _perfect(None, None, None, None))
ps.task_metrics = lambda *a, **k: {"accuracy": 1.0, "loss": 0.0, "prob": 1.0, "loglik": 1.0}
''')


def _promo(tmp_path, code: str, letter: str = "X") -> dict:
    f = tmp_path / f"{letter}.py"
    f.write_text(code)
    return {letter: load_promoted(letter, str(f)).to_json()}


def _secret(tmp_path, value: int) -> str:
    f = tmp_path / "hidden_seed"
    f.write_text(f"{value}\n")
    return str(f)


def _evaluate(tmp_path, pattern: str, primitives: dict, hidden: int = 12345, seeds: int = 1) -> dict:
    return evaluate_promoted(pattern=pattern, seed=0, seeds=seeds, threads=1, device="cpu", train=SMOKE,
                             primitives=primitives, secret_path=_secret(tmp_path, hidden), timeout_s=300)


def test_task_metrics_are_mad_sources_formulas_from_reduced_logits():
    gen = torch.Generator().manual_seed(0)
    V, subset = 12, torch.tensor([2, 5, 6, 9])
    logits = torch.randn(6, 10, V, generator=gen)
    logits[0, :4] = 0.0  # exact ties: argmax takes the first index, which is outside the subset
    logits[1, :2, [1, 5]] = 9.0  # a tie between an answer token (5) and an earlier other one (1)
    y = subset[torch.randint(0, 4, (6, 10), generator=gen)]
    y[torch.rand(6, 10, generator=gen) < 0.4] = -100
    y[0, 0], y[1, 0], y[1, 1] = 2, 5, 1 - 101  # tied answers, wrong by the first-index rule; one unscored
    got = task_metrics(reduce_logits(logits, subset), y, subset, V)
    answer = y != -100
    loss = float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100))
    assert got["accuracy"] == pytest.approx(masked_accuracy(logits, y), abs=1e-12)
    assert got["loss"] == pytest.approx(loss, rel=1e-6)
    assert got["prob"] == pytest.approx(float(torch.softmax(logits[answer], -1).gather(-1, y[answer, None]).mean()),
                                        rel=1e-6)
    assert got["loglik"] == pytest.approx(1 - loss / math.log(V), rel=1e-6)


def test_secret_select_rows_are_new_rows_of_the_same_task():
    public = make_mad("in_context_recall", "tiny", seed=0)
    assert torch.equal(make_mad("in_context_recall", "tiny", seed=0, hidden_seed=0).select_x, public.select_x)
    secret = make_mad("in_context_recall", "tiny", seed=0, hidden_seed=987)
    for split in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(secret, split), getattr(public, split))
    assert secret.select_x.shape == public.select_x.shape and secret.vocab_size == public.vocab_size
    taken = {tuple(r) for s in (public.train_x, public.val_x, public.select_x) for r in s.tolist()}
    assert not any(tuple(r) in taken for r in secret.select_x.tolist())
    # the same generator: every key is answered by its value, the next token
    answer = secret.select_y != -100
    assert torch.equal(secret.select_y[:, :-1][answer[:, :-1]], secret.select_x[:, 1:][answer[:, :-1]])


@needs_sandbox
def test_harness_scores_of_a_builtin_pattern_equal_the_trainers(tmp_path):
    plain = evaluate_pattern(pattern="AMAM", seed=0, seeds=2, threads=1, device="cpu", train=SMOKE)
    # with the public seed as the "secret" one, both paths score the same rows
    same = _evaluate(tmp_path, "AMAM", {}, hidden=0, seeds=2)
    assert same["status"] == "ok" and same["scored_by"] == "harness" and same["sandbox"] == "isolated"
    assert same["audit_rows"] == 2 * 8  # per seed: 1/16 of 64 val + 64 select rows, at least 8
    assert same["metric"] == pytest.approx(plain["metric"], abs=1e-9)
    assert same["selection_metric"] == pytest.approx(plain["selection_metric"], abs=1e-9)
    assert same["seed_metrics"] == pytest.approx(plain["seed_metrics"], abs=1e-9)
    for k in ("accuracy", "loss", "prob", "loglik"):
        assert same["per_task"]["in_context_recall"][k] == pytest.approx(plain["per_task"]["in_context_recall"][k],
                                                                         rel=1e-5)
    for k in ("params", "non_embedding_params", "flops_per_token", "tokens", "steps"):
        assert same[k] == plain[k]
    # a secret seed: the same search score, the selection score on other rows
    secret = _evaluate(tmp_path, "AMAM", {}, hidden=4242, seeds=2)
    assert secret["metric"] == pytest.approx(plain["metric"], abs=1e-9)
    assert secret["selection_metric"] != plain["selection_metric"]


@needs_sandbox
@pytest.mark.parametrize("name", list(CHEATS))
def test_the_causality_audit_catches_a_mechanism_that_reads_later_tokens_at_evaluation(tmp_path, name):
    primitives = _promo(tmp_path, CHEATS[name])
    cfg = proxy_model_config(PROXIES["smoke"])
    failures, _, _ = check_promoted(register_promoted(load_promoted("X", str(tmp_path / "X.py"))), cfg)
    assert failures == []  # the contract check (batch 2) does not see it
    r = _evaluate(tmp_path, "AXMX", primitives)
    assert r["status"] == "crashed" and r["metric"] is None and r["selection_metric"] is None
    assert r["error"].startswith("contract breach: causality audit: on ")
    assert "audit rows the outputs at or before the cut changed by up to" in r["error"]


@needs_sandbox
def test_a_mechanism_that_patches_the_trainer_gains_nothing(tmp_path):
    honest = _evaluate(tmp_path, "AXMX", _promo(tmp_path, HONEST))
    patcher = _evaluate(tmp_path, "AXMX", _promo(tmp_path, PATCHER))
    assert honest["status"] == patcher["status"] == "ok"
    assert honest["metric"] < 0.5  # 8 steps: far from the patched 1.0
    # the same model (its training is untouched) gets the same harness-computed scores
    assert patcher["metric"] == honest["metric"] and patcher["selection_metric"] == honest["selection_metric"]
    assert patcher["per_task"] == honest["per_task"]


def test_compose_task_keeps_the_secret_out_of_the_job(tmp_path):
    primitives = _promo(tmp_path, HONEST)
    secret_dir = tmp_path / "run" / "secret"
    task = ComposeTask(space="attn-mlp", proxy="smoke", layers=4, primitives=primitives, secret_dir=str(secret_dir))
    assert not secret_dir.exists()  # made by the first job, after every check
    job = task.make_job("AXMX", seed=0, job_id="n1")
    seed_file = secret_dir / "hidden_seed"
    value = seed_file.read_text().strip()
    assert job.fn == "aira.tasks.promoted_score:evaluate_promoted" and not job.sandbox
    assert job.kwargs["secret_path"] == str(seed_file) and job.kwargs["masked"] == [str(secret_dir)]
    assert value not in str(job.kwargs)
    assert stat.S_IMODE(os.stat(secret_dir).st_mode) == 0o700 and stat.S_IMODE(os.stat(seed_file).st_mode) == 0o600
    # a resumed run (the same folder) keeps the seed; built-in patterns keep their job
    again = ComposeTask(space="attn-mlp", proxy="smoke", layers=4, primitives=primitives, secret_dir=str(secret_dir))
    again.make_job("XXMM", seed=0, job_id="n2")
    assert seed_file.read_text().strip() == value
    plain = again.make_job("AMAM", seed=0, job_id="n3")
    assert plain.fn == "aira.tasks.compose:evaluate_pattern" and "secret_path" not in plain.kwargs


def test_an_lm_proxy_with_a_promoted_primitive_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(UsageError, match="^--primitive X: promoted primitives run on MAD proxies only"):
        ComposeTask(space="attn-mlp", proxy="lm-cpu", layers=4, primitives=_promo(tmp_path, HONEST))
    out = tmp_path / "run"
    assert main(["compose", "run", "--proxy", "lm-cpu", "--space", "attn-mlp", "--layers", "4", "--agents",
                 "greedy:offline", "--no-controls", "--budget", "2evals", "--executor", "inline", "--primitive",
                 f"X={path('softmax')}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("aira: error: --primitive X: promoted primitives run on MAD proxies only (the harness scores "
                    "their logits on secret rows; an lm proxy's inputs are its labels), got task lm:shakespeare")]
    assert not out.exists()
