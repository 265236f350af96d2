"""The trainer on real (tiny) data: it learns, it reports, it survives divergence."""

import json
from pathlib import Path

import pytest

from aira.cli import main
from aira.errors import UsageError
from aira.train.result import TaskScore, TrainResult
from aira.train.trainer import TrainConfig, format_summary, train


def _cfg(**kw):
    base = dict(pattern="(AM)x2", preset="tiny", task="mad:in_context_recall", mad_settings="tiny",
                budget="60steps", progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_loss_on_in_context_recall():
    short = train(_cfg(budget="2steps"))
    longer = train(_cfg(budget="150steps", lr=3e-3))
    assert short.status == longer.status == "ok"
    # more training gives a clearly lower validation loss and a better accuracy
    assert longer.val_loss < short.val_loss - 0.2
    assert longer.metric > short.metric
    for key in ("params", "flops_per_token", "tokens", "tokens_per_s", "peak_mem_mb", "wall_s",
                "selection_metric"):
        assert getattr(longer, key) is not None and getattr(longer, key) > 0
    from aira.data.mad import make_mad
    from aira.models import get_preset

    seq_len = make_mad("in_context_recall", "tiny").train_x.shape[1]
    assert longer.tokens == 150 * get_preset("tiny").batch_size * seq_len
    assert longer.steps == 150


def test_divergence_is_a_status_not_a_crash():
    r = train(_cfg(lr=1e30, budget="20steps"))
    assert r.status == "diverged"
    assert "loss became" in r.error or "non-finite" in r.error
    assert r.metric is None


def test_mad_suite_averages_tasks():
    r = train(_cfg(task="mad:in_context_recall,selective_copying", budget="4steps"))
    assert set(r.per_task) == {"in_context_recall", "selective_copying"}
    mean = sum(v.metric for v in r.per_task.values()) / 2
    assert r.metric == pytest.approx(mean)
    assert r.steps == 4  # the budget is split between the tasks
    text = format_summary(r)
    assert "metric_name: accuracy" in text and "task.selective_copying:" in text


def test_a_task_can_name_its_own_mad_settings():
    # a ladder of two difficulties of one task: each rung is trained on its own settings' data
    r = train(_cfg(task="mad:selective_copying@tiny,selective_copying@cpu32", mad_settings="cpu", budget="4steps"))
    assert set(r.per_task) == {"selective_copying@tiny", "selective_copying@cpu32"}
    assert "selective_copying (tiny settings)" in r.data and "selective_copying (cpu32 settings)" in r.data
    from aira.train.sources import make_sources, parse_task

    spec = parse_task("mad:selective_copying@tiny,in_context_recall")
    tiny, default = make_sources(spec, seq_len=64, seed=0, mad_settings="cpu")
    assert tiny.data.settings.n_train == 256  # the rung's own preset
    assert default.data.settings.seq_len == 64  # the run's --mad-settings (cpu)
    with pytest.raises(UsageError, match="unknown MAD settings 'nope'"):
        parse_task("mad:selective_copying@nope")
    with pytest.raises(UsageError, match="listed twice"):
        parse_task("mad:compression@tiny,compression@tiny")


def test_learning_curve_score_is_the_mean_of_evenly_spaced_points():
    plain = train(_cfg(budget="40steps", lr=3e-3))
    curved = train(_cfg(budget="40steps", lr=3e-3, curve_points=4, curve_examples=32))
    entry = curved.per_task["in_context_recall"]
    assert len(entry.curve) == 4
    # scoring along the way does not change training: the last point is the plain run's final score
    assert entry.curve[-1] == entry.final == pytest.approx(plain.metric)
    assert curved.metric == pytest.approx(sum(entry.curve) / 4)
    assert entry.curve[0] < entry.final  # a quarter of the way in it knows less
    assert "learning-curve area" in curved.score and plain.score is None
    assert curved.metric_name == "accuracy (learning-curve area)" and plain.metric_name == "accuracy"
    with pytest.raises(UsageError, match="MAD tasks only"):
        train(_cfg(task="lm:shakespeare", tokenizer="bytes", curve_points=4))
    with pytest.raises(UsageError, match="curve_points must be >= 0"):
        train(_cfg(curve_points=-1))


def test_mad_scores_against_models_whose_answers_are_known():
    """accuracy, loss, prob and loglik of a model that guesses uniformly and of one that knows every answer."""
    import math

    import torch

    from aira.train.sources import MadSource

    src = MadSource("selective_copying", "tiny", score="loglik")
    V = src.vocab_size

    class Fixed(torch.nn.Module):
        def __init__(self, know: bool):
            super().__init__()
            self.know = know

        def forward(self, x, y):
            logits = torch.zeros(*y.shape, V)
            if self.know:
                logits.scatter_(-1, y.clamp(min=0).unsqueeze(-1), 30.0)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1), ignore_index=-100)
            return logits, loss

    uniform = src.evaluate(Fixed(False), "val", torch.device("cpu"))
    assert uniform["loss"] == pytest.approx(math.log(V), rel=1e-5) and uniform["prob"] == pytest.approx(1 / V)
    assert uniform["loglik"] == pytest.approx(0.0, abs=1e-5)
    perfect = src.evaluate(Fixed(True), "val", torch.device("cpu"))
    assert perfect["accuracy"] == 1.0 and perfect["prob"] == pytest.approx(1.0)
    assert perfect["loglik"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UsageError, match="unknown MAD score 'f1'; valid: accuracy, loglik"):
        MadSource("selective_copying", "tiny", score="f1")


def test_a_mad_run_can_be_scored_by_log_likelihood():
    acc = train(_cfg(task="mad:in_context_recall,selective_copying", budget="20steps", lr=3e-3))
    ll = train(_cfg(task="mad:in_context_recall,selective_copying", budget="20steps", lr=3e-3, mad_score="loglik"))
    assert ll.metric_name == "loglik" and acc.metric_name == "accuracy"
    # the same training; only the metric differs, and every evaluation reports both
    for task in ("in_context_recall", "selective_copying"):
        a, b = acc.per_task[task], ll.per_task[task]
        assert a.accuracy == b.accuracy == a.metric and b.loglik == b.metric
        assert 0.0 < b.loglik < 1.0 and 0.0 < b.prob < 1.0
    assert ll.metric == pytest.approx(sum(ll.per_task[t].loglik for t in ll.per_task) / 2)
    curved = train(_cfg(budget="20steps", lr=3e-3, mad_score="loglik", curve_points=2, curve_examples=32))
    entry = curved.per_task["in_context_recall"]
    assert entry.loglik == entry.final and entry.metric == pytest.approx(sum(entry.curve) / 2)
    with pytest.raises(UsageError, match="applies to MAD tasks only"):
        train(_cfg(task="lm:shakespeare", tokenizer="bytes", mad_score="loglik"))


def test_bad_inputs_raise_usage_errors():
    with pytest.raises(UsageError, match="valid"):
        train(_cfg(pattern="AXQ"))
    with pytest.raises(UsageError):
        train(_cfg(task="nonsense"))
    with pytest.raises(UsageError, match="MAD task"):
        train(_cfg(task="mad:not_a_task"))
    with pytest.raises(UsageError):
        train(_cfg(budget="forever"))
    with pytest.raises(UsageError, match="more than the maximum of 128"):
        train(_cfg(pattern="(AM)x65"))


@pytest.mark.parametrize("argv,needle", [
    (["train", "--pattern", "AZ", "--budget", "1steps"], "valid"),
    (["train", "--pattern", "AM", "--preset", "huge"], "preset"),
    (["train", "--pattern", "AM", "--budget", "soon"], "budget"),
    (["train", "--pattern", "AM", "--json", "/nonexistent/dir/x.json"], "does not exist"),
    (["train"], "required"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err.lower(), err


def test_cli_train_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["train", "--pattern", "AMSM", "--task", "mad:selective_copying", "--mad-settings", "tiny",
                 "--budget", "3steps", "--quiet", "--threads", "1", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "status: ok" in printed and "pattern: AMSM" in printed
    data = json.loads(out.read_text())
    assert data["pattern"] == "AMSM" and data["steps"] == 3 and 0.0 <= data["metric"] <= 1.0
    code = main(["train", "--pattern", "AMSM", "--task", "mad:selective_copying@tiny,compression@tiny",
                 "--budget", "4steps", "--quiet", "--threads", "1", "--curve-points", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and "learning-curve area" in printed and "task.selective_copying@tiny.final:" in printed


def test_compilation_is_not_charged_to_a_time_budget(monkeypatch):
    # torch.compile's first call compiles for seconds; a stand-in whose first call takes 1.5 s of an injected
    # clock (every other reading of the clock takes 5 ms) shows whether the budget's clock starts after that
    # step (it must: the budget measures training)
    import types

    import torch

    import aira.train.trainer as trainer

    now = [1000.0]

    def clock():
        now[0] += 0.005
        return now[0]

    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(time=clock))

    def slow_first_call(model, mode=None):
        calls = []

        def run(*a, **k):
            if not calls:
                now[0] += 1.5
            calls.append(1)
            return model(*a, **k)

        return run

    monkeypatch.setattr(torch, "compile", slow_first_call)
    r = train(_cfg(budget="1s", compile=True))
    assert r.status == "ok"
    assert 1.5 <= r.compile_s < 1.55
    # a second of training after the stall, not one stalled step: at 5 ms a reading, about 200 steps
    assert r.steps >= 100
    assert r.tokens_per_s > r.tokens / 1.1  # tokens/s is over training time, compilation left out
    plain = train(_cfg(budget="5steps"))
    assert plain.compile_s == 0.0


@pytest.mark.parametrize("setting, mode", [(True, None), ("reduce-overhead", "reduce-overhead"),
                                           ("max-autotune", "max-autotune")])
def test_compile_setting_reaches_torch_compile(monkeypatch, setting, mode):
    # The training step is compiled with the mode asked for (True: torch's default); evaluation runs the
    # module itself, so a mode's CUDA graphs never see the scoring passes.
    import torch

    seen = []

    def recorder(model, mode=None):
        seen.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", recorder)
    r = train(_cfg(budget="3steps", compile=setting))
    assert r.status == "ok" and seen == [mode]


def test_the_cli_offers_the_trainer_compile_modes():
    # aira/commands/train.py spells the modes out so that `aira --help` imports no torch
    from aira.commands.train import COMPILE_MODES as CLI_MODES
    from aira.train.trainer import COMPILE_MODES

    assert CLI_MODES == COMPILE_MODES


def test_unknown_compile_mode_is_refused():
    with pytest.raises(UsageError, match="unknown compile mode 'fast'; use one of default, reduce-overhead"):
        train(_cfg(budget="3steps", compile="fast"))


# results as `train` / `train_many` wrote them before TrainResult was a dataclass (a mad-cpu-like MAD suite,
# 30 steps, seed 3; a learning-curve score; a byte-level LM; a batched one; a diverged one): cache entries and
# run folders hold these, and they must read back and write out key for key, in the same order
BEFORE = Path(__file__).with_name("results_before_dataclass.json")


@pytest.mark.parametrize("name", ["single", "curve", "lm", "batched", "diverged"])
def test_results_written_before_the_dataclass_read_back_key_for_key(name):
    old = json.loads(BEFORE.read_text())[name]
    r = TrainResult.from_dict(old)
    assert json.dumps(r.to_dict()) == json.dumps(old)  # same keys, same order, same values
    assert r.ok == (old["status"] == "ok") and r.metric == old["metric"]
    if old.get("per_task"):
        first = next(iter(r.per_task.values()))
        assert isinstance(first, TaskScore) and first.metric == next(iter(old["per_task"].values()))["metric"]
    with pytest.raises(KeyError):
        TrainResult.from_dict({k: v for k, v in old.items() if k != "metric"})


def test_the_result_a_training_returns_has_the_keys_results_always_had():
    r = train(_cfg(task="mad:in_context_recall,selective_copying", budget="4steps", curve_points=2,
                   curve_examples=16))
    old = json.loads(BEFORE.read_text())["curve"]
    d = r.to_dict()
    assert list(d) == list(old)
    assert [list(e) for e in d["per_task"].values()] == [list(old["per_task"]["compression"])] * 2
    assert TrainResult.from_dict(json.loads(json.dumps(d))) == r
