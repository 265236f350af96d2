"""`aira runs ls --json` and `aira export --json`: what a script reads back."""

from __future__ import annotations

import json

from aira.cli import main


def test_runs_ls_json(tmp_path, capsys):
    from aira.agents.runfolder import RunConfig
    from aira.tasks.runs import run

    run(RunConfig(task="synthetic", agents=["greedy:offline"], executor="inline", budget="4evals",
                  out=str(tmp_path / "runs" / "a"), quiet=True))
    (tmp_path / "runs" / "not-a-run").mkdir()
    assert main(["runs", "ls", "--root", str(tmp_path / "runs"), "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    summary = json.loads((tmp_path / "runs" / "a" / "summary.json").read_text())
    assert item["run"] == "a" and item["state"] == "finished" and item["agents"] == ["greedy:offline"]
    from aira.agents.journal import Journal

    with Journal(tmp_path / "runs" / "a", readonly=True) as j:
        ok = [n for n in j.nodes() if n.status.value == "ok" and n.operator != "reference"]
    best = max(ok, key=lambda n: n.metric)  # the synthetic task: higher is better, ranked by search score
    assert (item["best_node"], item["best"]) == (best.id, best.metric)
    assert item["nodes"] == summary["nodes"]


def test_export_json(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["export", "--pattern", "AMAM", "--preset", "tiny", "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["exported"] == str(out) and d["pattern"] == "AMAM" and d["weights"] is None and d["seed"] == 0
    assert d["params"] > 0 and (out / "config.json").is_file()
