"""Data-parallel pre-training under torchrun: two CPU processes on gloo, checkpoints, exact resume.

The interrupted run is simulated by deleting the step-20 checkpoint of a finished 20-step run: what a
resumed job sees is then exactly what a job killed between steps 10 and 20 leaves on disk.
"""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aira.cli import main
from aira.data.shards import prepare_text_data
from aira.errors import UsageError
from aira.train.checkpoint import load_checkpoint
from aira.train.ddp import PretrainConfig, _plan, pretrain, step_windows

ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "--pattern",
    "AMSW",
    "--preset",
    "tiny",
    "--budget",
    "20steps",
    "--batch-size",
    "4",
    "--seq-len",
    "32",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--ckpt-every",
    "10",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "aira",
        "train",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def byte_data(tmp_path_factory):
    rng = random.Random(0)
    words = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "runs", "far", "hills")
    root = tmp_path_factory.mktemp("data")
    (root / "corpus.txt").write_text(
        "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(1500))
    )
    return prepare_text_data(str(root / "corpus.txt"), tokenizer="bytes", cache_dir=root / "cache").root


@pytest.fixture(scope="module")
def straight(byte_data, tmp_path_factory):
    """One uninterrupted 20-step run on two processes, checkpoints at steps 10 and 20."""
    work = tmp_path_factory.mktemp("run")
    proc = _torchrun([*ARGS, "--data", str(byte_data), "--ckpt-dir", "ck", "--json", "r.json"], work)
    return work, json.loads((work / "r.json").read_text()), proc


@pytest.mark.slow
def test_two_processes_train_and_checkpoint(straight):
    work, result, proc = straight
    assert result["world_size"] == 2 and result["steps"] == 20 and result["tokens"] == 20 * 4 * 32
    assert len(result["losses"]) == 20 and np.mean(result["losses"][-3:]) < result["losses"][0] - 0.5
    assert "world_size: 2" in proc.stdout  # the summary, printed once (rank 0)
    assert proc.stdout.count("status: ok") == 1 and proc.stderr.count("step 20/20") == 1
    ck = load_checkpoint(work / "ck" / "step_00000020.pt")
    assert ck["step"] == 20 and ck["world_size"] == 2 and ck["pattern"] == "AMSW"
    assert len(ck["rng"]) == 2 and ck["optimizer"]["state"]
    assert (work / "ck" / "latest").read_text().strip() == "step_00000020.pt"


@pytest.mark.slow
def test_resume_on_two_processes_equals_the_uninterrupted_run(straight, byte_data):
    work, result, _ = straight
    ck = work / "ck2"
    ck.mkdir()
    shutil.copy(work / "ck" / "step_00000010.pt", ck)  # a job stopped between steps 10 and 20
    proc = _torchrun(
        [*ARGS, "--data", str(byte_data), "--ckpt-dir", str(ck), "--resume", "--json", "r2.json"], work
    )
    resumed = json.loads((work / "r2.json").read_text())
    assert "resumed from" in proc.stderr and resumed["steps_this_run"] == 10
    assert np.allclose(resumed["losses"], result["losses"], atol=1e-6, rtol=0)
    a = load_checkpoint(work / "ck" / "step_00000020.pt")["model"]
    b = load_checkpoint(ck / "step_00000020.pt")["model"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_the_run_does_not_depend_on_the_number_of_processes(straight, byte_data):
    # Each step's global batch is fixed by (seed, step); ranks split it. One process, same numbers.
    _, result, _ = straight
    one = pretrain(
        PretrainConfig(
            pattern="AMSW",
            preset="tiny",
            data=str(byte_data),
            budget="20steps",
            batch_size=4,
            seq_len=32,
            threads=1,
            eval_tokens=0,
        ),
        log=lambda *_: None,
    )
    assert np.allclose(one.losses, result["losses"], atol=1e-4, rtol=0)


def test_ranks_read_distinct_slices_of_a_fixed_global_batch():
    a = step_windows(10_000, 32, 8, seed=0, step=5)
    assert np.array_equal(a, step_windows(10_000, 32, 8, seed=0, step=5))
    assert not np.array_equal(a, step_windows(10_000, 32, 8, seed=0, step=6))
    assert not np.array_equal(a, step_windows(10_000, 32, 8, seed=1, step=5))
    assert a.min() >= 0 and a.max() <= 10_000 - 32 - 1
    assert _plan(PretrainConfig(pattern="A", data="x", batch_size=8, micro_batch=2), None, 2) == (8, 4, 2, 2)
    with pytest.raises(UsageError, match="multiple of the number of processes"):
        _plan(PretrainConfig(pattern="A", data="x", batch_size=6), None, 4)
    with pytest.raises(UsageError, match="must divide"):
        _plan(PretrainConfig(pattern="A", data="x", batch_size=8, micro_batch=3), None, 2)


def test_bad_pretraining_input_is_one_line(tmp_path, byte_data, capsys):
    for argv, message in [
        (["--ckpt-dir", str(tmp_path)], "needs --data"),
        (["--data", str(byte_data), "--budget", "60s"], "step or token budget"),
        (["--data", str(byte_data), "--resume"], "--resume needs --ckpt-dir"),
        (["--data", str(tmp_path / "missing-corpus"), "--budget", "2steps"], "unknown corpus"),
    ]:
        assert main(["train", "--pattern", "AM", "--threads", "1", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bf16 autocast, nccl)")
def test_cuda_single_process_run(byte_data):
    r = pretrain(
        PretrainConfig(
            pattern="AMSW",
            preset="tiny",
            data=str(byte_data),
            budget="5steps",
            batch_size=4,
            seq_len=32,
            device="cuda",
        ),
        log=lambda *_: None,
    )
    assert r.dtype == "bf16" and all(np.isfinite(r.losses))
