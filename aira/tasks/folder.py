"""Task folders, in the spirit of AIRS-Bench: a task as a directory anyone can write.

    my-task/
      task.json        name, metric, lower_is_better, reference_score, proposal_kind, timeout, ...
      description.md   what agents read
      evaluate.py      frozen: evaluate(proposal, seed, workdir) -> {"metric": ..., ...}
      train.py         proposal_kind "file": the editable file (named by "editable"); its shipped
                       contents are the reference proposal
      schema.json      proposal_kind "json": the proposal's JSON schema (a small subset, see below)

task.json keys: name (default: the folder's name), metric (its name, for display), lower_is_better
(false), reference_score (SOTA, for normalised scores; optional), optimum (the metric's best possible
value; optional), proposal_kind ("pattern" | "json" | "file"), editable (file kind), timeout (seconds
or "10m"; default 600), reference (pattern / json kinds: a known-good proposal), alphabet and length
(pattern kind: allowed letters and exact length, which also give the offline agent a search space).

schema.json understands "properties" with "type" (integer, number, string, boolean), "enum",
"minimum", "maximum", plus "required" and "additionalProperties": false. Properties that have an enum,
are boolean, or have both bounds give the offline agent a search space.

The evaluator runs in the job's process: `evaluate.py` is loaded by path, its SHA-256 checked against
the one taken when the task was opened (so it stays frozen during a run), the editable file written
into a fresh working directory, and the returned dict becomes the node's Result ("status" defaults to
"ok" when a finite metric came back).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

from aira.agents.base import ProposalSpace, Task
from aira.agents.budget import parse_duration
from aira.agents.types import Job
from aira.errors import UsageError
from aira.tasks.patterns import PatternSpace

KINDS = ("pattern", "json", "file")
_TYPES = {"integer": int, "number": (int, float), "string": str, "boolean": bool}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FolderTask(Task):
    def __init__(self, path: str | Path, **overrides):
        self.dir = Path(path).expanduser().resolve()
        meta_path = self.dir / "task.json"
        if not meta_path.is_file():
            raise UsageError(f"no task folder at {path}: expected {meta_path}")
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise UsageError(f"bad {meta_path}: {e}") from None
        meta.update(overrides)
        self.meta = meta
        self.name = str(meta.get("name", self.dir.name))
        self.metric_name = str(meta.get("metric", "metric"))
        self.lower_is_better = bool(meta.get("lower_is_better", False))
        self.reference_score = meta.get("reference_score")
        self.metric_optimum = meta.get("optimum")
        self.proposal_kind = meta.get("proposal_kind", "json")
        if self.proposal_kind not in KINDS:
            raise UsageError(f"bad proposal_kind {self.proposal_kind!r} in {meta_path}: use one of {KINDS}")
        self.timeout_s = parse_duration(meta.get("timeout", 600))
        self.evaluator = self.dir / "evaluate.py"
        if not self.evaluator.is_file():
            raise UsageError(f"task folder {self.dir} has no evaluate.py")
        self.evaluator_sha = _sha256(self.evaluator)
        self.editable = meta.get("editable")
        if self.proposal_kind == "file" and not (self.editable and (self.dir / self.editable).is_file()):
            raise UsageError(
                f"task folder {self.dir}: proposal_kind 'file' needs 'editable' naming a file there"
            )
        self.schema = {}
        if self.proposal_kind == "json" and (self.dir / "schema.json").is_file():
            self.schema = json.loads((self.dir / "schema.json").read_text())

    @property
    def editable_file(self) -> str | None:
        """The name the operators read (aira.agents.operators.editable_file)."""
        return self.editable

    def describe(self) -> str:
        desc = self.dir / "description.md"
        text = desc.read_text() if desc.is_file() else f"Task {self.name}."
        direction = "lower is better" if self.lower_is_better else "higher is better"
        extra = [
            f"Metric: {self.metric_name} ({direction}). Each evaluation is limited to {self.timeout_s:g}s."
        ]
        if self.proposal_kind == "file":
            extra.append(f"Reply with the full contents of {self.editable}.")
        elif self.proposal_kind == "json" and self.schema:
            extra.append(
                f"Reply with a JSON object following this schema:\n{json.dumps(self.schema, indent=1)}"
            )
        elif self.proposal_kind == "pattern" and "alphabet" in self.meta:
            extra.append(
                f"Reply with a pattern of {self.meta.get('length', 'any number of')} letters "
                f"from {self.meta['alphabet']!r}."
            )
        return text.rstrip() + "\n\n" + "\n".join(extra)

    # --- proposals -------------------------------------------------------------------------------

    def normalise(self, proposal: Any) -> Any:
        if self.proposal_kind == "file" and isinstance(proposal, str):
            return {"files": {self.editable: proposal}}
        return proposal

    def validate(self, proposal: Any) -> str | None:
        proposal = self.normalise(proposal)
        if self.proposal_kind == "pattern":
            return self._validate_pattern(proposal)
        if self.proposal_kind == "json":
            return validate_schema(proposal, self.schema)
        files = proposal.get("files") if isinstance(proposal, dict) else None
        if not isinstance(files, dict) or set(files) != {self.editable}:
            return f"the proposal must be exactly one file, {self.editable}"
        if not isinstance(files[self.editable], str) or not files[self.editable].strip():
            return f"{self.editable} is empty"
        return None

    def _validate_pattern(self, p: Any) -> str | None:
        if not isinstance(p, str) or not p:
            return "the proposal must be a non-empty string"
        alphabet, length = self.meta.get("alphabet"), self.meta.get("length")
        if alphabet and (bad := sorted(set(p) - set(alphabet))):
            return f"letters {''.join(bad)!r} are not in the alphabet {alphabet!r}"
        if length and len(p) != length:
            return f"the pattern has {len(p)} letters, expected {length}"
        return None

    def reference(self) -> Any | None:
        if self.proposal_kind == "file":
            return {"files": {self.editable: (self.dir / self.editable).read_text()}}
        return self.meta.get("reference")

    def space(self) -> ProposalSpace | None:
        if self.proposal_kind == "pattern" and self.meta.get("alphabet") and self.meta.get("length"):
            return PatternSpace(int(self.meta["length"]), self.meta["alphabet"])
        if self.proposal_kind == "json" and self.schema.get("properties"):
            props = self.schema["properties"]
            if all(_samplable(p) for p in props.values()):
                return SchemaSpace(props)
        return None

    def make_job(self, proposal: Any, *, seed: int, job_id: str) -> Job:
        return Job(
            id=job_id,
            fn="aira.tasks.folder:evaluate_in_folder",
            timeout_s=self.timeout_s,
            sandbox=self.proposal_kind == "file",
            kwargs={
                "task_dir": str(self.dir),
                "proposal": self.normalise(proposal),
                "seed": seed,
                "evaluator_sha": self.evaluator_sha,
            },
        )


def validate_schema(proposal: Any, schema: dict) -> str | None:
    if not isinstance(proposal, dict):
        return "the proposal must be a JSON object"
    props = schema.get("properties", {})
    if missing := [k for k in schema.get("required", []) if k not in proposal]:
        return f"missing keys: {', '.join(missing)}"
    if schema.get("additionalProperties") is False and (extra := sorted(set(proposal) - set(props))):
        return f"unknown keys: {', '.join(extra)}"
    for key, rule in props.items():
        if key not in proposal:
            continue
        v = proposal[key]
        want = _TYPES.get(rule.get("type", ""))
        if want and (not isinstance(v, want) or (isinstance(v, bool) and rule["type"] != "boolean")):
            return f"{key} must be of type {rule['type']}"
        if "enum" in rule and v not in rule["enum"]:
            return f"{key} must be one of {rule['enum']}"
        if "minimum" in rule and v < rule["minimum"]:
            return f"{key} must be >= {rule['minimum']}"
        if "maximum" in rule and v > rule["maximum"]:
            return f"{key} must be <= {rule['maximum']}"
    return None


def _samplable(rule: dict) -> bool:
    return "enum" in rule or rule.get("type") == "boolean" or ("minimum" in rule and "maximum" in rule)


def _sample_value(rule: dict, rng: random.Random) -> Any:
    if "enum" in rule:
        return rng.choice(rule["enum"])
    if rule.get("type") == "boolean":
        return rng.random() < 0.5
    if rule.get("type") == "integer":
        return rng.randint(rule["minimum"], rule["maximum"])
    return rng.uniform(rule["minimum"], rule["maximum"])


class SchemaSpace(ProposalSpace):
    def __init__(self, props: dict):
        self.props = props

    def sample(self, rng: random.Random) -> tuple[dict, str]:
        return {k: _sample_value(r, rng) for k, r in self.props.items()}, "random configuration"

    def mutate(self, proposal: dict, rng: random.Random) -> tuple[dict, str]:
        key = rng.choice(sorted(self.props))
        out = dict(proposal)
        out[key] = _sample_value(self.props[key], rng)
        return out, f"{key}: {proposal.get(key)!r} -> {out[key]!r}"


def _load_evaluator(path: Path):
    spec = importlib.util.spec_from_file_location(f"aira_task_eval_{_sha256(path)[:12]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate


def evaluate_in_folder(
    *, task_dir: str, proposal: Any, seed: int, evaluator_sha: str, workdir: str | None = None
) -> dict:
    """The job function: run a folder's frozen evaluate.py on one proposal."""
    evaluator = Path(task_dir) / "evaluate.py"
    if _sha256(evaluator) != evaluator_sha:
        return {"status": "crashed", "error": f"{evaluator} changed since the run started (it is frozen)"}
    evaluate = _load_evaluator(evaluator)
    with tempfile.TemporaryDirectory(prefix="aira-task-", dir=workdir) as wd:
        if isinstance(proposal, dict) and isinstance(proposal.get("files"), dict):
            for name, text in proposal["files"].items():
                target = (Path(wd) / name).resolve()
                if Path(wd).resolve() not in target.parents:
                    return {"status": "invalid", "error": f"file {name!r} escapes the working directory"}
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        out = dict(evaluate(proposal, seed, wd))
    metric = out.get("metric")
    if "status" not in out:
        if metric is None:
            out["status"] = "crashed"
            out.setdefault("error", "evaluate() returned no metric")
        elif isinstance(metric, float) and not math.isfinite(metric):
            out["status"] = "diverged"
        else:
            out["status"] = "ok"
    return out
