"""The Compose task and pipeline end to end on the offline agents (smoke proxy: seconds per evaluation)."""

import json

import pytest

from aira.cli import main
from aira.tasks.compose import PROXIES, ComposeTask, baseline_patterns, evaluate_pattern, resolve_space


def test_spaces_validation_and_baselines():
    assert resolve_space("attn-mlp") == "AM" and resolve_space("attn-mlp-mamba") == "AMS"
    assert resolve_space("attn,swa,mlp") == "AWM"
    task = ComposeTask(space="attn-mlp", proxy="smoke", layers=16)
    assert task.validate("(AM)x8") is None and task.canonical("(AM)x8") == "AM" * 8
    assert "exactly 16 layers" in task.validate("AMAM")
    assert "not in this space" in task.validate("S" * 16)
    assert "valid codes" in task.validate("AMQ" * 5 + "A")
    b = baseline_patterns("AMS", 16)
    assert b["composer 2A+4M (stacked)"] == "AAMMMMAAMMMMAAMM"
    assert b["composer 2A5M2A3M1A3M (stretched)"] == "AAMMMMMAAMMMAMMM"
    nem = b["nemotron-h style (~8% attention)"]
    assert len(nem) == 16 and nem.count("A") == 1 and nem.count("S") == 7
    assert all(len(p) == 16 for p in b.values())
    assert "nemotron-h style (~8% attention)" not in baseline_patterns("AM", 16)


def test_deltanet_space_and_its_published_hybrid_baselines():
    assert resolve_space("attn-mlp-deltanet") == "AMD"
    assert resolve_space("A,D,E") == "ADE" and resolve_space("attn,gla,moe,deltanet") == "AGED"
    task = ComposeTask(space="attn-mlp-deltanet", proxy="smoke", layers=16)
    assert task.validate("(DMDMDMAM)x2") is None and "not in this space" in task.validate("(GM)x8")
    dense = baseline_patterns("AMD", 16)
    assert dense["qwen3-next / kimi-linear 3:1 (DMDMDMAM)"] == "DMDMDMAM" * 2
    assert "llama-3.2 (AM alternation)" in dense
    moe = baseline_patterns("ADE", 16)  # with the MoE in the space, the MLPs are experts, as in both models
    assert moe == {"qwen3-next / kimi-linear 3:1 (DEDEDEAE)": "DEDEDEAE" * 2}
    assert baseline_patterns("AMD", 12)["qwen3-next / kimi-linear 3:1 (DMDMDMAM)"] == "DMDMDMAMDMDM"
    assert not any("qwen3" in k for k in baseline_patterns("AMS", 16))


def test_the_agent_is_told_how_a_curve_scored_proxy_scores(monkeypatch):
    from dataclasses import replace

    from aira.tasks.compose import PROXIES

    monkeypatch.setitem(PROXIES, "smoke-curve", replace(PROXIES["smoke"].with_train(curve_points=4), name="smoke-curve"))
    assert "averaged over 4 evenly spaced points of training" in ComposeTask(proxy="smoke-curve").describe()
    assert "learning-curve" not in ComposeTask(proxy="smoke").describe()
    assert ComposeTask(proxy="smoke-curve").make_job("AM" * 8, seed=0, job_id="j").kwargs["train"]["curve_points"] == 4


def test_a_log_likelihood_scored_proxy_says_so_and_keys_its_own_cache(monkeypatch):
    from dataclasses import replace

    from aira.tasks.compose import PROXIES, _cache_key

    monkeypatch.setitem(PROXIES, "smoke-ll", replace(PROXIES["smoke"].with_train(mad_score="loglik"), name="smoke-ll"))
    assert "mean log-likelihood score on the answer positions" in ComposeTask(proxy="smoke-ll").describe()
    assert "log-likelihood" not in ComposeTask(proxy="smoke").describe()
    ll = ComposeTask(proxy="smoke-ll").make_job("AM" * 8, seed=0, job_id="j").kwargs["train"]
    plain = ComposeTask(proxy="smoke").make_job("AM" * 8, seed=0, job_id="j").kwargs["train"]
    assert ll["mad_score"] == "loglik" and "mad_score" not in plain  # accuracy proxies keep their cache keys
    assert _cache_key("AM" * 8, ll, 0) != _cache_key("AM" * 8, plain, 0)


def test_evaluation_is_cached_by_pattern_and_seed(tmp_path):
    task = ComposeTask(proxy="smoke", layers=4, cache_dir=str(tmp_path), threads=1)
    job = task.make_job("AMSM", seed=0, job_id="j1")
    first = evaluate_pattern(**job.kwargs)
    again = evaluate_pattern(**job.kwargs)
    assert first["status"] == "ok" and first["cached"] == 0 and again["cached"] == 1
    assert again["metric"] == first["metric"] and again["selection_metric"] == first["selection_metric"]
    other_seed = evaluate_pattern(**task.make_job("AMSM", seed=1, job_id="j2").kwargs)
    assert other_seed["cached"] == 0
    two = ComposeTask(proxy="smoke", layers=4, cache_dir=str(tmp_path), threads=1, seeds=2)
    r = evaluate_pattern(**two.make_job("AMSM", seed=0, job_id="j3").kwargs)
    assert r["cached"] == 2 and r["seeds"] == 2 and len(r["seed_metrics"]) == 2
    assert r["metric"] == pytest.approx(sum(r["seed_metrics"]) / 2)


def test_cache_key_follows_what_each_task_settings_resolve_to(monkeypatch):
    from aira.data import mad
    from aira.tasks.compose import _cache_key

    train = {"task": "mad:selective_copying@rung,compression", "preset": "tiny", "mad_settings": "tiny"}
    monkeypatch.setitem(mad.MAD_PRESETS, "rung", mad.MadSettings(seq_len=16, n_copy=2))
    before = _cache_key("AMAM", train, 0)
    assert _cache_key("AMAM", dict(train), 0) == before
    # retuning a task's own settings (same name) must miss the cache
    monkeypatch.setitem(mad.MAD_PRESETS, "rung", mad.MadSettings(seq_len=16, n_copy=3))
    assert _cache_key("AMAM", train, 0) != before


def test_compose_run_aggregate_extrapolate_end_to_end(tmp_path, capsys):
    out = tmp_path / "c1"
    code = main(["compose", "run", "--proxy", "smoke", "--layers", "4", "--agents", "greedy:offline",
                 "--budget", "10evals", "--workers", "1", "--executor", "inline", "--noise-seeds", "2",
                 "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "leaderboard" in printed and "aggregate (n0" in printed and "extrapolate (stretch to 1B)" in printed
    agg = json.loads((out / "aggregate.json").read_text())
    assert len(agg["pattern"]) == 4 and set(agg["pattern"]) <= set("AMS")
    ext = json.loads((out / "extrapolate-1B-stretch.json").read_text())
    assert ext["source_pattern"] == agg["pattern"] and ext["model_config"]["d_model"] == 2048
    shown = capsys.readouterr()
    assert main(["runs", "show", str(out), "--json"]) == 0
    nodes = json.loads(capsys.readouterr().out)
    nodes = nodes["nodes"] if isinstance(nodes, dict) else nodes
    agents = {n["agent"] for n in nodes}
    assert {"greedy:offline#0", "random:offline#1", "bo:offline#2", "baselines:offline#3"} <= agents
    assert all(n["llm"] == "offline" for n in nodes if n["agent"] != "reference")
    baselines = [n for n in nodes if n["agent"].startswith("baselines")]
    assert {n["proposal"] for n in baselines} >= {"AMAM", "AAMM"}
    del shown
    # aggregate again with another method, and extrapolate an explicit pattern by stacking
    assert main(["compose", "aggregate", str(out), "--method", "best"]) == 0
    assert main(["compose", "extrapolate", "--pattern", "AAMMMM", "--target", "1B", "--strategy", "stack",
                 "--out", str(tmp_path / "e.json")]) == 0
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["layers"] == 27 and e["pattern"].count("A") == 9


@pytest.mark.parametrize("argv,needle", [
    (["compose", "run", "--space", "attn,zeta", "--out", "x"], "unknown primitive"),
    (["compose", "run", "--proxy", "imagenet", "--out", "x"], "unknown proxy"),
    (["compose", "aggregate", "/nonexistent/run"], "no run"),
    (["compose", "extrapolate", "--pattern", "AM", "--target", "1B", "--strategy", "smear"], "strategy"),
    (["compose", "scaling", "--patterns", "AM", "--budgets", "1e12"], "two compute budgets"),
])
def test_bad_input_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


@pytest.mark.slow
def test_scaling_study_fits_frontiers(tmp_path, capsys):
    code = main(["compose", "scaling", "--patterns", "AMAM,SMSM", "--budgets", "2e9,6e9", "--sizes", "16,32",
                 "--eval-tokens", "2048", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "scaling.json").read_text())
    assert set(data["architectures"]) == {"AMAM", "SMSM"}
    f = data["architectures"]["AMAM"]["frontier"]
    assert len(f["points"]) == 2 and f["a"] > 0
    assert data["comparisons"][0]["x"] == "SMSM" and "faster" in capsys.readouterr().out


@pytest.mark.slow  # a real search of 6 evaluations in two worker processes, then the report
def test_demo_runs_the_whole_pipeline_offline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--proxy", "smoke", "--budget", "6evals", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("aira demo: offline AIRA-Compose search (attn-mlp, proxy smoke")
    assert "every node says llm: offline" in printed and "leaderboard" in printed
    assert "aggregate (n0" in printed and f"report: {out}/report.html" in printed
    assert (out / "report.html").stat().st_size > 10_000 and (out / "aggregate.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["task_kwargs"]["space"] == "attn-mlp" and config["noise_seeds"] == 1
    assert config["task_kwargs"]["seeds"] == 1  # the smoke proxy's own, stored resolved for a resume
    assert config["agents"][:2] == ["greedy:offline?num_drafts=2",
                                    "evolutionary:offline?num_islands=1&init_per_island=3"]
    assert config["budget"]["evals"] == 6 and config["budget"]["on_stop"] == "kill"
    assert "6 evaluations in" in printed


@pytest.mark.slow
def test_compose_run_trains_candidates_as_one_with_batch(tmp_path, capsys):
    out = tmp_path / "b"
    code = main(["compose", "run", "--proxy", "smoke", "--layers", "4", "--agents", "random:offline", "--no-controls",
                 "--budget", "6evals", "--workers", "1", "--batch", "3", "--noise-seeds", "0",
                 "--out", str(out), "--quiet"])
    assert code == 0
    assert "1 worker x 1 thread" in capsys.readouterr().err
    assert main(["runs", "show", str(out), "--json"]) == 0
    nodes = json.loads(capsys.readouterr().out)
    nodes = nodes["nodes"] if isinstance(nodes, dict) else nodes
    done = [n for n in nodes if n["status"] == "ok"]
    assert len(done) == 6
    # jobs went three to a worker and each was trained with the others as one
    assert {n["metrics"].get("batched") for n in done} == {3}
    # a batched score equals the single path's to float tolerance
    n = done[0]
    single = evaluate_pattern(pattern=n["proposal"], seed=0, seeds=1, threads=1,
                              train=PROXIES["smoke"].train_kwargs())
    assert single["metric"] == pytest.approx(n["metric"], abs=1e-3)


def test_batch_must_be_positive(capsys):
    assert main(["compose", "run", "--proxy", "smoke", "--batch", "0", "--budget", "1evals"]) == 2
    assert "--batch must be at least 1, got 0" in capsys.readouterr().err
