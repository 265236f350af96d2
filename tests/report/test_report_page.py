"""The report page against the journal it was made from: leaderboard numbers, ties, final pick,
offline labels, optional sections, images on disk."""

from __future__ import annotations

import itertools
import json

from aira.agents.journal import Journal
from aira.agents.stats import REFERENCE, TaskInfo, agent_stats, best_node, leaderboard, noise_floor
from aira.report import load_run, write_report

from .conftest import parse

COMPOSE_SECTIONS = {"aggregate", "extrapolate", "scaling", "fidelity"}


def _journal(run_dir):
    with Journal(run_dir, readonly=True) as j:
        nodes = j.nodes()
    info = TaskInfo(**json.loads((run_dir / "config.json").read_text())["resolved"]["task"])
    return nodes, info


def test_leaderboard_rows_match_the_journal(plain_run, plain_html):
    nodes, info = _journal(plain_run)
    rows = parse(plain_html).rows
    expected = leaderboard(nodes, info, top=20)
    assert len(rows) == len(expected) == 20
    by_id = {n.id: n for n in nodes}
    for row, want in zip(rows, expected):
        assert row["data-node"] == want.id
        assert float(row["data-search"]) == want.metric
        assert float(row["data-selection"]) == want.selection_metric
        assert row["cells"][5] == format(want.metric, ".4g")
        assert row["cells"][7] == format(want.selection_metric, ".4g")
        assert row["cells"][2] == by_id[want.id].agent
    # ranked by the selection score, best (highest) first
    sel = [float(r["data-selection"]) for r in rows]
    assert sel == sorted(sel, reverse=True)


def test_ties_follow_the_noise_floor(plain_run, plain_html):
    nodes, _ = _journal(plain_run)
    floor = noise_floor(nodes)
    assert floor is not None and floor.n == 2 and floor.std > 0
    rows = parse(plain_html).rows
    scores = {r["data-node"]: float(r["data-selection"]) for r in rows}
    ids = [r["data-node"] for r in rows]
    assert any(r["data-group"] != str(i) for i, r in enumerate(rows, 1)), "this run has ties to show"
    for r in rows:
        leader = ids[int(r["data-group"]) - 1]
        gap = abs(scores[r["data-node"]] - scores[leader])
        if leader == r["data-node"]:
            continue
        assert gap < floor.std, "a row is tied only within the noise of its group's first row"
        assert r["cells"][0].startswith(f"={r['data-group']}") and "tie with" in r["cells"][0]
    leaders = [
        i for i in ids if ids[int(next(r for r in rows if r["data-node"] == i)["data-group"]) - 1] == i
    ]
    for a, b in itertools.pairwise(leaders):
        assert abs(scores[a] - scores[b]) >= floor.std, "distinct groups differ by at least the noise"
    assert f"{floor.mean:.4g}" in plain_html and f"{floor.std:.3g}" in plain_html


def test_final_pick_offline_labels_and_agent_costs(plain_run, plain_html):
    nodes, info = _journal(plain_run)
    pick = best_node([n for n in nodes if n.operator != REFERENCE], info, selection=True)
    assert f"node <code>{pick.id}</code>" in plain_html
    assert f"selection score <b>{pick.selection_metric:.4g}</b>" in plain_html
    for row in parse(plain_html).rows:
        n = next(x for x in nodes if x.id == row["data-node"])
        assert row["cells"][3] == ("reference" if n.operator == REFERENCE else "offline")
    agents = [n for n in nodes if n.operator != REFERENCE]
    assert f"{len(agents)} of {len(agents)} agent nodes were made by the offline agent" in plain_html
    for s in agent_stats(nodes, info):
        assert f"<td>{s.agent}</td>" in plain_html
        assert f"<td>{s.compute_s:.1f}</td>" in plain_html


def test_run_without_compose_files_leaves_those_sections_out(plain_html):
    page = parse(plain_html)
    assert {"overview", "agents", "leaderboard", "curves", "patterns"} <= set(page.sections)
    assert not COMPOSE_SECTIONS & set(page.sections)
    assert "experiments" not in page.sections
    assert {i["data-name"] for i in page.images} == {"leaderboard", "best_so_far", "best_vs_cost", "heatmap", "ratios_top"}


def test_compose_sections_show_the_stage_results(compose_run, compose_html):
    run_dir, agg = compose_run
    page = parse(compose_html)
    assert COMPOSE_SECTIONS <= set(page.sections)
    assert agg.pattern in compose_html
    for strategy in ("stack", "stretch"):
        x = json.loads((run_dir / f"extrapolate-350M-{strategy}.json").read_text())
        assert x["compressed"] in compose_html
    scaling = json.loads((run_dir / "scaling.json").read_text())
    for arch in scaling["architectures"].values():
        assert f"{arch['frontier']['b']:.4f}" in compose_html
    assert "0.83" in compose_html  # fidelity's spearman
    names = {i["data-name"] for i in page.images}
    assert {"aggregate", "extrapolated", "scaling", "heatmap"} <= names
    # the heat map is over the aggregation's own top candidates
    assert f"Share of the {len(agg.top)} top candidates the aggregation used" in compose_html


def test_images_are_written_beside_the_page_and_are_pngs(compose_run, compose_html):
    run_dir, _ = compose_run
    page = parse(compose_html)
    files = sorted(p.stem for p in (run_dir / "report").glob("*.png"))
    assert files == sorted(i["data-name"] for i in page.images)
    for p in (run_dir / "report").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(i["src"].startswith("data:image/png;base64,") for i in page.images)
    assert "http://" not in compose_html and "https://" not in compose_html  # no network


def test_results_tsv_and_run_pngs(tmp_path, plain_run):
    import shutil

    d = tmp_path / "ar"
    shutil.copytree(plain_run, d, ignore=shutil.ignore_patterns("report", "report.html"))
    (d / "results.tsv").write_text(
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
        "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n"
        "e4f5a6b\t0.993100\t44.2\tdiscard\tlr 0.04 -> 0.05\n"
    )
    (d / "progress.png").write_bytes((plain_run / "report" / "heatmap.png").read_bytes())
    out = write_report(d, tmp_path / "elsewhere" / "page.html")
    html = out.read_text()
    page = parse(html)
    assert "experiments" in page.sections
    assert "<td>0.993100</td>" in html and "<td>lr 0.04 -&gt; 0.05</td>" in html
    assert "run-progress" in {i["data-name"] for i in page.images}
    assert (tmp_path / "elsewhere" / "page" / "run-progress.png").is_file()  # images next to --out


def test_bad_stage_file_is_a_warning_not_a_crash(tmp_path, plain_run):
    import shutil

    d = tmp_path / "bad"
    shutil.copytree(plain_run, d, ignore=shutil.ignore_patterns("report", "report.html"))
    (d / "aggregate.json").write_text('{"pattern": "AM')  # half-written by a stage still running
    run = load_run(d)
    assert run.aggregate is None and any("aggregate.json" in w for w in run.warnings)
    html = write_report(d).read_text()
    assert "aggregate.json could not be read" in html
    assert "aggregate" not in parse(html).sections


def test_study_folder_with_only_scaling(tmp_path, compose_run):
    (tmp_path / "scaling.json").write_text((compose_run[0] / "scaling.json").read_text())
    page = parse(write_report(tmp_path).read_text())
    assert page.sections == ["overview", "scaling"]
    assert [i["data-name"] for i in page.images] == ["scaling"]


def test_compose_metrics_llm_origin_and_costs_render(tmp_path):
    from aira.agents.stats import NoiseFloor
    from aira.agents.types import Node, Status
    from aira.report import RunData, render

    def n(i, metric, sel, **kw):
        return Node(
            id=f"n{i}",
            agent=kw.pop("agent", "greedy:anthropic/claude-opus-4-5#0"),
            operator=kw.pop("operator", "draft"),
            status=Status.OK,
            metric=metric,
            selection_metric=sel,
            created_at=i,
            finished_at=i,
            **kw,
        )

    nodes = [
        n(0, 2.10, 2.12, operator="reference", agent="reference", proposal="AMAM"),
        n(
            1,
            2.00,
            2.01,
            proposal="AAMM",
            llm="anthropic/claude-opus-4-5",
            cost_usd=0.12,
            seconds=30.0,
            metrics={
                "params": 1_500_000,
                "flops_per_token": 3.2e7,
                "seed_metrics": [1.99, 2.01],
                "seed_std": 0.0141,
                "metric_name": "val_bpb",
            },
        ),
        n(
            2,
            2.05,
            2.06,
            operator="baseline",
            idea="llama-3.2 (AM alternation)",
            proposal="AMAM",
            agent="baselines:offline#1",
        ),
    ]
    run = RunData(
        run_dir=tmp_path,
        config={"agents": ["greedy:anthropic/claude-opus-4-5"]},
        info=TaskInfo(name="compose", lower_is_better=True),
        nodes=nodes,
        floor=NoiseFloor(n=3, mean=2.1, std=0.001, spread=0.002),
    )
    html = render(run, tmp_path / "img")
    rows = {r["data-node"]: r["cells"] for r in parse(html).rows}
    assert list(rows) == ["n1", "n2", "n0"]  # lower is better, by the selection split
    assert rows["n1"][3] == "anthropic/claude-opus-4-5"
    assert rows["n1"][5:10] == ["2", "± 0.0141 (2 seeds)", "2.01", "1.5M", "32M"]
    assert rows["n2"][3] == "offline" and rows["n2"][10] == "llama-3.2 (AM alternation): AMAM"
    assert "search val_bpb" in html and "lower is better" in html
    assert "<td>$0.12</td>" in html and "<td>30.0</td>" in html
    assert "were made by the offline agent" in html  # the baselines agent's one node
