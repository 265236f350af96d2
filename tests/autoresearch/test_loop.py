"""The keep / reset experiment loop against a scripted sequence of results, and its report."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from aira.agents.journal import Journal
from aira.agents.types import Node, Status
from aira.tasks.autoresearch.loop import ExperimentLoop, decide, read_results
from aira.tasks.autoresearch.report import comparable, final_report

BASE = "LR = 0.02\nDEPTH = 2\n"


def test_decide():
    assert decide(0.99, True, 1.0, 0.005) == "keep"
    assert decide(0.996, True, 1.0, 0.005) == "discard"  # a gain inside the noise floor
    assert decide(1.01, True, 1.0, 0.0) == "discard"
    assert decide(None, False, 1.0, 0.0) == "crash"
    assert decide(float("nan"), True, 1.0, 0.0) == "crash"
    assert decide(0.5, True, None, 0.0) == "keep"
    assert decide(0.8, True, 0.7, 0.05, lower_is_better=False) == "keep"


def _node(i: int, metric: float | None, *, code: str | None = None, ref: bool = False,
          status: Status = Status.OK, idea: str = "") -> Node:
    return Node(id=f"n{i:04d}", agent="reference" if ref else "greedy:offline#0",
                operator="reference" if ref else "improve", status=status, metric=metric,
                proposal={"files": {"train.py": code if code is not None else BASE}},
                idea=idea or f"experiment {i}", metrics={"peak_memory_mb": 512.0}, seconds=10.0,
                selection_metric=None if metric is None else metric + 0.01, finished_at=time.time())


SCRIPT = [  # (metric, script, expected status)
    (1.00, None, "baseline"),
    (1.02, None, "baseline"),           # floor: mean 1.01, std 0.0141
    (1.000, "LR = 0.03\nDEPTH = 2\n", "discard"),   # 0.010 better than 1.01: inside the floor
    (0.990, "LR = 0.02\nDEPTH = 3\n", "keep"),      # 0.020 better: kept
    (None, "LR = 0.02\nDEPTH = 30\n", "crash"),
    (0.980, "LR = 0.01\nDEPTH = 3\n", "discard"),   # 0.010 better than the kept 0.99: noise
    (0.950, "LR = 0.02\nDEPTH = 4\n", "keep"),
]


def _run_script(tmp_path, upto: int | None = None, plot: bool = False) -> tuple[ExperimentLoop, list[Node]]:
    loop = ExperimentLoop(tmp_path, BASE, plot=plot)
    nodes = []
    for i, (metric, code, _) in enumerate(SCRIPT[:upto], 1):
        ref = code is None
        nodes.append(_node(i, metric, code=code, ref=ref,
                           status=Status.OK if metric is not None else Status.CRASHED))
    loop.sync(nodes)
    return loop, nodes


def _git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_keep_and_reset_against_a_scripted_sequence(tmp_path):
    loop, nodes = _run_script(tmp_path, plot=True)
    rows = read_results(tmp_path)
    assert [r["status"] for r in rows] == [s for _, _, s in SCRIPT]
    assert rows[0]["memory_gb"] == "0.500" and rows[3]["val_bpb"] == "0.990000"
    assert loop.margin == pytest.approx(0.0141421, rel=1e-4)
    assert loop.best == 0.95
    # main holds the last kept script; discarded and crashed experiments are tagged, not on main.
    assert (tmp_path / "experiments" / "train.py").read_text() == "LR = 0.02\nDEPTH = 4\n"
    log = _git(tmp_path / "experiments", "log", "--format=%s", "main").splitlines()
    assert log == ["n0007: experiment 7", "n0004: experiment 4", "baseline"]
    tags = set(_git(tmp_path / "experiments", "tag").split())
    assert tags == {"exp/n0003", "exp/n0005", "exp/n0006"}
    assert "DEPTH = 30" in _git(tmp_path / "experiments", "show", "exp/n0005:train.py")
    # Each row's commit is the experiment's own.
    assert _git(tmp_path / "experiments", "rev-parse", "--short=10", "exp/n0003") == rows[2]["commit"]
    assert (tmp_path / "progress.png").stat().st_size > 1000
    # Seeing the same nodes again changes nothing (the loop is fed from the journal repeatedly).
    assert loop.sync(nodes) == 0 and len(read_results(tmp_path)) == len(SCRIPT)


def test_loop_resumes_from_its_state(tmp_path):
    _run_script(tmp_path, upto=4)
    state = json.loads((tmp_path / "loop.json").read_text())
    assert state["best"] == 0.99 and len(state["kept"]) == 1
    loop, _ = _run_script(tmp_path)  # a new loop object on the same folder continues
    assert [r["status"] for r in read_results(tmp_path)] == [s for _, _, s in SCRIPT]
    assert loop.best == 0.95


def test_fixed_margin_and_invalid_nodes(tmp_path):
    loop = ExperimentLoop(tmp_path, BASE, margin=0.0, plot=False)
    loop.sync([_node(1, 1.0, ref=True), _node(2, 0.999, code="LR = 1\n")])
    assert read_results(tmp_path)[-1]["status"] == "keep"
    invalid = Node(id="n0003", agent="a", operator="improve", status=Status.INVALID, proposal=None)
    assert loop.observe(invalid) is None and len(read_results(tmp_path)) == 2


def test_final_report(tmp_path):
    _, nodes = _run_script(tmp_path)
    for n in nodes:
        n.metrics.update(device="cpu", preset="test", time_budget_s=2.0, data="shakespeare")
        n.cost_usd = 0.25 if n.operator != "reference" else 0.0
    with Journal(tmp_path) as j:
        for n in nodes:
            j.add(n)
    text = final_report(tmp_path)
    assert "baseline val_bpb: 1.010000 ± 0.014" in text
    assert "best val_bpb: 0.950000 (gain +0.060000 over the baseline mean), 2 kept change(s)" in text
    assert "best script on the hidden held-out split: 0.960000" in text
    assert "compute 70 s; LLM cost $1.25" in text
    assert "**Not comparable with this run** (device cpu is not an H100" in text
    assert "**n0004** experiment 4: val_bpb 0.990000 (gain +0.020000)" in text
    assert "-DEPTH = 2\n+DEPTH = 3" in text and "-DEPTH = 3\n+DEPTH = 4" in text
    assert "| 4 | n0005 | - | crash |" in text
    assert (tmp_path / "report.md").read_text() == text


def test_comparable_only_on_h100_300s_parquet(tmp_path):
    (tmp_path / "shard_00000.parquet").write_bytes(b"")
    h100 = {"device": "NVIDIA H100 80GB HBM3", "time_budget_s": 300.0, "data": str(tmp_path)}
    assert comparable(h100) == []
    (tmp_path / "notes.txt").write_text("x")
    assert "not parquet shards" in comparable({**h100, "data": str(tmp_path / "notes.txt")})[0]
    why = comparable({"device": "NVIDIA H200", "time_budget_s": 300.0, "data": "shakespeare"})
    assert len(why) == 2 and "not an H100" in why[0]
