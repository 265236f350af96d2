"""Live experiment tracking (`--track`), read back with the trackers' own readers: MLflow's client on its file
store, TensorBoard's EventAccumulator on the event file, and W&B's offline run file decoded with wandb's
protobuf classes. Each skips with a reason where its package is missing.
"""

from __future__ import annotations

import json
import struct

import pytest

from aira.agents.journal import Journal
from aira.agents.runfolder import RunConfig
from aira.agents.types import Status
from aira.cli import main
from aira.tasks.runs import run


def _start(d, *extra, budget="5evals"):
    argv = ["runs", "start", "--task", "synthetic", "--executor", "inline", "--noise-seeds", "1", "--budget", budget,
            "--agents", "greedy:offline", "random:offline", "--out", str(d), "--quiet", *extra]
    assert main(argv) == 0


def _scores(d, agent):
    with Journal(d, readonly=True) as j:
        return [(int(n.id[1:]), n.metric) for n in j.nodes()
                if n.agent == agent and n.status == Status.OK and n.metric is not None]


def same(got, want, rel=1e-9):
    """(step, value) lists: the same steps, values equal within `rel` (TensorBoard keeps float32)."""
    assert [s for s, _ in got] == [s for s, _ in want] and want
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=rel)
    return True


def _best(d):
    with Journal(d, readonly=True) as j:
        ok = sorted((n for n in j.nodes() if n.status == Status.OK and n.operator != "reference"),
                    key=lambda n: n.finished_at)
    best, out = None, []
    for n in ok:
        best = n.metric if best is None else max(best, n.metric)
        out.append((int(n.id[1:]), best))
    return sorted(out)


def test_mlflow_file_store_holds_every_evaluation_and_a_resume_continues_the_same_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="pip install mlflow-skinny")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    d = tmp_path / "r"
    _start(d, "--track", "mlflow", budget="4evals")
    state = json.loads((d / "tracking.json").read_text())["mlflow"]
    assert state["uri"] == (d / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=state["uri"])
    r = client.get_run(state["run_id"])
    assert r.info.status == "FINISHED" and r.info.run_name == "r"
    assert r.data.params["agents"] == "greedy:offline random:offline" and r.data.params["task"] == "synthetic"

    def history(key):
        return sorted((m.step, m.value) for m in client.get_metric_history(state["run_id"], key))

    assert same(history("score/greedy_offline_0"), _scores(d, "greedy:offline#0"))
    assert same(history("best"), _best(d))
    summary = json.loads((d / "summary.json").read_text())
    assert history("evaluations") == [(0, 4.0)]
    assert history("final/selection") == [(0, pytest.approx(summary["best"]["selection_metric"]))]

    assert main(["runs", "resume", str(d), "--add", "2evals", "--quiet"]) == 0
    assert json.loads((d / "tracking.json").read_text())["mlflow"] == state  # the same run, continued
    assert client.get_run(state["run_id"]).info.status == "FINISHED"
    assert len(client.search_runs([r.info.experiment_id])) == 1
    assert same(history("score/greedy_offline_0"), _scores(d, "greedy:offline#0"))
    assert same(history("best"), _best(d))
    assert [v for _, v in history("evaluations")] == [4.0, 6.0]


def test_tensorboard_event_file_is_written_live_and_appended_on_resume(tmp_path):
    pytest.importorskip("tensorboard", reason="pip install tensorboard (only the test reads with it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = tmp_path / "r"
    _start(d, "--track", "tensorboard", budget="4evals")
    state = json.loads((d / "tracking.json").read_text())["tensorboard"]

    def scalars():
        acc = EventAccumulator(str(d / "tensorboard"))
        acc.Reload()
        return {tag: sorted((e.step, e.value) for e in acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}

    first = scalars()
    assert same(first["score/random_offline_1"], _scores(d, "random:offline#1"), rel=1e-6)
    assert same(first["best"], _best(d), rel=1e-6)
    assert first["evaluations"] == [(0, 4.0)]
    assert main(["runs", "resume", str(d), "--add", "2evals", "--quiet"]) == 0
    assert json.loads((d / "tracking.json").read_text())["tensorboard"] == state
    assert [p.name for p in (d / "tensorboard").iterdir()] == [state["file"].rsplit("/", 1)[1]]
    after = scalars()
    assert same(after["score/random_offline_1"], _scores(d, "random:offline#1"), rel=1e-6)
    assert same(after["best"], _best(d), rel=1e-6)


def _wandb_records(path) -> list[bytes]:
    """The records of a W&B run file: a 7-byte header (":W&B", magic, version), then LevelDB-log framing in
    32 KiB blocks (checksum, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, out, buf = 7, [], b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack_from("<IHB", data, pos)
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind == 1:
            out.append(chunk)
        elif kind in (2, 3):
            buf = chunk if kind == 2 else buf + chunk
        elif kind == 4:
            out.append(buf + chunk)
    return out


def test_wandb_offline_run_holds_every_evaluation(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install wandb")
    from wandb.proto import wandb_internal_pb2 as pb

    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "r"
    _start(d, "--track", "wandb", budget="4evals")
    state = json.loads((d / "tracking.json").read_text())["wandb"]
    assert state["mode"] == "offline"
    (path,) = (d / "wandb").glob(f"offline-run-*-{state['run_id']}/run-{state['run_id']}.wandb")
    rows, summary = [], {}
    for raw in _wandb_records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
    got = sorted((r["node"], r["score/greedy_offline_0"]) for r in rows if "score/greedy_offline_0" in r)
    assert same(got, _scores(d, "greedy:offline#0"))
    assert summary["evaluations"] == 4.0 and summary["stop_reason"].startswith("evaluation budget")


class Broken:
    name = "broken"

    def __init__(self):
        self.calls = 0

    def on_node(self, node):
        self.calls += 1
        raise ConnectionError("tracking server went away")


def test_a_failing_tracker_is_dropped_with_one_warning_and_the_search_goes_on(tmp_path, capsys):
    broken = Broken()
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(tmp_path / "r"), budget="5evals",
                    noise_seeds=0, executor="inline", quiet=True)
    s = run(cfg, listeners=[broken])
    assert s.evaluations == 5 and broken.calls == 1
    err = capsys.readouterr().err
    assert err.count("warning: tracking to broken failed (ConnectionError: tracking server went away); it is "
                     "off for the rest of this run") == 1


def test_bad_or_missing_tracker_is_one_line_and_exit_2_before_the_run(tmp_path, capsys, monkeypatch):
    import importlib.util

    assert main(["compose", "run", "--track", "neptune", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip() == ("aira: error: unknown --track 'neptune': use mlflow, tensorboard, "
                                               "wandb (repeatable or a comma list)")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["runs", "start", "--task", "synthetic", "--track", "tensorboard,wandb", "--out",
                 str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.strip() == "aira: error: --track wandb needs the wandb package: pip install wandb"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
