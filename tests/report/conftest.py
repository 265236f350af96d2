"""Run folders for the report tests: a real orchestrator run on the synthetic task (with a reference
proposal, so there is a noise floor) and, in a copy, Compose stage files made by the real functions."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import pytest

from aira.tasks.synthetic import SyntheticPatternTask


class NoisySynthetic(SyntheticPatternTask):
    """The synthetic task with a reference proposal: its seeds give the run a noise floor."""

    def reference(self) -> str:
        return "AM" * 8


def make_run(out, *, agents=("greedy:offline", "random:offline"), noise=0.05):
    from aira.agents.runfolder import RunConfig
    from aira.tasks.runs import run

    config = RunConfig(
        task="synthetic",
        agents=list(agents),
        executor="inline",
        budget="30evals",
        noise_seeds=2,
        out=str(out),
        quiet=True,
    )
    return run(config, task=NoisySynthetic(noise=noise))


def add_compose_files(run_dir, nodes, lower_is_better=False):
    """aggregate.json, two extrapolate-*.json and scaling.json, as the Compose CLI writes them."""
    from aira.compose.aggregate import Candidate, aggregate
    from aira.compose.extrapolate import extrapolate
    from aira.compose.scaling import fit_frontier, isoflop_minimum

    cands = [
        Candidate(n.proposal, n.selection_metric)
        for n in nodes
        if n.status.value == "ok" and n.operator != "reference"
    ]
    agg = aggregate(cands, method="n0", lower_is_better=lower_is_better)
    (run_dir / "aggregate.json").write_text(json.dumps({**agg.to_dict(), "method": "n0"}))
    for strategy in ("stack", "stretch"):
        x = extrapolate(agg.pattern, "350M", strategy)
        (run_dir / f"extrapolate-350M-{strategy}.json").write_text(json.dumps(x.to_dict()))
    archs = {}
    for name, (a, b) in {"AMAMAMAM": (40.0, -0.05), "AAMMMMAA": (45.0, -0.06)}.items():
        runs, points = [], []
        for c in (1e15, 1e16, 1e17):
            sizes = [c**0.5 / 40 * k for k in (0.5, 1.0, 2.0)]
            # A parabola in log N around the optimum, on the power law a * C^b.
            losses = [a * c**b * (1 + 0.05 * (k - 1.0) ** 2) for k in (0.5, 1.0, 2.0)]
            runs += [{"compute": c, "size": 64, "params": n, "loss": l_} for n, l_ in zip(sizes, losses)]
            points.append(isoflop_minimum(sizes, losses, c))
        archs[name] = {"frontier": fit_frontier(points).to_dict(), "runs": runs}
    comparisons = [
        {
            "x": "AAMMMMAA",
            "y": "AMAMAMAM",
            "b_x": archs["AAMMMMAA"]["frontier"]["b"],
            "b_y": archs["AMAMAMAM"]["frontier"]["b"],
            "percent_faster": 20.0,
        }
    ]
    (run_dir / "scaling.json").write_text(json.dumps({"architectures": archs, "comparisons": comparisons}))
    (run_dir / "fidelity.json").write_text(
        json.dumps(
            {
                "spearman": 0.83,
                "ci": [0.6, 0.95],
                "seed_to_seed": 0.9,
                "noise_floor": 0.01,
                "saturation": {"top": 0.99},
            }
        )
    )
    return agg


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("report") / "plain"
    make_run(d)
    return d


@pytest.fixture(scope="session")
def compose_run(tmp_path_factory, plain_run):
    """A copy of the plain run with every Compose file; returns (run dir, Aggregation)."""
    from aira.agents.journal import Journal

    d = tmp_path_factory.mktemp("report") / "compose"
    shutil.copytree(plain_run, d, ignore=shutil.ignore_patterns("report", "report.html"))
    with Journal(d, readonly=True) as j:
        nodes = j.nodes()
    return d, add_compose_files(d, nodes)


@pytest.fixture(scope="session")
def plain_html(plain_run):
    from aira.report import write_report

    return write_report(plain_run).read_text()


@pytest.fixture(scope="session")
def compose_html(compose_run):
    from aira.report import write_report

    return write_report(compose_run[0]).read_text()


class PageParser(HTMLParser):
    """Section ids, <img> attributes and the leaderboard's rows (attributes and cell texts)."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict] = []
        self.rows: list[dict] = []
        self._table: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "img":
            self.images.append(a)
        elif tag == "table":
            self._table.append(a.get("class", ""))
        elif tag == "tr" and self._table and self._table[-1] == "leaderboard" and "data-node" in a:
            self.rows.append({**a, "cells": []})
        elif tag == "td" and self.rows and self._table[-1] == "leaderboard":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        elif tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> PageParser:
    p = PageParser()
    p.feed(html)
    return p
