"""A run's curves for experiment trackers, written offline as files: TensorBoard event files and an
MLflow file store (`aira runs export RUN --to tensorboard|mlflow`). Neither package is needed.

Scalars, per agent, at step = the agent's evaluation count (the report's best-so-far curve):

    score/<agent>       the search score of each successful evaluation
    best/<agent>        the best search score so far (from its first success on)
    compute_s/<agent>   the agent's evaluation seconds so far

with each point's wall time the evaluation's end. MLflow also gets the run's settings as params (task,
agents, budget, seed, noise seeds) and its summary as final metrics (final pick's scores, evaluations,
cost). Names keep letters, digits, `_ - . /`; anything else (an agent's `:` and `#`) becomes `_`.

TensorBoard's format: a TFRecord file (each record: length, masked CRC-32C of the length, data, masked
CRC-32C of the data) of `Event` protocol buffers; the first carries `file_version: "brain.Event:2"`, the
others a `Summary` of one `simple_value`. The few protobuf fields are encoded here by hand (below).
MLflow's file store: `mlruns/<experiment>/meta.yaml`, `mlruns/<experiment>/<run id>/{meta.yaml,
metrics/<key>, params/<key>, tags/<key>}`, a metric file holding `<ms timestamp> <value> <step>` lines.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from aira.errors import UsageError
from aira.report.analysis import curve_points, evaluated_in_order
from aira.report.data import RunData, load_run

TARGETS = ("tensorboard", "mlflow")


@dataclass(frozen=True, kw_only=True)
class Scalar:
    tag: str
    step: int
    value: float
    wall_time: float  # seconds since the epoch


def safe_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./]", "_", name)


def scalars(run: RunData) -> list[Scalar]:
    """The run's per-agent curves (see the module docstring), agent by agent, step by step."""
    out = []
    for agent in run.agents:
        key = safe_key(agent)
        nodes = evaluated_in_order(run.nodes, agent)
        for n, p in zip(nodes, curve_points(run.nodes, run.info, agent)):
            t = n.finished_at if n.finished_at is not None else n.created_at
            if n.status.value == "ok" and n.metric is not None:
                out.append(Scalar(tag=f"score/{key}", step=p.evaluation, value=float(n.metric), wall_time=t))
            if p.best is not None:
                out.append(Scalar(tag=f"best/{key}", step=p.evaluation, value=float(p.best), wall_time=t))
            out.append(Scalar(tag=f"compute_s/{key}", step=p.evaluation, value=p.compute_s, wall_time=t))
    return out


def _start_time(run: RunData) -> float:
    return min((n.created_at for n in run.nodes), default=0.0)


# ---------------------------------------------------------------- TensorBoard


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord files."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    crc = crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + _masked(length) + data + _masked(data)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def event(wall_time: float, step: int = 0, *, file_version: str | None = None,
          tag: str | None = None, value: float | None = None) -> bytes:
    """An `Event` message: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5
    (`Summary`: value = 1 repeated, `Value`: tag = 1 (string), simple_value = 2 (float))."""
    msg = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        msg += _field(3, 2, file_version.encode())
    if tag is not None:
        val = _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value))
        msg += _field(5, 2, _field(1, 2, val))
    return msg


def write_tensorboard(run: RunData, out: Path) -> Path:
    """One event file in `out`, named after the run's start; returns its path."""
    start = _start_time(run)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"events.out.tfevents.{int(start)}.aira-{safe_key(run.run_dir.name)}"
    data = [record(event(start, file_version="brain.Event:2"))]
    data += [record(event(s.wall_time, s.step, tag=s.tag, value=s.value)) for s in scalars(run)]
    path.write_bytes(b"".join(data))
    return path


# ---------------------------------------------------------------- MLflow


def _yaml(d: dict) -> str:
    def v(x):
        if x is None:
            return "null"
        if isinstance(x, str):
            return "''" if x == "" else "'" + x.replace("'", "''") + "'"
        return "[]" if x == [] else str(x)

    return "".join(f"{k}: {v(x)}\n" for k, x in d.items())


def write_mlflow(run: RunData, out: Path, *, experiment: str = "aira") -> Path:
    """The run as one MLflow run in a file store at `out/mlruns` (experiment `experiment`, id from its name);
    returns the run's folder. Open with `mlflow ui --backend-store-uri OUT/mlruns`."""
    store = out / "mlruns"
    exp_id = str(int(hashlib.sha256(experiment.encode()).hexdigest()[:12], 16))
    exp = store / exp_id
    start_ms = int(_start_time(run) * 1000)
    if not (exp / "meta.yaml").is_file():
        exp.mkdir(parents=True, exist_ok=True)
        (exp / "meta.yaml").write_text(_yaml({
            "artifact_location": (exp.resolve()).as_uri(), "creation_time": start_ms, "experiment_id": exp_id,
            "last_update_time": start_ms, "lifecycle_stage": "active", "name": experiment}))
    run_id = hashlib.sha256(str(run.run_dir.resolve()).encode()).hexdigest()[:32]
    d = exp / run_id
    ends = [n.finished_at for n in run.nodes if n.finished_at is not None]
    finished = run.summary is not None
    for sub in ("metrics", "params", "tags", "artifacts"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "meta.yaml").write_text(_yaml({
        "artifact_uri": (d / "artifacts").resolve().as_uri(), "end_time": int(max(ends, default=0) * 1000)
        if finished else None, "entry_point_name": "", "experiment_id": exp_id, "lifecycle_stage": "active",
        "run_id": run_id, "run_name": run.run_dir.name, "run_uuid": run_id, "source_name": "", "source_type": 4,
        "source_version": "", "start_time": start_ms, "status": 3 if finished else 1, "tags": [],
        "user_id": "aira"}))
    lines: dict[str, list[str]] = {}
    for s in scalars(run):
        lines.setdefault(s.tag, []).append(f"{int(s.wall_time * 1000)} {s.value!r} {s.step}")
    summary = run.summary or {}
    best = summary.get("best") or {}
    end_ms = int(max(ends, default=_start_time(run)) * 1000)
    finals = {"final/search": best.get("metric"), "final/selection": best.get("selection_metric"),
              "evaluations": summary.get("evaluations"), "cost_usd": summary.get("cost_usd"),
              "elapsed_s": summary.get("elapsed_s")}
    for key, value in finals.items():
        if isinstance(value, (int, float)):
            lines[key] = [f"{end_ms} {float(value)!r} 0"]
    for tag, rows in lines.items():
        path = d / "metrics" / tag
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n")
    cfg = run.config
    params = {"task": cfg.get("task"), "agents": " ".join(cfg.get("agents", [])),
              "budget": (cfg.get("resolved") or {}).get("budget"), "seed": cfg.get("seed"),
              "noise_seeds": cfg.get("noise_seeds"), "lower_is_better": run.info.lower_is_better}
    for key, value in params.items():
        if value is not None:
            (d / "params" / key).write_text(str(value))
    tags = {"mlflow.runName": run.run_dir.name, "mlflow.source.name": "aira", "aira.run_dir":
            str(run.run_dir.resolve()), "aira.stop_reason": summary.get("stop_reason") or "not finished"}
    for key, value in tags.items():
        (d / "tags" / key).write_text(value)
    return d


def export_run(run_dir: str | Path, to: str, out: str | Path) -> Path:
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    run = load_run(run_dir)
    if not run.nodes:
        raise UsageError(f"{run_dir} has no journal nodes to export")
    return (write_tensorboard if to == "tensorboard" else write_mlflow)(run, Path(out))
