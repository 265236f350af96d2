"""Harness-computed scores of candidates with a promoted primitive (aira/tasks/promoted_score.py): the same
numbers as the trainer's for a built-in pattern, secret select rows sent without their future, the
causality audit catching a mechanism that reads later tokens only at evaluation time, and mechanisms that
patch the trainer, forge the reduced outputs or the reported counts, or read the future by pairing rows,
gaining nothing on the selection score."""

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
from aira.models import count_params, flops_per_token, get_preset
from aira.tasks.compose import ComposeTask, evaluate_pattern
from aira.tasks.lra.mechanisms import path
from aira.tasks.promoted import check_promoted, load_promoted, proxy_model_config, register_promoted
from aira.tasks.promoted_score import (
    SECRET_DIR,
    evaluate_promoted,
    output_breach,
    reduce_logits,
    select_copies,
    task_metrics,
)
from aira.tasks.proxies import PROXIES
from aira.tasks.runs import run_task_kwargs
from aira.train.metrics import masked_accuracy
from aira.train.trainer import TrainConfig, _model_config

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

# the honest mechanism, whose module body makes the scoring sandbox return a log-sum-exp below every answer
# logit (nll < 0: probability and loglik above 1)
FORGED_LSE = CAUSAL.format(doc="", cheat="False", patch='''
import aira.tasks.promoted_score as ps

_reduce = ps.reduce_logits

def _forged(logits, subset):
    out = _reduce(logits, subset)
    out["lse"] = out["subset"].min(dim=-1).values - 5.0
    return out

ps.reduce_logits = _forged
''')
# the honest mechanism, whose module body, in the scoring sandbox, answers every row from the next input token
# of the first row that shares its prefix: a row and its audit copy get the same outputs up to the cut (the
# audit passes), and a val row's answer is its real next token
PEEK = CAUSAL.format(doc="", cheat="False", patch='''
import os

if os.path.exists("inputs.pt"):
    _save = torch.save

    def _peek(obj, f, *args, **kwargs):
        if f == "outputs.pt":
            tasks = torch.load("inputs.pt", weights_only=True)["tasks"]
            for key in obj:
                x, sub = tasks[int(key.split("-")[1])]["x"], tasks[int(key.split("-")[1])]["subset"]
                n, L = x.shape
                shared = (x[:, None, :] == x[None, :, :]).int().cumprod(dim=-1).bool()  # (i, j, p)
                first = torch.where(shared, torch.arange(n)[None, :, None], n).min(dim=1).values  # (i, p)
                nxt = torch.zeros(n, L, dtype=torch.long)
                nxt[:, :-1] = torch.stack([x[first[:, p], p + 1] for p in range(L - 1)], dim=1)
                logits = torch.zeros(n, L, len(sub))
                logits.scatter_(-1, torch.searchsorted(sub, nxt).clamp(max=len(sub) - 1)[..., None], 20.0)
                other = torch.full((n, L), -20.0)
                obj[key] = {"subset": logits, "other": other, "other_id": torch.zeros(n, L, dtype=torch.long),
                            "lse": torch.cat([logits, other[..., None]], dim=-1).logsumexp(dim=-1)}
        return _save(obj, f, *args, **kwargs)

    torch.save = _peek
''')
# the honest mechanism, whose module body makes the training sandbox report NaN and infinite counts
FORGED_COUNTS = CAUSAL.format(doc="", cheat="False", patch='''
import json

_dumps = json.dumps

def _forged(obj, *args, **kwargs):
    if isinstance(obj, dict) and "seeds" in obj:  # the training sandbox's result.json
        obj.update(params=float("nan"), non_embedding_params=float("inf"), flops_per_token=1.0)
        for runs in obj["seeds"].values():
            for run in runs:
                run.update(steps=float("nan"), tokens=float("inf"), peak_mem_mb=float("nan"))
    return _dumps(obj, *args, **kwargs)

json.dumps = _forged
''')


def _promo(tmp_path, code: str, letter: str = "X") -> dict:
    f = tmp_path / f"{letter}.py"
    f.write_text(code)
    return {letter: load_promoted(letter, str(f)).to_json()}


def _secret(tmp_path, value: int) -> str:
    f = tmp_path / "hidden_seed"
    f.write_text(f"{value}\n")
    return str(f)


def _evaluate(tmp_path, pattern: str, primitives: dict, hidden: int = 12345, seeds: int = 1, train: dict = SMOKE,
              **kwargs) -> dict:
    return evaluate_promoted(pattern=pattern, seed=0, seeds=seeds, threads=1, device="cpu", train=train,
                             primitives=primitives, secret_path=_secret(tmp_path, hidden), timeout_s=300, **kwargs)


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
    # with the public seed as the "secret" one and every answer position of every select row sent as its own
    # copy without its future, both paths score the same answers
    same = _evaluate(tmp_path, "AMAM", {}, hidden=0, seeds=2, select_positions=None)
    assert same["status"] == "ok" and same["scored_by"] == "harness" and same["sandbox"] == "isolated"
    assert same["audit_rows"] == 2 * 8  # per seed: 1/16 of 64 val rows, at least 8
    select_y = make_mad("in_context_recall", "tiny", seed=0).select_y
    assert same["select_positions"] == int((select_y != -100).sum())
    assert same["metric"] == pytest.approx(plain["metric"], abs=1e-9)
    assert same["selection_metric"] == pytest.approx(plain["selection_metric"], abs=1e-9)
    assert same["seed_metrics"] == pytest.approx(plain["seed_metrics"], abs=1e-9)
    for k in ("accuracy", "loss", "prob", "loglik"):
        assert same["per_task"]["in_context_recall"][k] == pytest.approx(plain["per_task"]["in_context_recall"][k],
                                                                         rel=1e-5)
    for k in ("params", "non_embedding_params", "flops_per_token", "tokens", "steps"):
        assert same[k] == plain[k]
    # the default: one answer position per select row, the same quantity within its sampling noise
    sampled = _evaluate(tmp_path, "AMAM", {}, hidden=0, seeds=2)
    assert sampled["select_positions"] == int((select_y != -100).any(dim=1).sum())
    assert sampled["metric"] == pytest.approx(plain["metric"], abs=1e-9)
    p = plain["selection_metric"]
    assert abs(sampled["selection_metric"] - p) <= 4 * math.sqrt(p * (1 - p) / sampled["select_positions"])
    # a secret seed: the same search score, the selection score on other rows
    secret = _evaluate(tmp_path, "AMAM", {}, hidden=4242, seeds=2, select_positions=None)
    assert secret["metric"] == pytest.approx(plain["metric"], abs=1e-9)
    assert secret["selection_metric"] != plain["selection_metric"]


def test_select_copies_hide_each_rows_future_and_weigh_to_the_plain_mean():
    gen = torch.Generator().manual_seed(0)
    n, L, V = 40, 12, 50
    x = torch.randint(0, V, (n, L), generator=gen)
    x[:, 0] = torch.arange(n)  # a row's first token names it
    y = torch.randint(0, 10, (n, L), generator=gen)
    y[torch.rand(n, L, generator=gen) < 0.6] = -100
    y[:3] = -100  # rows without an answer send nothing
    count = (y != -100).sum(dim=1)
    for positions in (None, 1, 3):
        copies, labels, weight = select_copies(x, y, V, torch.Generator().manual_seed(1), positions)
        scored = labels != -100
        assert scored.sum(dim=1).tolist() == [1] * len(copies)  # one scored position per copy
        rows, t = copies[:, 0], scored.int().argmax(dim=1)
        drawn = count.clamp(max=positions) if positions else count
        assert torch.bincount(rows, minlength=n).tolist() == drawn.tolist()
        assert torch.equal(labels[scored], y[rows, t])
        upto = torch.arange(L) <= t.unsqueeze(1)
        assert torch.equal(copies[upto], x[rows][upto])  # the row up to its scored position, then noise
        assert float((copies[~upto] == x[rows][~upto]).float().mean()) < 3 / V
        # the weights make every row count by its answers, as the plain mean over answer positions does
        assert float(weight.sum()) == pytest.approx(float(count.sum()), rel=1e-12)
        assert (weight[~scored] == 0).all() and (weight[scored] == (count.double() / drawn)[rows]).all()
    # every answer position of the split once, with weight 1: task_metrics gives the plain numbers
    copies, labels, w = select_copies(x, y, V, torch.Generator().manual_seed(2), None)
    logits = torch.randn(n, L, V, generator=gen)
    subset = torch.arange(10)
    plain = task_metrics(reduce_logits(logits, subset), y, subset, V)
    got = task_metrics(reduce_logits(logits[copies[:, 0]], subset), labels, subset, V, weight=w)
    assert got == pytest.approx(plain, rel=1e-12)


def test_outputs_that_cannot_come_from_logits_are_a_contract_breach():
    gen = torch.Generator().manual_seed(0)
    V, subset = 12, torch.tensor([2, 5, 6, 9])
    honest = reduce_logits(torch.randn(6, 10, V, generator=gen), subset)
    assert output_breach(honest, subset, V) is None
    everything = torch.arange(V)  # every token an answer: other is -inf
    assert output_breach(reduce_logits(torch.randn(2, 3, V, generator=gen), everything), everything, V) is None

    def forged(**change):
        return output_breach({**honest, **change}, subset, V)

    assert forged(lse=honest["subset"].min(dim=-1).values - 5.0).startswith(
        "contract breach: at 60 positions the returned log-sum-exp is below that of the logits returned with it")
    floor = torch.cat([honest["subset"], honest["other"].unsqueeze(-1)], dim=-1).logsumexp(dim=-1)
    assert forged(lse=floor - 1e-3) is not None  # a probability above 1, if only just
    assert forged(lse=floor - 1e-6) is None and forged(lse=honest["lse"] + 3.0) is None  # rounding; a worse score
    nan = honest["subset"].clone()
    nan[0, 0, 0] = math.nan
    assert forged(subset=nan) == ("contract breach: the scoring sandbox returned non-finite answer-token logits "
                                  "or log-sum-exp")
    assert forged(other=honest["other"].masked_fill(torch.zeros(6, 10, dtype=torch.bool).index_fill(1,
                  torch.tensor([3]), True), math.inf)) == "contract breach: the scoring sandbox returned a non-finite 'other' logit"
    for bad_id in (5, V, -1):
        assert forged(other_id=honest["other_id"].clone().fill_(bad_id)) == (
            "contract breach: the scoring sandbox returned an other_id that is an answer token or outside the "
            "vocabulary [0, 12)")


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
    # every select position scored: the default draws its sample in secret, differently per evaluation
    honest = _evaluate(tmp_path, "AXMX", _promo(tmp_path, HONEST), select_positions=None)
    patcher = _evaluate(tmp_path, "AXMX", _promo(tmp_path, PATCHER), select_positions=None)
    assert honest["status"] == patcher["status"] == "ok"
    assert honest["metric"] < 0.5  # 8 steps: far from the patched 1.0
    # the same model (its training is untouched) gets the same harness-computed scores
    assert patcher["metric"] == honest["metric"] and patcher["selection_metric"] == honest["selection_metric"]
    assert patcher["per_task"] == honest["per_task"]


@needs_sandbox
def test_a_forged_log_sum_exp_is_a_contract_breach(tmp_path):
    train = {**SMOKE, "mad_score": "loglik"}
    honest = _evaluate(tmp_path, "AXMX", _promo(tmp_path, HONEST), train=train)
    assert honest["status"] == "ok" and 0 < honest["metric"] < 1
    forged = _evaluate(tmp_path, "AXMX", _promo(tmp_path, FORGED_LSE), train=train)
    assert forged["status"] == "crashed" and forged["metric"] is None and forged["selection_metric"] is None
    assert forged["error"].startswith("contract breach: at ")
    assert "the returned log-sum-exp is below that of the logits returned with it" in forged["error"]


@needs_sandbox
def test_reading_the_future_by_pairing_rows_cannot_lift_the_selection_score(tmp_path):
    honest = _evaluate(tmp_path, "AXMX", _promo(tmp_path, HONEST))
    peek = _evaluate(tmp_path, "AXMX", _promo(tmp_path, PEEK))
    assert honest["status"] == peek["status"] == "ok" and peek["audit_max_change"] == 0.0
    # a limitation, pinned: the search score (public val rows, sent whole) is inflated, the audit passes
    assert peek["metric"] > 0.95 and honest["metric"] < 0.5
    # the selection score: no select row is sent with its future, so the peek reads random tokens
    n = peek["select_positions"]
    assert n == 64 and peek["selection_metric"] <= honest["selection_metric"] + 4 * math.sqrt(0.25 / n)
    assert peek["selection_metric"] < 0.25


@needs_sandbox
def test_counts_come_from_the_harness_and_reported_nan_is_dropped(tmp_path):
    primitives = _promo(tmp_path, FORGED_COUNTS)
    r = _evaluate(tmp_path, "AXMX", primitives)
    assert r["status"] == "ok" and r["steps"] == 0 and r["tokens"] == 0 and r["peak_mem_mb"] is None
    d = make_mad("in_context_recall", "tiny", seed=0)  # the trainer's model config: the first task's vocabulary
    cfg = _model_config(get_preset("tiny"), TrainConfig(pattern="AXMX", **SMOKE), d.vocab_size, d.train_x.shape[1])
    honest = tmp_path / "honest"
    honest.mkdir()
    _promo(honest, HONEST)  # the same layer without the patch, whose module body would patch this process
    register_promoted(load_promoted("X", str(honest / "X.py")))  # the module itself, in this test's process
    assert r["params"] == count_params("AXMX", cfg) and r["params"] > 0
    assert r["non_embedding_params"] == count_params("AXMX", cfg, non_embedding=True)
    assert r["flops_per_token"] == pytest.approx(flops_per_token("AXMX", cfg, cfg.max_seq_len), rel=1e-9)


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


def _refused_before_the_contract_child(tmp_path, capsys, monkeypatch, proxy: str) -> list[str]:
    """`compose run --proxy PROXY --primitive X=softmax`, with the contract's sandboxed child made to fail if
    it runs: the command must exit 2 without a run folder; returns the error lines."""
    def no_child(*args, **kwargs):
        raise AssertionError("the contract's sandboxed child ran before the proxy was refused")

    monkeypatch.setattr("aira.tasks.promoted.contract_failure", no_child)
    out = tmp_path / "run"
    assert main(["compose", "run", "--proxy", proxy, "--space", "attn-mlp", "--layers", "4", "--agents",
                 "greedy:offline", "--no-controls", "--budget", "2evals", "--executor", "inline", "--primitive",
                 f"X={path('softmax')}", "--out", str(out), "--quiet"]) == 2
    assert not out.exists()
    return capsys.readouterr().err.strip().splitlines()


def test_an_lm_proxy_with_a_promoted_primitive_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    with pytest.raises(UsageError, match="^--primitive X: promoted primitives run on MAD proxies only"):
        ComposeTask(space="attn-mlp", proxy="lm-cpu", layers=4, primitives=_promo(tmp_path, HONEST))
    err = _refused_before_the_contract_child(tmp_path, capsys, monkeypatch, "lm-cpu")
    assert err == [("aira: error: --primitive X: promoted primitives run on MAD proxies only (the harness scores "
                    "their logits on secret rows; an lm proxy's inputs are its labels), got task lm:shakespeare")]


def test_a_learning_curve_proxy_is_refused_before_the_contract_child(tmp_path, capsys, monkeypatch):
    err = _refused_before_the_contract_child(tmp_path, capsys, monkeypatch, "mad-cpu-ladder")
    assert len(err) == 1 and err[0].startswith("aira: error: --primitive X: a learning-curve score (curve_points)")


def test_the_secret_folder_is_stored_relative_to_the_run_and_old_absolute_paths_load(tmp_path):
    kwargs = {"space": "attn-mlp", "secret_dir": SECRET_DIR, "layers": 4}
    moved = tmp_path / "moved-run"
    assert run_task_kwargs(kwargs, moved) == {**kwargs, "secret_dir": str(moved.resolve() / "secret")}
    old = {**kwargs, "secret_dir": "/somewhere/else/secret"}  # a run of an earlier version: kept as it was
    assert run_task_kwargs(old, moved) == old
    assert run_task_kwargs({"space": "attn-mlp"}, moved) == {"space": "attn-mlp"}
