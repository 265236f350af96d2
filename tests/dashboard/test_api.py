"""The dashboard's JSON endpoints against the journals they read: runs list, one run's state, 404s,
failures with their log tails, re-reading a run that grew, and never writing into a run folder."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest

from aira.agents.journal import Journal
from aira.agents.stats import STOPPED, TaskInfo, leaderboard, noise_floor, tie_groups
from aira.agents.types import Node, Status
from aira.cli import main
from aira.dashboard.server import DashboardServer
from aira.dashboard.state import Watcher, dumps
from tests.report.conftest import make_run


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_run(root / "a")
    (root / "empty-folder").mkdir()  # not a run: not listed
    return root


@pytest.fixture()
def server(runs_root):
    s = DashboardServer(runs_root)
    s.start()
    yield s
    s.shutdown()
    s.server_close()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def _journal(d):
    with Journal(d, readonly=True) as j:
        nodes = j.nodes()
    info = TaskInfo(**json.loads((d / "config.json").read_text())["resolved"]["task"])
    return nodes, info


def test_it_listens_on_loopback_by_default(server):
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    assert server.server_address[1] > 0  # port 0 took a free one


def test_runs_list_matches_the_journal(server, runs_root):
    status, kind, body = get(server.url + "api/runs")
    assert status == 200 and kind == "application/json"
    data = json.loads(body)
    assert data["root"] == str(runs_root)
    (row,) = data["runs"]
    nodes, _ = _journal(runs_root / "a")
    summary = json.loads((runs_root / "a" / "summary.json").read_text())
    assert row["name"] == "a" and row["state"] == "finished"
    assert row["evaluations"] == summary["evaluations"] == 30 and row["nodes"] == len(nodes)
    assert row["best_node"] == summary["best"]["id"] and row["best"] == summary["best"]["metric"]


def test_one_run_state_matches_the_journal(server, runs_root):
    status, _, body = get(server.url + "api/runs/a")
    assert status == 200
    s = json.loads(body)
    nodes, info = _journal(runs_root / "a")
    floor = noise_floor(nodes, info)
    assert s["noise_floor"] == {"mean": floor.mean, "std": floor.std, "n": 2, "source": "reference seeds"}
    board = leaderboard(nodes, info, top=20)
    assert [r["node"] for r in s["leaderboard"]] == [n.id for n in board]
    groups = tie_groups([n.selection_metric for n in board], floor.std)
    assert [r["group"] for r in s["leaderboard"]] == groups and any(r["tied"] for r in s["leaderboard"])
    assert [r["search"] for r in s["leaderboard"]] == [n.metric for n in board]
    agents = {a["agent"]: a for a in s["agents"]}
    assert set(agents) == {"greedy:offline#0", "random:offline#1"}
    for name, a in agents.items():
        mine = [n for n in nodes if n.agent == name]
        assert a["evaluations"] == len(mine) == len(s["curves"][name])
        assert a["best_metric"] == max(n.metric for n in mine)
        best = [p["best"] for p in s["curves"][name]]
        assert best[-1] == a["best_metric"] and best == sorted(best)  # running best, higher is better
        compute = [p["compute_s"] for p in s["curves"][name]]
        assert compute == sorted(compute) and compute[-1] == pytest.approx(sum(n.seconds for n in mine))
    recent = sorted((n for n in nodes if n.operator != "reference"), key=lambda n: n.finished_at, reverse=True)
    assert [r["node"] for r in s["recent"]] == [n.id for n in recent[:10]]
    hm = s["heatmap"]
    assert hm["patterns"] == 20 and hm["codes"] == ["A", "M", "S"]
    assert all(sum(col) == pytest.approx(1.0) for col in zip(*hm["freq"]))  # one primitive per layer
    assert s["failures"] == [] and s["cost_usd"] == 0.0 and s["metric"] == "metric"


def test_unknown_run_and_page_are_404_json(server):
    for path in ("api/runs/nope", "api/nothing"):
        status, kind, body = get(server.url + path)
        assert status == 404 and kind == "application/json" and "error" in json.loads(body)
    status, kind, body = get(server.url)
    assert status == 200 and kind.startswith("text/html") and b"/api/runs" in body


def test_the_dashboard_never_writes_into_a_run_folder(server, runs_root):
    # SQLite's -shm is the WAL index every reader maps, a read-only one included (its read marks live
    # there): it may be touched, its content is the same; every other file keeps its bytes and its mtime
    def snapshot():
        return {p.relative_to(runs_root): (None if p.name.endswith("-shm") else p.stat().st_mtime_ns,
                                           hashlib.sha256(p.read_bytes()).hexdigest())
                for p in sorted(runs_root.rglob("*")) if p.is_file()}

    before = snapshot()
    for path in ("", "api/runs", "api/runs/a", "api/runs/a", "api/runs"):
        assert get(server.url + path)[0] == 200
    assert snapshot() == before


def _write_run(d, nodes):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"task": "synthetic", "agents": ["greedy:offline"],
                                               "resolved": {"task": {"name": "t"}}}))
    with Journal(d) as j:
        for n in nodes:
            j.add(n)


def node(i, status=Status.OK, metric=0.5, error=""):
    return Node(id=f"n{i}", agent="greedy:offline#0", operator="draft", proposal="AMAM", status=status,
                metric=metric, error=error, created_at=float(i), finished_at=float(i) + 1)


def test_failures_carry_their_log_tails_and_budget_stops_are_not_failures(tmp_path):
    d = tmp_path / "runs" / "f"
    _write_run(d, [node(0), node(1, Status.CRASHED, None, "Traceback\nRuntimeError: out of memory"),
                   node(2, Status.KILLED, None, STOPPED + "wall-clock budget spent")])
    (d / "jobs").mkdir()
    (d / "jobs" / "n1.log").write_text("".join(f"line {i}\n" for i in range(50)))
    s = Watcher(tmp_path / "runs").run("f")
    (f,) = s["failures"]
    assert f["node"] == "n1" and f["status"] == "crashed" and f["error"] == "RuntimeError: out of memory"
    assert f["log_tail"].splitlines() == [f"line {i}" for i in range(30, 50)]
    assert s["stopped_by_budget"] == 1 and s["agents"][0]["failed"] == 1 and s["evaluations"] == 2
    assert s["state"] == "running or stopped"  # no summary.json


def test_a_run_that_grows_is_read_again(tmp_path):
    d = tmp_path / "g"
    _write_run(d, [node(0)])
    w = Watcher(d)  # the root may be one run folder
    assert [r["evaluations"] for r in w.runs()] == [1]
    assert w.runs()[0] is not None and w.load(d) is w.load(d)  # unchanged: the cached read
    with Journal(d) as j:
        j.add(node(1, metric=0.9))
    assert [r["evaluations"] for r in w.runs()] == [2]
    assert w.run("g")["leaderboard"][0]["node"] == "n1"


def test_json_has_no_nan():
    assert json.loads(dumps({"a": float("nan"), "b": [float("inf"), 1.5]})) == {"a": None, "b": [None, 1.5]}


def test_bad_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no folder at" in err


def test_a_taken_port_is_one_line_and_exit_2(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err
