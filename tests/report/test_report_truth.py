"""The report tells the truth at a glance: the proxy's fidelity warning, one-evaluation agents on the
search curve, budget stops that are not failures, a run with no agent evaluation, a readable fidelity
table, curves against wall time and compute, and an aggregate voted from candidates below the baseline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from aira.agents.stats import STOPPED, NoiseFloor, TaskInfo
from aira.agents.types import Node, Status
from aira.report import RunData, render, write_report
from aira.report.analysis import agent_evaluations, curve_points

from .conftest import parse

HIGH = TaskInfo(name="t", lower_is_better=False)


def node(i, metric, *, agent="greedy:offline#0", operator="draft", status=Status.OK, seconds=1.0, created=None,
         finished=None, error="", proposal="AMAM", sel=None):
    return Node(id=f"n{i}", agent=agent, operator=operator, status=status, metric=metric, selection_metric=sel,
                seconds=seconds, error=error, proposal=proposal,
                created_at=float(i) if created is None else created,
                finished_at=float(i) if finished is None else finished)


def ref(i, metric):
    return node(i, metric, agent="reference", operator="reference", sel=metric)


def page_of(tmp_path, nodes, *, config=None, info=HIGH, floor=None, **files) -> str:
    run = RunData(run_dir=tmp_path, config=config or {"agents": ["greedy:offline"]}, info=info, nodes=nodes,
                  floor=floor, **files)
    return render(run, tmp_path / "img")


def section_html(html: str, key: str) -> str:
    start = html.index(f'<section id="{key}">')
    return html[start:html.index("</section>", start)]


# ---------------------------------------------------------------- the proxy's fidelity


def _table(tmp_path, monkeypatch, **figures):
    from aira.tasks import proxies
    from aira.tasks.compose import PROXIES, settings_fingerprint

    table = tmp_path / "table.json"
    entry = {"status": "measured", "fingerprint": settings_fingerprint(PROXIES["mad-cpu"].train_kwargs()),
             "date": "2026-11-27", "machine": "2 cores", "patterns": 10, "seeds": 2, "seed_to_seed": 0.95,
             "noise_floor": 0.01, "saturation": 0.0, **figures}
    table.write_text(json.dumps({"mad-cpu": entry}))
    monkeypatch.setattr(proxies, "TABLE_PATH", table)


def test_fidelity_notice_names_an_unmeasured_or_poor_transfer(tmp_path, monkeypatch):
    from aira.compose.fidelity import fidelity_notice

    _table(tmp_path, monkeypatch)
    n = fidelity_notice("mad-cpu")
    assert n["status"] == "measured" and n["transfer"] is None
    assert any("4x wider, 4x longer training" in w and "not measured" in w for w in n["warnings"])
    _table(tmp_path, monkeypatch, spearman=0.3, ci=[0.1, 0.5], large_patterns=12)
    n = fidelity_notice("mad-cpu")
    assert n["transfer"] == 0.3
    assert n["warnings"][0] == ("proxy mad-cpu: its transfer to 4x wider, 4x longer training is below 0.5 (rho "
                                "0.30): its ranking says little about larger models")
    _table(tmp_path, monkeypatch, spearman=0.9, ci=[0.8, 0.95], large_patterns=12)
    assert fidelity_notice("mad-cpu")["warnings"] == []
    n = fidelity_notice("smoke")
    assert n["status"] == "unmeasured" and "has no measured fidelity figures" in n["warnings"][0]


def test_a_compose_run_keeps_its_fidelity_warning_and_the_report_shows_it(tmp_path, capsys):
    from aira.cli import main

    out = tmp_path / "run"
    assert main(["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--layers", "4", "--agents",
                 "random:offline", "--no-controls", "--budget", "1evals", "--workers", "1", "--executor",
                 "inline", "--noise-seeds", "0", "--cache", "off", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: proxy smoke has no measured fidelity figures" in err
    notice = json.loads((out / "config.json").read_text())["resolved"]["proxy_fidelity"]
    assert notice["status"] == "unmeasured"
    html = write_report(out).read_text()
    overview = section_html(html, "overview")
    assert 'class="warn fidelity-warning"' in overview
    assert "proxy smoke has no measured fidelity figures; its ranking may be noise" in overview
    assert "proxy smoke has no measured fidelity figures" in section_html(html, "fidelity")


def test_a_poor_transfer_is_the_first_thing_the_report_says(tmp_path, monkeypatch):
    from aira.compose.fidelity import fidelity_notice

    _table(tmp_path, monkeypatch, spearman=-0.18, ci=[-0.5, 0.18], large_patterns=34)
    config = {"agents": ["greedy:offline"], "resolved": {"proxy_fidelity": fidelity_notice("mad-cpu")}}
    html = page_of(tmp_path, [ref(0, 0.5), node(1, 0.6)], config=config)
    overview = section_html(html, "overview")
    assert overview.index("fidelity-warning") < overview.index('class="kv"')
    assert "is below 0.5 (rho -0.18)" in overview and "shows no measurable agreement" in overview


# ---------------------------------------------------------------- curves


def test_an_agent_with_one_evaluation_is_on_the_search_curve():
    from aira.report import plots

    fig = plots.best_so_far({"solo": [0.5], "many": [0.1, 0.3, 0.3]}, lower_is_better=False)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert list(lines["solo"].get_xdata()) == [1] and list(lines["solo"].get_ydata()) == [0.5]
    assert lines["solo"].get_marker() == "o" and lines["solo"].get_markersize() > 0
    fig = plots.best_against_cost({"solo": [(7.0, 2.0, 0.5)]}, lower_is_better=False)
    for ax, x in zip(fig.axes, (7.0, 2.0)):
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "solo"]
        assert list(line.get_xdata()) == [x] and line.get_marker() == "o"


def test_curve_points_follow_wall_time_and_compute():
    nodes = [
        ref(0, 0.4),  # the run's clock starts at its first node
        node(1, 0.5, created=10.0, finished=20.0, seconds=8.0),
        node(2, None, status=Status.CRASHED, created=11.0, finished=15.0, seconds=3.0),
        node(3, 0.7, created=21.0, finished=40.0, seconds=12.0),
        node(4, None, status=Status.KILLED, error=STOPPED + "budget", created=41.0, finished=50.0, seconds=9.0),
        node(5, None, status=Status.INVALID, created=42.0, finished=42.0, seconds=0.0),
    ]
    pts = curve_points(nodes, HIGH, "greedy:offline#0")
    assert [(p.evaluation, p.wall_s, p.compute_s, p.best) for p in pts] == [
        (1, 15.0, 3.0, None), (2, 20.0, 11.0, 0.5), (3, 40.0, 23.0, 0.7)]


def test_the_page_plots_the_curves_against_time_and_compute(plain_html):
    page = parse(plain_html)
    names = [i["data-name"] for i in page.images]
    assert "best_so_far" in names and "best_vs_cost" in names
    assert "against the run&#x27;s wall clock (left)" in section_html(plain_html, "curves")


# ---------------------------------------------------------------- failures and empty runs


def test_jobs_stopped_by_the_budget_are_not_failures(tmp_path):
    nodes = [ref(0, 0.5), node(1, 0.6),
             node(2, None, status=Status.CRASHED, error="Traceback\nValueError: bad shape"),
             node(3, None, status=Status.KILLED, error=STOPPED + "the run's budget ran out")]
    html = page_of(tmp_path, nodes)
    failures = section_html(html, "failures")
    assert "1 evaluations failed" in failures and "<td>n2</td>" in failures and "ValueError: bad shape" in failures
    assert "<td>n3</td>" not in failures
    assert "1 jobs were stopped when the run&#x27;s budget ran out; they are not failures" in failures
    assert "1 killed were stopped with the run when its budget ran out (not failures)" in section_html(html,
                                                                                                      "overview")
    only_stopped = page_of(tmp_path, [ref(0, 0.5), node(1, 0.6), nodes[3]])
    assert "No evaluation failed." in section_html(only_stopped, "failures")
    assert "failures" not in parse(page_of(tmp_path, nodes[:2])).sections


def test_a_run_with_no_agent_evaluation_is_flagged(tmp_path, plain_html):
    nodes = [ref(0, 0.5), ref(1, 0.52), node(2, None, status=Status.INVALID),
             node(3, None, status=Status.KILLED, error=STOPPED + "budget")]
    assert agent_evaluations(nodes) == 0
    html = page_of(tmp_path, nodes)
    assert 'class="warn zero-evals"' in section_html(html, "overview")
    assert "the agents spent 0 evaluations" in html
    assert "zero-evals" not in plain_html


# ---------------------------------------------------------------- fidelity table and aggregate


def test_the_fidelity_section_is_a_table_not_json(tmp_path):
    shipped = Path(__file__).parents[2] / "aira" / "compose" / "references" / "mad-cpu-large" / "fidelity.json"
    shutil.copy(shipped, tmp_path / "fidelity.json")
    fid = json.loads(shipped.read_text())
    html = section_html(write_report(tmp_path).read_text(), "fidelity")
    assert '{"' not in html and "&quot;" not in html  # no JSON dumped into a cell
    assert (f"<tr><td>small-to-large rank correlation (transfer)</td><td>{fid['spearman']:.3g}</td>"
            "<td>≥ 0.8</td>") in html
    assert f"<td>[{fid['ci'][0]:.3g}, {fid['ci'][1]:.3g}]</td>" in html
    assert f"<td>{fid['ceiling']['spearman']:.3g}</td>" in html
    assert 'class="fidelity-per"' in html and "<td>small</td>" in html and "<td>large</td>" in html


def test_the_aggregate_says_when_it_voted_over_candidates_below_the_baseline(tmp_path):
    nodes = [ref(0, 0.5), ref(1, 0.54), node(2, 0.6, sel=0.6)]
    top = [{"pattern": "AMAM", "score": 0.7}, {"pattern": "AAMM", "score": 0.45},
           {"pattern": "MMAA", "score": 0.30}]
    agg = {"pattern": "AMAM", "method": "n0", "top": top, "layers": []}
    floor = NoiseFloor(n=2, mean=0.52, std=0.03, spread=0.04)
    html = section_html(page_of(tmp_path, nodes, aggregate=agg, floor=floor), "aggregate")
    assert ("2 of the 3 candidates this pattern was voted from score below the reference (baseline) "
            "proposal's 0.52") in html
    above = {**agg, "top": top[:1]}
    assert "below-baseline" not in section_html(page_of(tmp_path, nodes, aggregate=above, floor=floor), "aggregate")


def test_below_the_baseline_follows_the_metric_direction(tmp_path):
    info = TaskInfo(name="t", lower_is_better=True)
    nodes = [ref(0, 2.0), node(1, 1.9, sel=1.9)]
    agg = {"pattern": "AMAM", "method": "n0", "top": [{"pattern": "AMAM", "score": 1.9},
                                                      {"pattern": "AAMM", "score": 2.2}], "layers": []}
    html = section_html(page_of(tmp_path, nodes, info=info, aggregate=agg), "aggregate")
    assert "1 of the 2 candidates" in html
