"""User-defined proxies: a JSON or TOML file of Proxy settings, checked before anything trains, with its
measured fidelity figures kept beside it."""

from __future__ import annotations

import json

import pytest

from aira.cli import main
from aira.compose import fidelity as fid
from aira.errors import UsageError
from aira.tasks import proxies
from aira.tasks.compose import PROXIES, ComposeTask, load_proxy_file, resolve_proxy

# the smoke proxy's settings, as a user would write them
SMOKE = {"task": "mad:in_context_recall", "preset": "tiny", "mad_settings": "tiny", "budget": "8steps", "lr": 3e-3,
         "timeout_s": 120}


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_a_json_and_a_toml_proxy_file(tmp_path):
    p = resolve_proxy(str(_write(tmp_path / "recall8.json", {**SMOKE, "seeds": 2})))
    assert p.name == "recall8" and p.source == str((tmp_path / "recall8.json").resolve())
    assert p.seeds == 2 and p.train_kwargs() == {**PROXIES["smoke"].train_kwargs()}
    assert "user-defined proxy from recall8.json" in p.description
    toml = tmp_path / "copy.toml"
    toml.write_text('name = "my-copy"\ntask = "mad:selective_copying@copy16"\npreset = "tiny"\n'
                    'budget = "2M tokens"\nmad_score = "loglik"\ndescription = "copying, 2 of 16"\n')
    q = load_proxy_file(str(toml))
    assert (q.name, q.budget, q.setting("mad_score"), q.description) == ("my-copy", "2M tokens", "loglik", "copying, 2 of 16")
    task = ComposeTask(proxy=str(toml), space="attn-mlp")
    assert task.name == "compose-attn-mlp-my-copy" and task.proxy == q


@pytest.mark.parametrize(
    "data, message",
    [
        ({**SMOKE, "lr_schedule": "cosine"}, "unknown setting 'lr_schedule'; valid: name, task, preset"),
        ({"task": "mad", "preset": "tiny"}, "missing budget (a proxy needs task, preset and budget)"),
        ({**SMOKE, "seeds": "2"}, "seeds = '2' has the wrong type"),
        ({**SMOKE, "seeds": True}, "seeds = True has the wrong type"),
        ({**SMOKE, "budget": "10m"}, "is a time; give steps or tokens"),
        ({**SMOKE, "name": "mad-cpu"}, "name 'mad-cpu' is a built-in proxy's"),
        ({**SMOKE, "task": "mad:no_such_task"}, "no_such_task"),
        ({**SMOKE, "preset": "huge"}, "huge"),
        ({**SMOKE, "mad_settings": "hard"}, "unknown MAD settings 'hard'"),
        ({**SMOKE, "mad_score": "f1"}, "mad_score must be one of accuracy, loglik"),
        ({**SMOKE, "task": "lm:shakespeare", "curve_points": 4}, "apply to MAD tasks only"),
        ({**SMOKE, "lr": 0}, "lr must be positive"),
        ({**SMOKE, "lr": None}, "lr = None has the wrong type"),
        ({**SMOKE, "schedule": "linear"}, "schedule must be cosine or wsd, got 'linear'"),
        ({**SMOKE, "tokenizer": "chars"}, "tokenizer must be bpe or bytes, got 'chars'"),
        ({**SMOKE, "warmup_frac": 1.5}, "warmup_frac must be in [0, 1)"),
        ({**SMOKE, "threads": 2}, "unknown setting 'threads'"),  # how a machine runs it is not a proxy's
        ({**SMOKE, "overrides": {"d_model": 8}}, "unknown setting 'overrides'"),
        ([1, 2], "expected a table of settings, got list"),
    ],
)
def test_bad_proxy_files_are_one_line_before_anything_trains(tmp_path, capsys, data, message):
    f = _write(tmp_path / "p.json", data)
    with pytest.raises(UsageError, match="proxy file"):
        load_proxy_file(str(f))
    out = tmp_path / "fid"
    assert main(["compose", "fidelity", "--proxy", str(f), "--space", "attn-mlp", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_unreadable_and_malformed_files(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{task: ")
    (tmp_path / "bad.toml").write_text("task = ")
    for name, message in (("bad.json", "not valid JSON"), ("bad.toml", "not valid TOML"),
                          ("missing.json", "does not exist")):
        assert main(["compose", "fidelity", "--proxy", str(tmp_path / name), "--space", "attn-mlp"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_measured_figures_live_beside_the_file_and_lapse_when_it_changes(tmp_path, capsys, monkeypatch):
    from aira.commands.compose import _print_fidelity

    shipped = proxies.TABLE_PATH.read_text()
    f = _write(tmp_path / "recall8.json", SMOKE)
    out = tmp_path / "fid"
    args = ["compose", "fidelity", "--proxy", str(f), "--space", "attn-mlp", "--layers", "4", "--limit", "4",
            "--seeds", "2", "--fidelities", "small", "--executor", "inline", "--out", str(out), "--record"]
    assert main(args) == 0
    assert f"recorded in {tmp_path / 'recall8.fidelity.json'}" in capsys.readouterr().err
    assert proxies.TABLE_PATH.read_text() == shipped  # the package's table is not touched
    entry = json.loads((tmp_path / "recall8.fidelity.json").read_text())["recall8"]
    assert entry["patterns"] == 4 and entry["seeds"] == 2 and entry["space"] == "attn-mlp"
    proxy = load_proxy_file(str(f))
    assert fid.measured_entry(proxy) == entry
    _print_fidelity(proxy)
    assert "proxy fidelity (recall8): seed-to-seed rho" in capsys.readouterr().err
    # the same file with another budget: its figures no longer apply
    _write(f, {**SMOKE, "budget": "16steps"})
    changed = load_proxy_file(str(f))
    assert fid.measured_entry(changed) is None and fid.stale_entry(changed) == entry
    _print_fidelity(changed)
    err = capsys.readouterr().err
    assert "recall8's settings changed after its fidelity was measured" in err
    assert f"--proxy {f.resolve()} --space SPACE --record" in err
    # never measured: the warning names the command that measures it
    other = load_proxy_file(str(_write(tmp_path / "other.json", SMOKE)))
    _print_fidelity(other)
    assert "proxy other has no measured fidelity figures" in capsys.readouterr().err


def test_a_search_on_a_proxy_file_is_stored_by_its_path_and_resumes_from_elsewhere(tmp_path, capsys, monkeypatch):
    from aira.agents.runfolder import load_config

    (tmp_path / "work").mkdir()
    _write(tmp_path / "work" / "recall8.json", SMOKE)
    monkeypatch.chdir(tmp_path / "work")
    out = tmp_path / "run"
    args = ["compose", "run", "--proxy", "recall8.json", "--layers", "4", "--agents", "random:offline",
            "--no-controls", "--budget", "2evals", "--workers", "1", "--executor", "inline", "--noise-seeds", "0",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "proxy recall8: user-defined proxy from recall8.json" in err
    assert "warning: proxy recall8 has no measured fidelity figures" in err
    assert load_config(out).task_kwargs["proxy"] == str(tmp_path / "work" / "recall8.json")
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "resume", str(out), "--budget", "3evals", "--quiet"]) == 0


def test_a_proxy_file_with_a_gpu_preset_asks_for_a_gpu(tmp_path):
    def job_gpus(**extra):
        p = tmp_path / f"p{len(extra)}{extra.get('preset', '')}.json"
        p.write_text(json.dumps({"task": "mad:in_context_recall", "budget": "8steps", **extra}))
        return ComposeTask(proxy=str(p), layers=4).make_job("AMAM", seed=0, job_id="j").gpus

    assert job_gpus(preset="small") == 1  # by the preset, not by the name: the file's name says nothing
    assert job_gpus(preset="tiny") == 0
    assert job_gpus(preset="small", needs_gpu=False) == 0
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"task": "mad", "preset": "tiny", "budget": "8steps", "needs_gpu": "yes"}))
    with pytest.raises(UsageError, match="needs_gpu = 'yes' has the wrong type"):
        load_proxy_file(str(p))


# the built-in proxies' fingerprints and trainer settings, as computed before Proxy held its TrainConfig
# settings in one `train` mapping: the shipped fidelity figures and every cached evaluation depend on them
PINNED_FINGERPRINTS = {"mad-cpu": "3cf75ea6e0991501", "mad-cpu-ladder": "b17973d891b4a88b",
                       "mad-gpu": "e7a1fe7637e4bd25", "lm-cpu": "154640d114847098", "smoke": "e703e340a177085c",
                       "lm-gpu": "d92dd0bd00dbfc23"}


def test_the_built_in_proxies_keep_their_fingerprints_and_cache_keys():
    from aira.train.cache import cache_key
    from aira.train.trainer import TrainConfig

    assert {n: proxies.settings_fingerprint(p.train_kwargs()) for n, p in PROXIES.items()} == PINNED_FINGERPRINTS
    mad_cpu = {"task": "mad:selective_copying,compression,memorization", "preset": "tiny", "budget": "384steps",
               "mad_settings": "cpu32", "tokenizer": "bpe", "vocab_size": 8192, "lr": 0.003}
    assert PROXIES["mad-cpu"].train_kwargs() == mad_cpu
    assert PROXIES["mad-cpu-ladder"].train_kwargs() == {
        **mad_cpu, "task": "mad:selective_copying@copy16,selective_copying,compression", "curve_points": 6}
    # the cache key of a candidate is the key of a TrainConfig spelled out field by field
    assert cache_key(TrainConfig(pattern="AMAM", seed=1, **PROXIES["mad-cpu"].train_kwargs()), "cpu") == \
        cache_key(TrainConfig(pattern="AMAM", seed=1, **mad_cpu), "cpu")


def test_a_proxy_file_sets_any_trainer_setting_and_spelled_out_defaults_change_nothing(tmp_path):
    plain = load_proxy_file(str(_write(tmp_path / "a.json", SMOKE)))
    # TrainConfig's defaults written out: the same trainer settings, so the same fingerprint and cache keys
    spelled = load_proxy_file(str(_write(tmp_path / "b.json", {**SMOKE, "curve_points": 0, "mad_score": "accuracy",
                                                                "schedule": "cosine", "vocab_size": 8192})))
    assert spelled.train_kwargs() == plain.train_kwargs() == PROXIES["smoke"].train_kwargs()
    assert proxies.settings_fingerprint(spelled.train_kwargs()) == PINNED_FINGERPRINTS["smoke"]
    # a TrainConfig field the old fixed list did not name is a proxy setting too, checked against its type
    wsd = load_proxy_file(str(_write(tmp_path / "c.json", {**SMOKE, "schedule": "wsd", "warmup_frac": 0.1,
                                                            "budget": 8})))
    assert wsd.train_kwargs() == {**plain.train_kwargs(), "schedule": "wsd", "warmup_frac": 0.1, "budget": 8}
    assert wsd.setting("schedule") == "wsd" and plain.setting("schedule") == "cosine"
    assert proxies.settings_fingerprint(wsd.train_kwargs()) != PINNED_FINGERPRINTS["smoke"]
    job = ComposeTask(proxy=str(tmp_path / "c.json"), layers=4).make_job("AMAM", seed=0, job_id="j")
    assert job.kwargs["train"]["schedule"] == "wsd"
    assert PROXIES["smoke"].with_train(lr=1e-3).train_kwargs()["lr"] == 1e-3 and PROXIES["smoke"].setting("lr") == 3e-3
