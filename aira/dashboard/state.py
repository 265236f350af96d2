"""What the dashboard shows, as JSON-ready dicts computed from run folders (read-only, like the report).

`Watcher(root).runs()` is the runs list (one row a run: task, state, evaluations, best); `run_state(run_dir)`
is everything the page draws for one run (`Watcher(root).run(name)` by name): agents' progress and cost, the leaderboard with its tie groups
and the noise band, best-so-far points against evaluations, wall time and compute, the top patterns'
layer heat map, the proxy's fidelity, failures with the tail of their job logs.

The journal is opened read-only (`Journal(readonly=True)`, SQLite `mode=ro`) and nothing is written into
a run folder. A run is read again only when one of its top-level files changed (name, size and mtime of
each, SQLite's -shm index aside), so a page polling every two seconds costs a `stat` per file while a run
is idle. A read-only SQLite reader still maps the journal's `-shm` (the WAL index readers and the writer
share); that is the one file a read may touch, and its content is SQLite's, not the run's.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from pathlib import Path

from aira.agents.stats import REFERENCE, agent_stats, stopped_with_run
from aira.agents.types import Status
from aira.errors import UsageError
from aira.report.analysis import (
    agent_evaluations,
    curve_points,
    fidelity_rows,
    frequencies,
    leader_rows,
    primitive_name,
    top_patterns,
)
from aira.report.data import RunData, is_run, load_run

LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 8192


def find_runs(root: Path) -> list[Path]:
    """`root` itself when it is a run folder, else the run folders directly under it, by name."""
    if is_run(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and is_run(p))


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _state(run: RunData) -> str:
    if run.summary is not None:
        return "finished"
    if any(n.status in (Status.PENDING, Status.RUNNING) for n in run.nodes):
        return "running"
    return "running or stopped"  # no summary.json yet: a run between two jobs looks like a stopped one


def _elapsed(run: RunData) -> float:
    if run.summary and isinstance(run.summary.get("elapsed_s"), (int, float)):
        return float(run.summary["elapsed_s"])
    times = [t for n in run.nodes for t in (n.created_at, n.finished_at) if t is not None]
    return max(times) - min(times) if times else 0.0


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:])


def _log_path(run_dir: Path, node_id: str) -> Path:
    from aira.agents.executors.local import safe_name

    return run_dir / "jobs" / f"{safe_name(node_id)}.log"


def summary_row(run: RunData) -> dict:
    best = run.final_pick()
    return {
        "name": run.run_dir.name,
        "task": run.info.name,
        "state": _state(run),
        "nodes": len(run.nodes),
        "evaluations": agent_evaluations(run.nodes),
        "running": sum(n.status == Status.RUNNING for n in run.nodes),
        "best": None if best is None else _finite(best.metric),
        "best_node": None if best is None else best.id,
        "cost_usd": sum(n.cost_usd for n in run.nodes),
        "elapsed_s": _elapsed(run),
    }


def run_state(run: RunData, *, top: int = 20) -> dict:
    """The page's data for one run (see the module docstring)."""
    info, nodes = run.info, run.nodes
    floor = run.floor
    metric = next((n.metrics["metric_name"] for n in nodes if isinstance(n.metrics.get("metric_name"), str)),
                  "metric")
    agents = []
    for s in agent_stats(nodes, info, floor):
        mine = [n for n in nodes if n.agent == s.agent]
        agents.append({
            **{k: _finite(v) if isinstance(v, float) else v for k, v in s.to_dict().items()},
            "llm": ", ".join(sorted({n.llm for n in mine})),
            "evaluations": agent_evaluations(mine),
            "running": sum(n.status == Status.RUNNING for n in mine),
            "pending": sum(n.status == Status.PENDING for n in mine),
            "invalid": sum(n.status == Status.INVALID for n in mine),
            "failed": sum(n.status.failed and n.status != Status.INVALID and not stopped_with_run(n) for n in mine),
            "tokens": sum(n.input_tokens + n.output_tokens for n in mine),
        })
    board = [{
        "rank": r.rank, "group": r.group, "tied": r.tied, "reference": r.reference, "node": r.node.id,
        "agent": r.node.agent, "operator": r.node.operator, "llm": r.node.llm,
        "search": _finite(r.node.metric), "selection": _finite(r.node.selection_metric),
        "seed_std": _finite(r.seed_std), "seeds": r.seeds, "proposal": _short(r.node.proposal),
        "params": _finite(r.node.metrics.get("params")),
    } for r in leader_rows(nodes, info, floor, top=top)]
    curves = {a: [{"evaluation": p.evaluation, "wall_s": p.wall_s, "compute_s": p.compute_s,
                   "best": _finite(p.best)} for p in curve_points(nodes, info, a)] for a in run.agents}
    recent = sorted((n for n in nodes if n.operator != REFERENCE and n.finished_at is not None
                     and n.status != Status.INVALID), key=lambda n: n.finished_at, reverse=True)[:10]
    failures = [{"node": n.id, "agent": n.agent, "status": n.status.value,
                 "error": (n.error or "").strip().splitlines()[-1:] or [""],
                 "log_tail": _tail(_log_path(run.run_dir, n.id))}
                for n in nodes if n.status.failed and n.status != Status.INVALID and not stopped_with_run(n)]
    for f in failures:
        f["error"] = f["error"][0]
    counts = Counter(n.status.value for n in nodes)
    return {
        **summary_row(run),
        "metric": metric,
        "lower_is_better": info.lower_is_better,
        "agents_spec": run.config.get("agents", []),
        "budget": run.config.get("resolved", {}).get("budget"),
        "stop_reason": (run.summary or {}).get("stop_reason"),
        "counts": dict(counts),
        "stopped_by_budget": sum(stopped_with_run(n) for n in nodes),
        "compute_s": sum(n.seconds for n in nodes),
        "tokens": sum(n.input_tokens + n.output_tokens for n in nodes),
        "noise_floor": None if floor is None else {"mean": floor.mean, "std": floor.std, "n": floor.n,
                                                   "source": floor.source},
        "agents": agents,
        "leaderboard": board,
        "curves": curves,
        "recent": [{"node": n.id, "agent": n.agent, "status": n.status.value, "search": _finite(n.metric),
                    "proposal": _short(n.proposal), "seconds": n.seconds} for n in recent],
        "heatmap": _heatmap(run),
        "fidelity": {"notice": run.config.get("resolved", {}).get("proxy_fidelity"),
                     "figures": _fidelity_rows(run.fidelity)},
        "failures": failures,
        "warnings": run.warnings,
    }


def journaled_steering(run_dir: Path) -> tuple[bool, list[dict]]:
    """(paused by the journal's last applied control event, the guidance versions with their readers)."""
    from aira.agents.journal import Journal
    from aira.agents.steering import guidance_log

    paused, versions = False, []
    try:
        with Journal(run_dir, readonly=True) as j:
            events = j.steering()
            for _, kind, data in events:
                if kind == "control" and data.get("applied"):
                    paused = {"pause": True, "continue": False, "stop": False}.get(data.get("action"), paused)
            if any(kind == "guidance" for _, kind, _ in events):  # the nodes are read only when there is some
                versions = [{k: g.get(k) for k in ("version", "sha256", "time", "read_by")}
                            | {"not_read": len(g["not_read_by"])} for g in guidance_log(j)]
    except (OSError, UsageError):
        pass
    return paused, versions


def steering(run_dir: Path, journaled: tuple[bool, list[dict]] | None = None) -> dict:
    """What the steering panel shows: whether a process writes the run now, whether it is paused (by the
    journal's control events), the guidance note on disk and the versions journaled (read-only).
    `journaled`: `journaled_steering(run_dir)` when the caller has it (the Watcher caches it)."""
    from aira.agents.journal import writer_pid
    from aira.agents.steering import GUIDANCE_FILE

    paused, versions = journaled if journaled is not None else journaled_steering(run_dir)
    try:
        note = (run_dir / GUIDANCE_FILE).read_text(errors="replace")
    except OSError:
        note = ""
    live = writer_pid(run_dir) is not None
    return {"live": live, "paused": paused and live, "guidance": note, "versions": versions}


def _short(proposal) -> str:
    from aira.agents.memory import short_proposal

    s = short_proposal(proposal)
    return s if len(s) <= 120 else s[:119] + "…"


def _heatmap(run: RunData) -> dict | None:
    pats = top_patterns(run.nodes, run.info, k=20)
    if not pats:
        return None
    codes, freq = frequencies(pats)
    return {"patterns": len(pats), "codes": codes, "names": [primitive_name(c) for c in codes], "freq": freq}


def _fidelity_rows(fid: dict | None) -> list[dict]:
    return [{"figure": label, "value": v, "target": target, "meaning": meaning}
            for label, v, target, meaning in fidelity_rows(fid)]


class Watcher:
    """Run folders under a root, each read again only when its files changed. Thread-safe."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._cache: dict[Path, tuple[tuple, RunData | str]] = {}
        self._steering: dict[Path, tuple[tuple, tuple]] = {}  # journaled_steering, by the same file key
        self._lock = threading.Lock()

    @staticmethod
    def _key(d: Path) -> tuple:
        out = []
        for p in sorted(d.iterdir()):
            # the -shm is SQLite's WAL index, which every reader touches (our own read included): new
            # data shows in the journal or its -wal
            if p.is_file() and not p.name.endswith("-shm"):
                st = p.stat()
                out.append((p.name, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def load(self, d: Path) -> RunData | str:
        """The run, or the one-line reason it cannot be read (a half-written or corrupt folder)."""
        try:
            key = self._key(d)
        except OSError as e:
            return str(e)
        with self._lock:
            hit = self._cache.get(d)
            if hit is not None and hit[0] == key:
                return hit[1]
        try:
            run: RunData | str = load_run(d)
        except (UsageError, OSError, ValueError, TypeError) as e:
            run = str(e)
        with self._lock:
            self._cache[d] = (key, run)
        return run

    def runs(self) -> list[dict]:
        out = []
        for d in find_runs(self.root):
            run = self.load(d)
            out.append({"name": d.name, "error": run} if isinstance(run, str) else summary_row(run))
        return out

    def run_dir(self, name: str) -> Path | None:
        match = [d for d in find_runs(self.root) if d.name == name]
        return match[0] if match else None

    def run(self, name: str) -> dict | None:
        """One run's state by its folder name; None when there is no such run under the root."""
        d = self.run_dir(name)
        if d is None:
            return None
        run = self.load(d)
        if isinstance(run, str):
            return {"name": name, "error": run}
        try:
            key = self._key(d)
        except OSError:
            key = None
        with self._lock:
            hit = self._steering.get(d)
        if hit is None or hit[0] != key:
            hit = (key, journaled_steering(d))
            with self._lock:
                self._steering[d] = hit
        return {**run_state(run), "steering": steering(d, hit[1])}


def clean(obj):
    """`obj` with every NaN or infinity as None: browsers' JSON.parse rejects them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def dumps(obj) -> bytes:
    return json.dumps(clean(obj), default=str, allow_nan=False).encode()
