"""`aira runs resume` of an LRA design run stopped by its budget: the journal goes on from where it stopped
(nothing before is rewritten, the reference is not run again, node ids continue) and the report renders."""

import json

import pytest

from aira.agents.journal import Journal
from aira.cli import main


def _journal(out):
    with Journal(out, readonly=True) as j:
        return j.nodes(), j.events()


@pytest.mark.slow  # a reference and three evaluations at the smoke preset: about a minute on one core
def test_an_lra_design_run_stopped_by_its_budget_resumes_where_it_stopped(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["design", "run", "lra-listops", "--preset", "smoke", "--agents", "greedy:offline",
                 "--noise-seeds", "1", "--budget", "1evals", "--executor", "inline", "--out", str(out),
                 "--quiet"]) == 0
    before, before_events = _journal(out)
    assert [(n.id, n.operator) for n in before] == [("n0001", "reference"), ("n0002", "draft")]
    assert json.loads((out / "summary.json").read_text())["stop_reason"] == "evaluation budget spent (1)"
    capsys.readouterr()

    assert main(["runs", "resume", str(out), "--budget", "3evals", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"resuming it as `aira design run lra-listops --out {out} --resume`" in captured.err
    nodes, events = _journal(out)
    assert [n.to_dict() for n in nodes[:2]] == [n.to_dict() for n in before]  # the first segment, untouched
    assert events[:len(before_events)] == before_events and len(events) > len(before_events)
    assert [n.id for n in nodes] == ["n0001", "n0002", "n0003", "n0004"]
    assert [n.operator for n in nodes].count("reference") == 1  # the noise floor is not measured again
    assert all(n.status.value == "ok" and n.metric is not None for n in nodes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 3 and summary["stop_reason"] == "evaluation budget spent (3)"
    # the printed leaderboard and the report cover both segments
    assert all(f" {n.id} " in captured.out for n in nodes)
    md = (out / "lra_report.md").read_text()
    assert "## lra-listops (fixed setting, preset smoke)" in md
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert '<section id="lra">' in html and all(n.id in html for n in nodes)
