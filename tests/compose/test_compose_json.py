"""Scripting Compose: `--json` prints one JSON object on stdout (the human text goes to stderr), and the
help of `compose run` gives its defaults."""

from __future__ import annotations

import json

import pytest

from aira.cli import main

RUN = ["compose", "run", "--proxy", "smoke", "--layers", "4", "--agents", "random:offline", "--no-controls",
       "--budget", "3evals", "--workers", "1", "--executor", "inline", "--noise-seeds", "1", "--cache", "off",
       "--quiet"]


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compose") / "run"
    capture = pytest.MonkeyPatch()
    import io
    import sys

    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    capture.setattr(sys, "stderr", stderr)
    try:
        assert main([*RUN, "--out", str(out), "--json"]) == 0
    finally:
        capture.undo()
    return out, stdout.getvalue(), stderr.getvalue()


def test_compose_run_json_is_the_only_thing_on_stdout(json_run):
    out, stdout, stderr = json_run
    d = json.loads(stdout)  # the whole of stdout parses: no report table, no "next:" line mixed in
    summary = json.loads((out / "summary.json").read_text())
    assert d["run_dir"] == str(out) and d["evaluations"] == summary["evaluations"] == 3
    assert d["best"]["id"] == summary["best"]["id"]
    assert d["proxy_fidelity"]["proxy"] == "smoke" and d["proxy_fidelity"]["status"] == "unmeasured"
    assert d["aggregate"]["pattern"] == json.loads((out / "aggregate.json").read_text())["pattern"]
    assert d["extrapolate"]["file"] == str(out / "extrapolate-1B-stretch.json")
    assert d["extrapolate"]["target"] == "1B" and d["extrapolate"]["layers"] > 4
    assert "leaderboard" in stderr and f"next: aira report {out}" in stderr


def test_aggregate_and_extrapolate_json(json_run, capsys):
    out, _, _ = json_run
    assert main(["compose", "aggregate", str(out), "--method", "best", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["method"] == "best" and d["file"] == str(out / "aggregate.json") and d["candidates"] >= 1
    assert d["pattern"] == json.loads((out / "aggregate.json").read_text())["pattern"]
    assert main(["compose", "extrapolate", "--pattern", "AMAM", "--target", "350M", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["file"] is None and d["target"] == "350M" and set(d["pattern"]) == {"A", "M"}


def test_compose_run_help_gives_its_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["compose", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Search layer patterns with agents" in text
    assert "(default: attn-mlp, as in `aira demo`)" in text
    for flag, default in (("--noise-seeds", "(default: 3)"), ("--executor", "(default: local)"),
                          ("--ray-address", "(default: start a local Ray)"), ("--layers", "(default: 16)")):
        assert flag in text and default in text


def test_compose_run_defaults_to_the_attn_mlp_space():
    import argparse

    from aira.commands import compose

    parser = argparse.ArgumentParser()
    compose.register(parser.add_subparsers())
    assert parser.parse_args(["compose", "run"]).space == "attn-mlp"
