"""The run folder's records: `config.json` (the resolved `RunConfig`, its `resolved` notes) and the
`RunSummary` a run segment ends with (`summary.json`), and the checks and readers of a run folder that the
verbs share. The orchestrator (aira.agents.orchestrator) runs what they describe; the journal
(aira.agents.journal) holds the nodes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aira.agents.agent import parse_agents
from aira.agents.base import Task
from aira.agents.budget import Budget
from aira.agents.executors import EXECUTORS
from aira.agents.journal import Journal
from aira.agents.stats import TaskInfo
from aira.errors import UsageError

PROMOTE_EVERY = 10  # counted evaluations between promotion rounds when `promote` gives no EVERY


def parse_promote(spec: str | None) -> tuple[int, int] | None:
    """`K[:EVERY]` -> (K, EVERY): promote the best K candidates after every EVERY counted evaluations
    (default PROMOTE_EVERY) and when the search stops; None or "" -> None (no promotion)."""
    if spec is None or str(spec).strip() == "":
        return None
    k, _, every = str(spec).partition(":")
    try:
        out = int(k), int(every) if every else PROMOTE_EVERY
    except ValueError:
        raise UsageError(f"bad --promote {spec!r}: use K or K:EVERY, e.g. 3 or 3:20") from None
    if out[0] < 1 or out[1] < 1:
        raise UsageError(f"bad --promote {spec!r}: K and EVERY must be at least 1")
    return out


@dataclass(kw_only=True)
class RunConfig:
    task: str  # a registered name or a task folder path
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    agents: list[str] = field(default_factory=lambda: ["greedy:offline"])
    executor: str = "local"
    slots: int = 1
    executor_kwargs: dict[str, Any] = field(default_factory=dict)
    budget: Budget | str | None = None  # see aira.agents.budget
    seed: int = 0  # agents' random streams and the evaluation seed
    noise_seeds: int = 3  # reference evaluations for the noise floor (0: none)
    improve_margin: float | str = "noise"  # "noise" = one std of the floor, or an absolute number
    shared_memory: bool = False  # operators see every agent's nodes, not only their own
    promote: str | None = None  # "K[:EVERY]": re-evaluate the best K at the task's promotion fidelity
    out: str = "runs/run"
    quiet: bool = False

    def __post_init__(self):
        self.budget = Budget.coerce(self.budget)
        self.agents = [self.agents] if isinstance(self.agents, str) else list(self.agents)
        parse_agents(self.agents)  # fail early with the list of policies
        if self.executor not in EXECUTORS:
            raise UsageError(f"unknown executor {self.executor!r}; choose one of: {', '.join(EXECUTORS)}")
        if self.slots < 1:
            raise UsageError(f"bad number of workers {self.slots}: need at least 1")
        if self.noise_seeds < 0:
            raise UsageError(f"bad noise_seeds {self.noise_seeds}: need 0 or more")
        parse_promote(self.promote)
        if self.improve_margin != "noise":
            try:
                self.improve_margin = float(self.improve_margin)
            except (TypeError, ValueError):
                raise UsageError(
                    f"bad improve_margin {self.improve_margin!r}: use 'noise' or a number"
                ) from None
            if not math.isfinite(self.improve_margin) or self.improve_margin < 0:
                raise UsageError(f"bad improve_margin {self.improve_margin}: use 'noise' or a number >= 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["budget"] = self.budget.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(kw_only=True)
class RunSummary:
    run_dir: str
    stop_reason: str
    evaluations: int
    nodes: int
    lost: int
    stopped: int  # jobs killed because the budget ran out (stop=kill)
    elapsed_s: float
    cost_usd: float
    noise_floor: dict | None
    best: dict | None  # the final pick (stats.final_order), with its promoted score under "promoted"
    agents: list[dict]
    promotions: dict | None = None  # K, EVERY, fidelity, evaluations and compute seconds of the promotions

    def to_dict(self) -> dict:
        return asdict(self)


def write_config(config: RunConfig, run_dir: Path, task: Task, notes: dict | None = None) -> None:
    """config.json: the config, what it resolved to, and the caller's `notes` (e.g. Compose's
    `proxy_fidelity`, for the report); a resume without notes keeps the stored ones."""
    resolved = {
        "task": TaskInfo.of(task).to_dict(),
        "agents": [s.name for s in parse_agents(config.agents)],
        "budget": config.budget.describe(),
    }
    if notes is None and (run_dir / "config.json").is_file():
        try:
            stored = json.loads((run_dir / "config.json").read_text()).get("resolved", {})
            notes = {k: v for k, v in stored.items() if k not in resolved}
        except (OSError, ValueError, AttributeError):
            notes = None
    resolved.update(notes or {})
    (run_dir / "config.json").write_text(
        json.dumps({**config.to_dict(), "resolved": resolved}, indent=1, default=str)
    )


def check_run_folder(run_dir: str | Path, *, resume: bool) -> None:
    """For verbs with a --resume flag: a new run needs an empty folder, a resumed one an existing run."""
    exists = (Path(run_dir) / Journal.FILENAME).exists()
    if exists and not resume:
        raise UsageError(f"{run_dir} already holds a run: add --resume to continue it")
    if resume and not exists:
        raise UsageError(f"--resume: no run at {run_dir}")


def read_config(run_dir: str | Path) -> dict:
    """The run folder's config.json as a dict; UsageError (one line) when it is missing or corrupt."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"no run at {run_dir}: {path} not found")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: not UTF-8, or not JSON
        raise UsageError(f"{path} cannot be read as a run config ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise UsageError(f"{path} is not a run config (no \"task\" in it)")
    return config


def load_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    config = read_config(run_dir)
    try:
        return RunConfig.from_dict(config)
    except (TypeError, ValueError, AttributeError) as e:  # UsageError included: name the file
        raise UsageError(f"{path} is not a valid run config ({e})") from None
