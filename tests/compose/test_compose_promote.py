"""`aira compose run --promote`: the cheap proxy's best candidates re-evaluated at its large fidelity within
the search, end to end on the smoke proxy with a tiny large fidelity; and `--proxy mad|lm` choosing by the
measured transfer."""

import json
from dataclasses import replace

import pytest

from aira.agents.journal import Journal
from aira.agents.stats import PROMOTE, TaskInfo, final_order
from aira.agents.types import Status
from aira.cli import main
from aira.compose import fidelity as fid
from aira.tasks import proxies
from aira.tasks.compose import PROXIES, ComposeTask, choose_proxy, settings_fingerprint

TINY_LARGE = {"d_model": 96, "n_heads": 6, "n_kv_heads": 3, "ffn_dim": 288}


@pytest.fixture
def tiny_large(monkeypatch):
    # a cheap large fidelity (the trick of test_fidelity.py): wider than smoke's width 64, same steps
    monkeypatch.setattr(fid, "LARGE_TOKEN_FACTOR", 1)
    monkeypatch.setattr(fid, "large_overrides", lambda preset, factor=2: dict(TINY_LARGE))


def _compose_run(out, *extra):
    return main(["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--layers", "4", "--agents",
                 "greedy:offline", "random:offline", "--no-controls", "--executor", "inline", "--workers", "1",
                 "--noise-seeds", "0", "--out", str(out), "--quiet", *extra])


def test_compose_run_promotes_through_the_large_fidelity_and_resumes(tmp_path, tiny_large, capsys):
    out = tmp_path / "c"
    assert _compose_run(out, "--budget", "4evals", "--promote", "2:2") == 0
    printed = capsys.readouterr()
    err = printed.err
    assert ("promote: after every 2 evaluations and when the search ends, the best 2 candidates by the hidden "
            "selection score are re-evaluated at the large fidelity (width 96, 8steps, lr 0.0015") in err
    cfg = json.loads((out / "config.json").read_text())
    large = cfg["task_kwargs"]["promote_train"]
    assert cfg["promote"] == "2:2" and large["overrides"] == TINY_LARGE and large["lr"] == 1.5e-3
    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    promoted = [n for n in nodes if n.operator == PROMOTE]
    cheap = [n for n in nodes if n.operator != PROMOTE]
    assert len(cheap) == 4 and promoted and all(n.status == Status.OK for n in promoted)
    # the same job path at other settings: a wider model, scored on both splits
    width_params = {n.metrics["params"] for n in cheap} | {n.metrics["params"] for n in promoted}
    assert min(n.metrics["params"] for n in promoted) > max(n.metrics["params"] for n in cheap)
    assert len(width_params) >= 2 and all(n.selection_metric is not None for n in promoted)
    summary = json.loads((out / "summary.json").read_text())
    order = final_order(nodes, TaskInfo(name="t"))
    assert summary["best"]["id"] == order[0][0].id and summary["best"]["promoted"]["id"] == order[0][1].id
    assert summary["evaluations"] == 4 and summary["promotions"]["evaluations"] == len(promoted)
    assert "were promoted" in printed.out  # the leaderboard says how it is ordered

    # resume with a bigger budget: the promotions stay, the search goes on, promotion with it
    assert main(["runs", "resume", str(out), "--budget", "8evals", "--quiet"]) == 0
    with Journal(out, readonly=True) as j:
        after = j.nodes()
    by_id = {n.id: n for n in after}
    assert all(by_id[n.id].to_dict() == n.to_dict() for n in promoted)
    again = [n for n in after if n.operator == PROMOTE]
    assert sum(n.operator != PROMOTE for n in after) == 8
    assert len({n.proposal for n in again}) == len(again)  # a proposal is promoted once per run
    # the resumed run promoted at the stored large settings (the monkeypatch is irrelevant by then)
    assert {n.metrics["params"] for n in again if n.proposal == promoted[0].proposal} == {promoted[0].metrics["params"]}


def test_a_bad_promote_spec_is_refused_before_any_work(tmp_path, tiny_large, capsys):
    assert main(["compose", "run", "--proxy", "smoke", "--promote", "0", "--out", str(tmp_path / "x")]) == 2
    assert "bad --promote '0'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_compose_task_promotion_job_is_the_large_fidelity_through_the_same_job_function(tiny_large):
    train = fid.fidelity_train(PROXIES["smoke"], "large")
    task = ComposeTask(proxy="smoke", space="attn-mlp", layers=4, promote_train=train, batch=True)
    job, cheap = task.promotion_job("AMAM", seed=3, job_id="p"), task.make_job("AMAM", seed=3, job_id="c")
    assert task.promotion_fidelity == "large" and ComposeTask(proxy="smoke").promotion_fidelity is None
    assert job.fn == cheap.fn and job.kwargs["train"] == train and job.kwargs["seed"] == 3
    assert job.timeout_s == 64 * cheap.timeout_s
    assert job.batch_key != cheap.batch_key  # never trained as one with candidates of the cheap fidelity


# ---------------------------------------------------------------- --proxy mad|lm by the evidence


def _table(tmp_path, monkeypatch, **spearman):
    entries = {name: {"status": "measured", "fingerprint": settings_fingerprint(PROXIES[name].train_kwargs()),
                      "date": "2027-01-01", "seed_to_seed": 0.9, "spearman": rho, "ci": [0.6, 0.95],
                      "large_patterns": 20} for name, rho in spearman.items()}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(entries))
    monkeypatch.setattr(proxies, "TABLE_PATH", path)


def test_mad_and_lm_choose_the_best_measured_transfer_else_the_default(tmp_path, monkeypatch):
    # the shipped figures: mad-cpu -0.18, the ladder unmeasured -> the default, and the line says why
    p, why = choose_proxy("mad", gpu=False)
    assert p.name == "mad-cpu" and "mad-cpu rho -0.18, mad-cpu-ladder not measured" in why
    p, why = choose_proxy("lm", gpu=False)
    assert p.name == "lm-cpu" and why == ("the default: no small-to-large transfer is measured among the LM "
                                          "proxies for a CPU (lm-cpu not measured)")
    _table(tmp_path, monkeypatch, **{"mad-cpu": 0.2, "mad-cpu-ladder": 0.6})
    p, why = choose_proxy("mad", gpu=False)
    assert p.name == "mad-cpu-ladder" and why.startswith("the best measured small-to-large transfer of the MAD "
                                                         "proxies for a CPU (mad-cpu rho 0.20, mad-cpu-ladder rho 0.60)")
    _table(tmp_path, monkeypatch, **{"mad-cpu": 0.6, "mad-cpu-ladder": 0.6})  # a tie keeps the default
    assert choose_proxy("mad", gpu=False)[0].name == "mad-cpu"
    _table(tmp_path, monkeypatch, **{"mad-cpu-ladder": -0.3})  # an unmeasured default counts as 0
    assert choose_proxy("mad", gpu=False)[0].name == "mad-cpu"
    _table(tmp_path, monkeypatch, **{"mad-cpu-ladder": 0.3})
    assert choose_proxy("mad", gpu=False)[0].name == "mad-cpu-ladder"
    assert choose_proxy("mad", gpu=True)[0].name == "mad-gpu"  # a GPU proxy is chosen among GPU ones only
    # smoke scores MAD on a CPU too, but it is a test proxy: never a candidate, whatever its figures
    _table(tmp_path, monkeypatch, smoke=0.99)
    assert choose_proxy("mad", gpu=False)[0].name == "mad-cpu"


def test_compose_run_start_line_names_the_chosen_proxy_and_why(tmp_path, monkeypatch, capsys):
    # a cheap stand-in for the ladder, measured better than the default: `--proxy mad` takes it
    monkeypatch.setitem(PROXIES, "mad-cpu-ladder", replace(PROXIES["smoke"], name="mad-cpu-ladder", auto=True))
    _table(tmp_path, monkeypatch, **{"mad-cpu": -0.18, "mad-cpu-ladder": 0.55})
    out = tmp_path / "c"
    assert main(["compose", "run", "--proxy", "mad", "--space", "attn-mlp", "--layers", "4", "--agents",
                 "random:offline", "--no-controls", "--executor", "inline", "--workers", "1", "--noise-seeds", "0",
                 "--budget", "1evals", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert ("proxy mad-cpu-ladder (chosen for --proxy mad: the best measured small-to-large transfer of the MAD "
            "proxies for a CPU (mad-cpu rho -0.18, mad-cpu-ladder rho 0.55)") in err
    # 0.55 misses the 0.8 target: the run says so at its start
    assert "warning: proxy mad-cpu-ladder: its ranking agrees poorly with 4x wider, 4x longer training" in err
    # stored resolved: a resume keeps this proxy even if the figures change
    assert json.loads((out / "config.json").read_text())["task_kwargs"]["proxy"] == "mad-cpu-ladder"


def test_an_unmeasured_transfer_is_said_at_the_start_of_every_run(capsys):
    from aira.commands.compose import _print_fidelity

    _print_fidelity("lm-cpu")  # the shipped entry: seed figures, no small-to-large
    err = capsys.readouterr().err
    assert "small-to-large not measured" in err
    assert "warning: proxy lm-cpu: its agreement with 4x wider, 4x longer training (small-to-large) is not " \
           "measured" in err
    _print_fidelity("smoke")  # no figures at all
    assert "whether it transfers to larger training is not measured" in capsys.readouterr().err
