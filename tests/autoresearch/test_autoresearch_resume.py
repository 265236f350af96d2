"""`aira runs resume` of an autoresearch run stopped by its budget: the journal, results.tsv and the
keep/reset git history go on from where they stopped, and the report covers both segments."""

from __future__ import annotations

import json
import subprocess

import pytest

from aira.agents.journal import Journal
from aira.agents.sandbox import isolation_mode
from aira.cli import main
from aira.tasks.autoresearch.loop import read_results


def _git_log(out) -> list[str]:
    return subprocess.run(["git", "log", "--format=%H %s"], cwd=out / "experiments", capture_output=True,
                          text=True, check=True).stdout.splitlines()


@pytest.mark.skipif(isolation_mode() is None, reason="no namespaces here: the sandbox cannot run")
@pytest.mark.slow  # a baseline and two experiments of one second each, plus start-up: about 40 s
def test_an_autoresearch_run_stopped_by_its_budget_resumes_where_it_stopped(tmp_path, corpus, cache_dir,
                                                                              capsys):
    out = tmp_path / "run"
    assert main(["design", "run", "autoresearch", "--preset", "test", "--time-budget", "1", "--data", corpus,
                 "--cache-dir", cache_dir, "--executor", "inline", "--noise-seeds", "1", "--budget", "1evals",
                 "--out", str(out), "--quiet"]) == 0
    with Journal(out, readonly=True) as j:
        before = j.nodes()
    rows_before, log_before = read_results(out), _git_log(out)
    assert rows_before[0]["status"] == "baseline" and len(rows_before) == 2
    capsys.readouterr()

    assert main(["runs", "resume", str(out), "--budget", "2evals", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"resuming it as `aira design run autoresearch --out {out} --resume`" in captured.err
    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    assert [n.to_dict() for n in nodes[:2]] == [n.to_dict() for n in before]  # the first segment, untouched
    assert [n.id for n in nodes] == ["n0001", "n0002", "n0003"]
    assert [n.operator for n in nodes].count("reference") == 1  # the baseline is not run again
    rows = read_results(out)
    assert rows[:2] == rows_before and len(rows) == 3  # one row per experiment, appended
    assert rows[2]["status"] in ("keep", "discard", "crash") and rows[2]["description"].startswith("[offline] ")
    log = _git_log(out)
    assert log[-len(log_before):] == log_before  # the history goes on from the first segment's head
    assert len(log) == len(log_before) + (rows[2]["status"] == "keep")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 2 and summary["stop_reason"] == "evaluation budget spent (2)"
    assert "## Autoresearch" in captured.out and (out / "report.md").read_text().strip() in captured.out
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert all(n.id in html for n in nodes)
