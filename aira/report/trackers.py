"""Live experiment tracking (`--track mlflow|tensorboard|wandb`): each finished evaluation as it lands, and
the run's summary at the end. The orchestrator calls these as listeners (`on_node`, `on_summary`, `close`);
it sits in a lower layer and never imports this module: the command layer builds the trackers.

What is logged, at step = the node's number in the journal (n0042 -> 42, stable across resumes):

    score/<agent>     the search score of a successful evaluation (reference runs: score/reference,
                      promotions: score/promote)
    best              the best candidate search score so far (the task's direction)
    seconds/<agent>   the evaluation's compute seconds
    failed/<agent>    1 for an evaluation that crashed, timed out, diverged or was killed

and at the end final/search, final/selection (the final pick's scores), evaluations, cost_usd, elapsed_s,
with the stop reason as a tag. Names keep letters, digits, `_ - . /` (aira.report.tracking.safe_key).

- mlflow: the `mlflow` package (`mlflow-skinny` is enough) with `MlflowClient`; by default a file store at
  RUN/mlruns (MLflow 3 calls the file store "maintenance mode" and asks for MLFLOW_ALLOW_FILE_STORE=true,
  which is set for this process when the URI is a local folder), else `--track-uri` (a server, sqlite:///...).
- tensorboard: no package needed, aira.report.tracking's event writer, appended record by record to one
  event file under RUN/tensorboard (or `--track-uri`).
- wandb: the `wandb` package, offline (files under RUN/wandb, `wandb sync` uploads them) unless the user
  configured W&B (WANDB_MODE or WANDB_API_KEY set).

`RUN/tracking.json` records the trackers and their ids (MLflow run id, event file, W&B run id), so a resume
continues the same tracked run. A tracker that fails mid-run is dropped by the orchestrator with one warning.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from pathlib import Path

from aira.errors import UsageError
from aira.fileio import write_atomic
from aira.report.tracking import event, record, safe_key

KINDS = ("mlflow", "tensorboard", "wandb")
STATE_FILE = "tracking.json"
PACKAGES = {"mlflow": ("mlflow", "mlflow-skinny"), "wandb": ("wandb", "wandb")}  # kind: (module, pip name)
FAILED = ("crashed", "timed-out", "diverged", "killed")


def parse_track(values: list[str] | None) -> list[str]:
    """`--track` values (repeatable, or comma lists) -> the trackers in order, each once; UsageError for an
    unknown one or a missing package, before anything runs."""
    kinds: list[str] = []
    for value in values or []:
        for k in str(value).split(","):
            k = k.strip().lower()
            if not k:
                continue
            if k not in KINDS:
                raise UsageError(f"unknown --track {k!r}: use {', '.join(KINDS)} (repeatable or a comma list)")
            if k not in kinds:
                kinds.append(k)
    for k in kinds:
        if k in PACKAGES and importlib.util.find_spec(PACKAGES[k][0]) is None:
            raise UsageError(f"--track {k} needs the {PACKAGES[k][0]} package: pip install {PACKAGES[k][1]}")
    return kinds


def _step(node) -> int:
    digits = "".join(c for c in node.id if c.isdigit())
    return int(digits) if digits else 0


class _Tracker:
    """Shared bookkeeping: the metrics of a node, the running best."""

    name = "tracker"

    def __init__(self, run_dir: Path, lower_is_better: bool, best: float | None):
        self.run_dir, self.lower, self.best = run_dir, lower_is_better, best
        self.finished = False

    def metrics(self, node) -> dict[str, float]:
        agent = node.operator if node.operator in ("reference", "promote") else node.agent
        key = safe_key(agent)
        out = {f"seconds/{key}": float(node.seconds)}
        status = getattr(node.status, "value", node.status)
        if status == "ok" and node.metric is not None:
            out[f"score/{key}"] = float(node.metric)
            if node.operator not in ("reference", "promote") and (
                    self.best is None or (node.metric < self.best if self.lower else node.metric > self.best)):
                self.best = float(node.metric)
        if status in FAILED:
            out[f"failed/{key}"] = 1.0
        if self.best is not None:
            out["best"] = self.best
        return out

    @staticmethod
    def finals(summary: dict) -> dict[str, float]:
        best = summary.get("best") or {}
        values = {"final/search": best.get("metric"), "final/selection": best.get("selection_metric"),
                  "evaluations": summary.get("evaluations"), "cost_usd": summary.get("cost_usd"),
                  "elapsed_s": summary.get("elapsed_s")}
        return {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}

    def state(self) -> dict:
        return {}


class MlflowTracker(_Tracker):
    name = "mlflow"

    def __init__(self, run_dir, lower_is_better, best, *, uri: str | None, run_id: str | None, params: dict):
        super().__init__(run_dir, lower_is_better, best)
        self.uri = uri or (run_dir / "mlruns").resolve().as_uri()
        if self.uri.startswith("file:") or "://" not in self.uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        if run_id:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            exp = self.client.get_experiment_by_name("aira")
            exp_id = exp.experiment_id if exp else self.client.create_experiment("aira")
            run = self.client.create_run(exp_id, run_name=run_dir.name,
                                         tags={"aira.run_dir": str(run_dir.resolve())})
            self.run_id = run.info.run_id
            for k, v in params.items():
                self.client.log_param(self.run_id, k, v)

    def on_node(self, node) -> None:
        ms = int((node.finished_at or time.time()) * 1000)
        for k, v in self.metrics(node).items():
            self.client.log_metric(self.run_id, k, v, timestamp=ms, step=_step(node))

    def on_summary(self, summary: dict) -> None:
        ms = int(time.time() * 1000)
        for k, v in self.finals(summary).items():
            self.client.log_metric(self.run_id, k, v, timestamp=ms, step=0)
        self.client.set_tag(self.run_id, "aira.stop_reason", summary.get("stop_reason") or "")
        self.client.set_terminated(self.run_id, "FINISHED")
        self.finished = True

    def close(self) -> None:
        if not self.finished:  # interrupted: a resume sets it running again
            self.client.set_terminated(self.run_id, "KILLED")

    def state(self) -> dict:
        return {"uri": self.uri, "run_id": self.run_id}


class TensorBoardTracker(_Tracker):
    name = "tensorboard"

    def __init__(self, run_dir, lower_is_better, best, *, uri: str | None, file: str | None):
        super().__init__(run_dir, lower_is_better, best)
        if file:
            self.path = Path(file)
        else:
            folder = Path(uri) if uri else run_dir / "tensorboard"
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / f"events.out.tfevents.{int(time.time())}.aira-{safe_key(run_dir.name)}"
        fresh = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = self.path.open("ab")
        if fresh:
            self._write(record(event(time.time(), file_version="brain.Event:2")))

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.f.flush()  # TensorBoard and a crash both see every whole record

    def on_node(self, node) -> None:
        t = node.finished_at or time.time()
        self._write(b"".join(record(event(t, _step(node), tag=k, value=v)) for k, v in self.metrics(node).items()))

    def on_summary(self, summary: dict) -> None:
        t = time.time()
        self._write(b"".join(record(event(t, 0, tag=k, value=v)) for k, v in self.finals(summary).items()))
        self.finished = True

    def close(self) -> None:
        self.f.close()

    def state(self) -> dict:
        return {"file": str(self.path)}


class WandbTracker(_Tracker):
    name = "wandb"

    def __init__(self, run_dir, lower_is_better, best, *, run_id: str | None, mode: str | None, params: dict):
        super().__init__(run_dir, lower_is_better, best)
        import wandb

        configured = os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")
        self.mode = mode or (None if configured else "offline")
        self.run_id = run_id or uuid.uuid4().hex[:16]
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "aira"), name=run_dir.name, id=self.run_id,
                              resume="allow", dir=str(run_dir), mode=self.mode, config=params,
                              settings=wandb.Settings(silent=True, console="off"))

    def on_node(self, node) -> None:
        self.run.log({"node": _step(node), **self.metrics(node)})

    def on_summary(self, summary: dict) -> None:
        for k, v in self.finals(summary).items():
            self.run.summary[k] = v
        self.run.summary["stop_reason"] = summary.get("stop_reason") or ""
        self.finished = True

    def close(self) -> None:
        self.run.finish(exit_code=0 if self.finished else 1)

    def state(self) -> dict:
        return {"run_id": self.run_id, "mode": self.mode}


def _best_so_far(run_dir: Path, lower: bool) -> float | None:
    from aira.agents.journal import Journal

    if not (run_dir / Journal.FILENAME).exists():
        return None
    with Journal(run_dir, readonly=True) as j:
        scores = [n.metric for n in j.nodes() if n.status.value == "ok" and n.metric is not None
                  and n.operator not in ("reference", "promote")]
    return (min if lower else max)(scores) if scores else None


def stored(run_dir: str | Path) -> dict:
    """RUN/tracking.json: {kind: its state} of the trackers the run has; {} when it has none."""
    path = Path(run_dir) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} cannot be read ({e}); remove it to track afresh") from None
    return data if isinstance(data, dict) else {}


def check_stored(run_dir: str | Path) -> list[str]:
    """The trackers a run folder records, after checking their packages are here (UsageError if not)."""
    have = list(stored(run_dir))
    for k in have:
        if k in PACKAGES and importlib.util.find_spec(PACKAGES[k][0]) is None:
            raise UsageError(f"{run_dir} is tracked with {k}: pip install {PACKAGES[k][1]} to resume it")
    return have


def make_trackers(run_dir: str | Path, kinds: list[str], *, uri: str | None, config, lower_is_better: bool,
                  warn=None) -> list:
    """The trackers for a run starting or resuming in `run_dir`: those RUN/tracking.json records (continued:
    same MLflow run, event file, W&B run) and the new `kinds`; their ids are written back to tracking.json.
    `config` is the RunConfig (its settings become the tracked run's parameters). A tracker that cannot
    start is left out with one warning (`warn`, default stderr): tracking never stops a search."""
    import sys

    warn = warn or (lambda line: print(f"aira: warning: {line}", file=sys.stderr))
    run_dir = Path(run_dir)
    have = stored(run_dir)
    params = {"task": config.task, "agents": " ".join(config.agents), "budget": config.budget.describe(),
              "seed": config.seed, "noise_seeds": config.noise_seeds}
    best = _best_so_far(run_dir, lower_is_better)
    out = []
    for k in list(have) + [k for k in kinds if k not in have]:
        s = have.get(k) or {}
        try:
            if k == "mlflow":
                out.append(MlflowTracker(run_dir, lower_is_better, best, uri=s.get("uri") or uri,
                                         run_id=s.get("run_id"), params=params))
            elif k == "tensorboard":
                out.append(TensorBoardTracker(run_dir, lower_is_better, best, uri=uri, file=s.get("file")))
            elif k == "wandb":
                out.append(WandbTracker(run_dir, lower_is_better, best, run_id=s.get("run_id"), mode=s.get("mode"),
                                        params=params))
        except Exception as e:  # noqa: BLE001 - a tracker that cannot start is off, the search goes on
            warn(f"tracking to {k} could not start ({type(e).__name__}: {e}); it is off for this run")
    if out:
        write_atomic(run_dir / STATE_FILE, json.dumps({**have, **{t.name: t.state() for t in out}}, indent=1))
    return out
