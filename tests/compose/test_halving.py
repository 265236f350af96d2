"""Successive halving over a finished Compose run (smoke proxy, inline executor: seconds)."""

import json

import pytest

from aira.cli import main
from aira.compose.halving import format_halving, rung_sizes
from aira.errors import UsageError
from aira.train.budget import scaled_budget


def test_rung_sizes_keep_a_third_and_never_fewer_than_two():
    assert rung_sizes(19, 3, 2) == [19, 7, 3]
    assert rung_sizes(19, 2, 3) == [19, 10, 5, 3]
    assert rung_sizes(4, 3, 5) == [4, 2]  # a rung that would keep as many as the one before ends it
    assert rung_sizes(2, 3, 2) == [2, 2]  # two candidates: both trained longer once
    with pytest.raises(UsageError, match="--eta must be at least 2"):
        rung_sizes(10, 1, 2)
    with pytest.raises(UsageError, match="--rungs must be at least 1"):
        rung_sizes(10, 3, 0)


def test_scaled_budget_keeps_the_unit():
    assert scaled_budget("384steps", 3) == "1152steps"
    assert scaled_budget("2M tokens", 9) == "18000000 tokens"
    assert scaled_budget("30s", 3) == "90s"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("halving") / "run"
    argv = ["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--layers", "4", "--agents",
            "greedy:offline", "--no-controls", "--budget", "8evals", "--executor", "inline", "--out", str(out),
            "--quiet"]
    assert main(argv) == 0
    return out


def test_halving_promotes_the_best_through_longer_rungs(smoke_run, capsys):
    capsys.readouterr()
    assert main(["compose", "halving", str(smoke_run), "--executor", "inline"]) == 0
    printed = capsys.readouterr().out
    h = json.loads((smoke_run / "halving.json").read_text())
    r0, r1, r2 = h["rungs"]
    assert [r["budget"] for r in h["rungs"]] == ["8steps", "24steps", "72steps"]
    n = len(r0["ranked"])
    assert len(r1["ranked"]) == max(2, -(-n // 3)) and len(r2["ranked"]) == 2
    # rung 1 trains exactly the best of rung 0, rung 2 the best of rung 1 (higher accuracy is better)
    best0 = {e["pattern"] for e in r0["ranked"][: len(r1["ranked"])]}
    assert {e["pattern"] for e in r1["ranked"]} == best0
    assert {e["pattern"] for e in r2["ranked"]} == {e["pattern"] for e in r1["ranked"][:2]}
    scores = [e["score"] for e in r2["ranked"]]
    assert scores == sorted(scores, reverse=True) and h["promoted"] == r2["ranked"][0]["pattern"]
    assert f"promoted: {h['promoted']} (best at 72steps)" in printed
    # a second halving reads every evaluation from the run's cache and agrees
    assert main(["compose", "halving", str(smoke_run), "--executor", "inline"]) == 0
    assert json.loads((smoke_run / "halving.json").read_text())["rungs"] == h["rungs"]
    assert "promoted:" in format_halving(h)
    assert main(["report", str(smoke_run)]) == 0
    assert "Successive halving" in (smoke_run / "report.html").read_text()


@pytest.mark.parametrize(
    "extra, needle",
    [(["--eta", "1"], "--eta must be at least 2"), (["--top", "1"], "--top must be at least 2"),
     (["--workers", "0"], "--workers must be at least 1")],
)
def test_halving_bad_input_is_one_line_exit_2(smoke_run, extra, needle, capsys):
    assert main(["compose", "halving", str(smoke_run), "--executor", "inline", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_halving_needs_a_compose_run(tmp_path, capsys):
    assert main(["compose", "halving", str(tmp_path)]) == 2
    assert "no run at" in capsys.readouterr().err


def test_halving_finds_the_cache_of_a_run_started_elsewhere(smoke_run, tmp_path, monkeypatch):
    assert main(["compose", "halving", str(smoke_run), "--executor", "inline"]) == 0  # every rung cached
    cfg = json.loads((smoke_run / "config.json").read_text())
    cfg["task_kwargs"]["cache_dir"] = "run/cache"  # relative to wherever that run was started
    (smoke_run / "config.json").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)
    cached = sorted((smoke_run / "cache").glob("*.json"))
    assert main(["compose", "halving", str(smoke_run), "--executor", "inline"]) == 0
    assert not (tmp_path / "run").exists() and sorted((smoke_run / "cache").glob("*.json")) == cached


@pytest.mark.parametrize("verb", ["halving", "aggregate"])
def test_compose_verbs_refuse_a_run_of_another_task(tmp_path, verb, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"task": "autoresearch"}))
    (tmp_path / "journal.sqlite").write_bytes(b"")
    assert main(["compose", verb, str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a 'autoresearch' run, not a Compose run" in err[0]
