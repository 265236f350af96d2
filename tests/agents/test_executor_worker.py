"""The worker entry point: JSON in, JSON out, atomically; NaN survives the round trip."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from aira.agents.executors.worker import main, read_result, write_result
from aira.agents.types import Job, Result, Status


def test_worker_cli_writes_result_atomically(tmp_path):
    job = Job(id="w", fn="aira.agents.executors.probes:sleep", kwargs={"metric": 0.5})
    (tmp_path / "job.json").write_text(json.dumps(job.to_dict()))
    rc = subprocess.run([sys.executable, "-m", "aira.agents.executors.worker", str(tmp_path / "job.json"),
                         str(tmp_path / "result.json")], capture_output=True, timeout=30).returncode
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "result.json"]  # no tmp left
    r = read_result(tmp_path / "result.json")
    assert r.status == Status.OK and r.metric == 0.5 and r.seconds > 0


def test_nan_and_numpy_scalars_round_trip(tmp_path):
    import numpy as np

    write_result(tmp_path / "r.json", Result(status=Status.DIVERGED, metric=float("nan"),
                                             metrics={"loss": np.float32(1.5), "curve": np.arange(3)}))
    r = read_result(tmp_path / "r.json")
    assert r.status == Status.DIVERGED and math.isnan(r.metric)
    assert r.metrics == {"loss": 1.5, "curve": [0, 1, 2]}
    assert read_result(tmp_path / "missing.json") is None


def test_usage_line(capsys):
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
