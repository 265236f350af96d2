"""`aira runs export RUN --to tensorboard|mlflow`: the files written, read back.

The event file is read as TensorBoard reads it: TFRecord framing with its masked CRC-32C checks, and
each record decoded by Google's protobuf runtime against the `Event` / `Summary` field numbers, an
independent decoder of the hand-written encoding (skipped where protobuf is not installed). The MLflow
store is checked file by file against the journal.
"""

from __future__ import annotations

import json
import struct

import pytest

from aira.agents.journal import Journal
from aira.cli import main
from aira.report.tracking import crc32c
from aira.report.analysis import best_so_far, evaluated_in_order
from aira.report.data import load_run
from tests.report.conftest import make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("track") / "r"
    make_run(d)
    return d


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C
    assert crc32c(b"") == 0


def read_records(data: bytes) -> list[bytes]:
    def masked(b):
        crc = crc32c(b)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<Q", data, i)
        assert struct.unpack_from("<I", data, i + 8)[0] == masked(data[i:i + 8])
        payload = data[i + 12:i + 12 + n]
        assert struct.unpack_from("<I", data, i + 12 + n)[0] == masked(payload)
        out.append(payload)
        i += 16 + n
    return out


def event_class():
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="event_check.proto", package="check", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto
    value = f.message_type.add(name="Value")
    value.field.add(name="tag", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    value.field.add(name="simple_value", number=2, type=T.TYPE_FLOAT, label=T.LABEL_OPTIONAL)
    summary = f.message_type.add(name="Summary")
    summary.field.add(name="value", number=1, type=T.TYPE_MESSAGE, type_name=".check.Value", label=T.LABEL_REPEATED)
    ev = f.message_type.add(name="Event")
    ev.field.add(name="wall_time", number=1, type=T.TYPE_DOUBLE, label=T.LABEL_OPTIONAL)
    ev.field.add(name="step", number=2, type=T.TYPE_INT64, label=T.LABEL_OPTIONAL)
    ev.field.add(name="file_version", number=3, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    ev.field.add(name="summary", number=5, type=T.TYPE_MESSAGE, type_name=".check.Summary", label=T.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("check.Event"))


def test_tensorboard_event_file_holds_the_best_so_far_curves(run_dir, tmp_path, capsys):
    Event = event_class()
    out = tmp_path / "tb"
    assert main(["runs", "export", str(run_dir), "--to", "tensorboard", "--out", str(out)]) == 0
    assert f"tensorboard --logdir {out}" in capsys.readouterr().out
    (path,) = out.glob("events.out.tfevents.*")
    events = []
    for raw in read_records(path.read_bytes()):
        e = Event()
        e.ParseFromString(raw)
        events.append(e)
    assert events[0].file_version == "brain.Event:2"
    points: dict[str, list[tuple[int, float]]] = {}
    for e in events[1:]:
        (v,) = e.summary.value
        points.setdefault(v.tag, []).append((e.step, v.simple_value))
    run = load_run(run_dir)
    for agent in run.agents:
        key = agent.replace(":", "_").replace("#", "_")
        want = best_so_far(run.nodes, run.info, agent)
        assert points[f"best/{key}"] == [(i, pytest.approx(b, rel=1e-6)) for i, b in enumerate(want, 1)]
        scores = [n.metric for n in evaluated_in_order(run.nodes, agent)]
        assert [v for _, v in points[f"score/{key}"]] == [pytest.approx(s, rel=1e-6) for s in scores]


def test_mlflow_file_store_matches_the_run(run_dir, tmp_path, capsys):
    out = tmp_path / "ml"
    assert main(["runs", "export", str(run_dir), "--to", "mlflow", "--out", str(out)]) == 0
    assert f"--backend-store-uri {out / 'mlruns'}" in capsys.readouterr().out
    (exp,) = [p for p in (out / "mlruns").iterdir() if p.is_dir()]
    meta = dict(line.split(": ", 1) for line in (exp / "meta.yaml").read_text().splitlines())
    assert meta["name"] == "'aira'" and meta["experiment_id"] == f"'{exp.name}'"
    (r,) = [p for p in exp.iterdir() if p.is_dir()]
    rmeta = dict(line.split(": ", 1) for line in (r / "meta.yaml").read_text().splitlines())
    assert rmeta["run_id"] == f"'{r.name}'" and rmeta["status"] == "3" and rmeta["run_name"] == "'r'"
    summary = json.loads((run_dir / "summary.json").read_text())
    with Journal(run_dir, readonly=True) as j:
        greedy = [n for n in j.nodes() if n.agent == "greedy:offline#0"]
    rows = [line.split() for line in (r / "metrics" / "score" / "greedy_offline_0").read_text().splitlines()]
    assert [float(v) for _, v, _ in rows] == [n.metric for n in sorted(greedy, key=lambda n: n.finished_at)]
    assert [int(s) for _, _, s in rows] == list(range(1, len(greedy) + 1))
    assert [int(t) for t, _, _ in rows] == [int(n.finished_at * 1000) for n in sorted(greedy, key=lambda n: n.finished_at)]
    final = (r / "metrics" / "final" / "selection").read_text().split()
    assert float(final[1]) == summary["best"]["selection_metric"]
    assert (r / "params" / "agents").read_text() == "greedy:offline random:offline"
    assert (r / "tags" / "mlflow.runName").read_text() == "r"
    # a second export of the same run writes the same run id again, not a second run
    assert main(["runs", "export", str(run_dir), "--to", "mlflow", "--out", str(out)]) == 0
    assert [p.name for p in exp.iterdir() if p.is_dir()] == [r.name]


def test_export_bad_input_is_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["runs", "export", str(tmp_path), "--to", "wandb"])
    assert e.value.code == 2
    assert main(["runs", "export", str(tmp_path), "--to", "mlflow"]) == 2
    assert "no run at" in capsys.readouterr().err
