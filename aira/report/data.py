"""Everything the report reads from a run folder, loaded once into a `RunData`.

A run folder has `config.json` and `journal.sqlite`; every other file is optional and its section
is left out when it is missing. A study folder without a journal (`aira compose scaling --out DIR`,
`aira compose fidelity --out DIR`) is accepted too when it holds one of the Compose files:

    summary.json                          the orchestrator's end-of-run summary (the final pick)
    aggregate.json                        Compose: Aggregation.to_dict() plus "method"
    extrapolate-<target>-<strategy>.json  Compose: Extrapolation.to_dict(), one file per target
    scaling.json                          Compose: {"architectures": {name: {"frontier", "runs"}}, "comparisons"}
    fidelity.json                         Compose: proxy-fidelity checks, a free-form dict
    halving.json                          Compose: successive halving (`aira compose halving`), its rungs
    verify.json                           Compose: the winner against the baselines (`aira compose verify`)
    results.tsv, *.png                    autoresearch: its experiment table and its own plots

A Compose file that is not valid JSON is reported as a warning on the page, not a crash: a
half-written file from a stage still running should not stop the rest of the report.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from aira.agents.stats import REFERENCE, NoiseFloor, TaskInfo, best_node, noise_floor
from aira.agents.types import Node, Status
from aira.errors import UsageError


@dataclass(kw_only=True)
class RunData:
    run_dir: Path
    config: dict
    info: TaskInfo
    nodes: list[Node]
    floor: NoiseFloor | None
    summary: dict | None = None
    aggregate: dict | None = None
    extrapolations: list[dict] = field(default_factory=list)  # sorted by file name
    scaling: dict | None = None
    fidelity: dict | None = None
    halving: dict | None = None
    verify: dict | None = None
    results_tsv: list[dict] | None = None
    pngs: list[Path] = field(default_factory=list)  # the run's own images (autoresearch)
    primitives: list[dict] = field(default_factory=list)  # promoted mechanisms: primitives/X.json, by letter
    warnings: list[str] = field(default_factory=list)

    @property
    def agents(self) -> list[str]:
        """Agent names in order of first appearance (reference nodes excluded)."""
        return list(dict.fromkeys(n.agent for n in self.nodes if n.operator != REFERENCE))

    def final_pick(self) -> Node | None:
        """The run's answer: the best non-reference node by the hidden selection split."""
        return best_node([n for n in self.nodes if n.operator != REFERENCE], self.info, selection=True)

    def pattern_nodes(self) -> list[Node]:
        """Finished OK nodes whose proposal is a layer pattern (a plain string of upper-case codes)."""
        return [
            n
            for n in self.nodes
            if n.status == Status.OK
            and n.metric is not None
            and isinstance(n.proposal, str)
            and n.proposal.isalpha()
            and n.proposal.isupper()
        ]


STUDY_FILES = ("aggregate.json", "scaling.json", "fidelity.json", "verify.json", "results.tsv")


def is_run(d: Path) -> bool:
    return (d / "config.json").is_file() and (d / "journal.sqlite").is_file()


def check_run_dir(path: str | Path) -> Path:
    d = Path(path)
    if not is_run(d) and not any((d / f).is_file() for f in STUDY_FILES):
        raise UsageError(
            f"no run at {path} (expected config.json and journal.sqlite, or {' / '.join(STUDY_FILES)} there)"
        )
    return d


def _read_json(path: Path, warnings: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        warnings.append(f"{path.name} could not be read ({e}); its section is left out")
        return None
    if not isinstance(data, dict):
        warnings.append(f"{path.name} is not a JSON object; its section is left out")
        return None
    return data


def _read_tsv(path: Path, warnings: list[str]) -> list[dict] | None:
    if not path.is_file():
        return None
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        warnings.append(f"{path.name} could not be read ({e})")
        return None


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder (read-only: the run may still be writing it)."""
    from aira.agents.journal import Journal

    d = check_run_dir(run_dir)
    warnings: list[str] = []
    nodes: list[Node] = []
    config: dict = {}
    if is_run(d):
        config = _read_json(d / "config.json", warnings) or {}
        if not config:
            raise UsageError(f"{d / 'config.json'} is not a valid run config")
        with Journal(d, readonly=True) as j:
            nodes = j.nodes()
    task = config.get("resolved", {}).get("task") or {"name": str(config.get("task", d.resolve().name))}
    info = TaskInfo(**{k: v for k, v in task.items() if k in TaskInfo.__dataclass_fields__})
    primitives = [x for p in sorted(d.glob("primitives/*.json")) if (x := _read_json(p, warnings)) is not None]
    extrapolations = []
    for p in sorted(d.glob("extrapolate-*.json")):
        x = _read_json(p, warnings)
        if x is not None:
            extrapolations.append({"file": p.name, **x})
    return RunData(
        run_dir=d,
        config=config,
        info=info,
        nodes=nodes,
        floor=noise_floor(nodes, info),
        summary=_read_json(d / "summary.json", warnings),
        aggregate=_read_json(d / "aggregate.json", warnings),
        extrapolations=extrapolations,
        scaling=_read_json(d / "scaling.json", warnings),
        fidelity=_read_json(d / "fidelity.json", warnings),
        halving=_read_json(d / "halving.json", warnings),
        verify=_read_json(d / "verify.json", warnings),
        results_tsv=_read_tsv(d / "results.tsv", warnings),
        pngs=sorted(d.glob("*.png")),  # top level only: the report's own images live in a subfolder
        primitives=primitives,
        warnings=warnings,
    )
