"""The experiment loop of autoresearch's program: one commit per experiment, keep or reset.

`ExperimentLoop(run_dir, baseline)` keeps a run-local git repository (`run_dir/experiments`) whose
`main` branch is always the best script kept so far:

- the baseline is the first commit; its re-runs with several seeds (the orchestrator's reference
  nodes) give the noise floor: mean and sample std of val_bpb;
- every finished experiment is committed on top of `main` ("<node>: <idea>");
- it is KEPT when val_bpb beats the best kept value (at first the baseline's mean) by more than the
  margin (one std of the floor by default, the same rule the greedy policy uses for its incumbent);
  otherwise it is tagged `exp/<node>` (so its diff stays inspectable) and `main` is reset to the last
  kept commit; a failed run (crash, timeout, divergence) is status "crash" and reset the same way;
- `results.tsv` (commit, val_bpb, memory_gb, status, description, node) and `progress.png` are
  rewritten as results arrive, and `loop.json` holds the state, so a resumed run continues the loop.

`LoopExecutor` wraps the run's executor: on each poll it feeds the loop the nodes the orchestrator has
journaled since (the orchestrator records a result right after the poll that returned it), so the loop
runs as the search goes without any change to the orchestrator.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
from collections.abc import Iterable
from pathlib import Path

from aira.agents.base import Executor
from aira.agents.types import Job, Node, Status

REPO = "experiments"
RESULTS = "results.tsv"
STATE = "loop.json"
PLOT = "progress.png"
HEADER = ["commit", "val_bpb", "memory_gb", "status", "description", "node"]
GIT_ID = ["-c", "user.name=aira", "-c", "user.email=aira@localhost", "-c", "commit.gpgsign=false"]


def decide(metric: float | None, ok: bool, best: float | None, margin: float, *,
           lower_is_better: bool = True) -> str:
    """'keep' | 'discard' | 'crash' for one experiment against the best kept value."""
    if not ok or metric is None or not math.isfinite(metric):
        return "crash"
    if best is None:
        return "keep"
    better = metric < best - margin if lower_is_better else metric > best + margin
    return "keep" if better else "discard"


def _code(node: Node, file: str) -> str | None:
    files = node.proposal.get("files") if isinstance(node.proposal, dict) else None
    return files.get(file) if isinstance(files, dict) else None


class ExperimentLoop:
    def __init__(self, run_dir: str | Path, baseline: str, *, file: str = "train.py",
                 margin: float | str = "noise", lower_is_better: bool = True, plot: bool = True):
        self.run_dir = Path(run_dir)
        self.repo = self.run_dir / REPO
        self.file, self.margin_cfg, self.lower, self.plot = file, margin, lower_is_better, plot
        state_path = self.run_dir / STATE
        if state_path.exists():
            self.state = json.loads(state_path.read_text())
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.repo.mkdir(exist_ok=True)
            self._git("init", "-q")
            self._git("checkout", "-q", "-B", "main")
            (self.repo / file).write_text(baseline)
            self._git("add", file)
            self._git("commit", "-q", "-m", "baseline")
            sha = self._git("rev-parse", "HEAD")
            self.state = {"baseline_sha": sha, "kept_sha": sha, "best": None, "baseline": [],
                          "processed": [], "kept": []}
            (self.run_dir / RESULTS).write_text("\t".join(HEADER) + "\n")
            self._save()

    # --- git ---------------------------------------------------------------------------------------

    def _git(self, *args: str) -> str:
        out = subprocess.run(["git", *GIT_ID, *args], cwd=self.repo, capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def _save(self) -> None:
        from aira.fileio import write_atomic

        write_atomic(self.run_dir / STATE, json.dumps(self.state, indent=1))

    # --- the loop ----------------------------------------------------------------------------------

    @property
    def margin(self) -> float:
        if self.margin_cfg != "noise":
            return float(self.margin_cfg)
        b = self.state["baseline"]
        return statistics.stdev(b) if len(b) > 1 else 0.0

    @property
    def best(self) -> float | None:
        return self.state["best"]

    def observe(self, node: Node) -> str | None:
        """Record one finished node; returns its status in results.tsv (None if already recorded)."""
        if node.id in self.state["processed"] or node.status in (Status.PENDING, Status.RUNNING):
            return None
        mem = node.metrics.get("peak_memory_mb")
        mem_gb = f"{mem / 1024:.3f}" if isinstance(mem, int | float) else "-"
        value = f"{node.metric:.6f}" if node.metric is not None else "-"
        if node.operator == "reference":
            status, sha = "baseline", self.state["baseline_sha"]
            if node.status == Status.OK and node.metric is not None:
                self.state["baseline"].append(node.metric)
                if not self.state["kept"]:  # the bar starts at the baseline's mean over the seeds
                    self.state["best"] = statistics.fmean(self.state["baseline"])
            description = node.idea or "baseline"
        else:
            code = _code(node, self.file)
            if code is None:  # an invalid proposal never ran: nothing to commit
                self.state["processed"].append(node.id)
                self._save()
                return None
            (self.repo / self.file).write_text(code)
            self._git("add", self.file)
            description = " ".join((node.idea or node.operator).split())[:200]
            self._git("commit", "-q", "--allow-empty", "-m", f"{node.id}: {description}")
            sha = self._git("rev-parse", "HEAD")
            before = self.state["best"]
            status = decide(node.metric, node.status == Status.OK, before, self.margin,
                            lower_is_better=self.lower)
            if status == "keep":
                self.state["kept"].append({"node": node.id, "sha": sha, "parent_sha": self.state["kept_sha"],
                                           "val_bpb": node.metric, "before": before, "idea": description})
                self.state["kept_sha"], self.state["best"] = sha, node.metric
            else:
                self._git("tag", "-f", f"exp/{node.id}", sha)
                self._git("reset", "-q", "--hard", self.state["kept_sha"])
        row = [sha[:10], value, mem_gb, status, description.replace("\t", " "), node.id]
        with open(self.run_dir / RESULTS, "a") as f:
            f.write("\t".join(row) + "\n")
        self.state["processed"].append(node.id)
        self._save()
        if self.plot:
            from aira.tasks.autoresearch.report import plot_progress

            plot_progress(self.run_dir)
        return status

    def sync(self, nodes: Iterable[Node]) -> int:
        """Observe every finished node not seen yet, in the given (finish) order; returns how many."""
        return sum(self.observe(n) is not None for n in nodes)

    def sync_journal(self) -> int:
        from aira.agents.journal import Journal

        if not (self.run_dir / Journal.FILENAME).exists():
            return 0
        with Journal(self.run_dir, readonly=True) as j:
            return self.sync(j.finished())


def read_results(run_dir: str | Path) -> list[dict[str, str]]:
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:] if ln.strip()]


class LoopExecutor(Executor):
    """An executor that feeds an ExperimentLoop from the journal after results come back."""

    def __init__(self, inner: Executor, loop: ExperimentLoop):
        self.inner, self.loop = inner, loop
        self.slots = getattr(inner, "slots", 1)
        self._pending = False

    def submit(self, job: Job) -> None:
        self.inner.submit(job)

    def poll(self, timeout: float = 0.0):
        if self._pending:  # results returned by the last poll are journaled by now
            self.loop.sync_journal()
        out = self.inner.poll(timeout)
        self._pending = bool(out)
        return out

    def running(self) -> int:
        return self.inner.running()

    def shutdown(self) -> None:
        self.inner.shutdown()
