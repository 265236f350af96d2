"""The sandbox's pieces without namespaces: environment, read-only data, classification, refusal."""

from __future__ import annotations

import os
import signal
import stat
import sys

import pytest

from aira.agents import sandbox
from aira.agents.sandbox import DATA_DIR, build_env, classify, prepare_workdir, run_sandboxed
from aira.agents.types import Status
from aira.errors import UsageError


def test_env_is_rebuilt_from_the_allow_list(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    monkeypatch.setenv("MY_SECRET_THING", "x")
    monkeypatch.setenv("GH_TOKEN", "t")
    monkeypatch.setenv("RANDOM_SETTING", "r")
    env = build_env(str(tmp_path), sandbox.DEFAULT_ENV_ALLOW, {"CUDA_VISIBLE_DEVICES": "1",
                                                               "WANDB_API_KEY": "k"})
    assert env["OMP_NUM_THREADS"] == "3" and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["HOME"] == str(tmp_path) and env["PYTHONPATH"] == sandbox.AIRA_ROOT
    assert not {"OPENAI_API_KEY", "MY_SECRET_THING", "GH_TOKEN", "RANDOM_SETTING", "WANDB_API_KEY"} & set(env)
    assert "RANDOM_SETTING" in build_env(str(tmp_path), ["RANDOM_*"])
    assert "GH_TOKEN" not in build_env(str(tmp_path), ["*"])


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_prepare_workdir_gives_the_workdir_away_but_not_the_data(tmp_path):
    (tmp_path / "src").mkdir()
    train = tmp_path / "src" / "train.txt"
    train.write_text("a")
    os.chmod(train, 0o644)  # world-readable, not world-writable: hard-linked
    private = tmp_path / "src" / "val.txt"
    private.write_text("b")
    os.chmod(private, 0o600)  # the sandbox could not read it: copied 0444
    (tmp_path / "work" / "sub").mkdir(parents=True)
    wd = prepare_workdir(tmp_path / "work", [train, private, tmp_path / "src"], uid=212345, gid=212345)
    data = wd / DATA_DIR
    assert os.stat(wd).st_uid == 212345 and os.stat(wd / "sub").st_uid == 212345
    assert stat.S_IMODE(os.stat(wd).st_mode) == 0o700
    assert os.stat(data).st_uid == 0 and stat.S_IMODE(os.stat(data).st_mode) == 0o555
    assert os.stat(data / "train.txt").st_ino == os.stat(train).st_ino
    assert stat.S_IMODE(os.stat(data / "val.txt").st_mode) == 0o444 and (data / "val.txt").read_text() == "b"
    assert stat.S_IMODE(os.stat(data / "src").st_mode) == 0o555
    assert (data / "src" / "val.txt").read_text() == "b"
    assert stat.S_IMODE(os.stat(train).st_mode) == 0o644  # the original is untouched
    prepare_workdir(wd, [train])  # idempotent: run again over an existing data folder
    with pytest.raises(UsageError, match="does not exist"):
        prepare_workdir(wd, [tmp_path / "nope"])


@pytest.mark.parametrize("rc, timed_out, stderr, cpu, expect", [
    (0, False, "", 0, (Status.OK, "")),
    (1, False, "MemoryError", 0, (Status.KILLED, "memory limit")),
    (-signal.SIGXCPU, False, "", 0, (Status.KILLED, "cpu time")),
    (-signal.SIGKILL, True, "", 2.5, (Status.KILLED, "cpu time")),
    (1, False, "OSError: [Errno 27] File too large", 0, (Status.KILLED, "file size")),
    (1, True, "BlockingIOError: [Errno 11] Resource temporarily unavailable", 0,
     (Status.KILLED, "process limit")),
    (-signal.SIGTERM, True, "", 0, (Status.TIMED_OUT, "wall-clock limit")),
    (1, False, "OSError: [Errno 101] Network is unreachable", 0, (Status.CRASHED, "network disabled")),
    (1, False, "PermissionError: [Errno 13] Permission denied: '/x'", 0,
     (Status.CRASHED, "permission denied")),
    (97, False, "sandbox setup failed: mount /tmp", 0, (Status.CRASHED, "sandbox setup failed")),
    (2, False, "ValueError: bad", 0, (Status.CRASHED, "")),
])
def test_classify(rc, timed_out, stderr, cpu, expect):
    assert classify(rc, timed_out=timed_out, stderr=stderr, cpu_seconds=cpu, cpu_s=2) == expect


def test_without_isolation_it_refuses_unless_unsafe(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "isolation_mode", lambda: None)
    with pytest.raises(UsageError, match="--unsafe-no-sandbox"):
        run_sandboxed([sys.executable, "-c", "pass"], workdir=tmp_path, timeout_s=5)
    r = run_sandboxed([sys.executable, "-c", "print('hi')"], workdir=tmp_path, timeout_s=5, allow_unsafe=True)
    assert r.status == Status.OK and r.stdout_tail == "hi"
    assert not r.isolated and "UNSAFE" in r.violation
    with pytest.raises(UsageError, match="empty command"):
        run_sandboxed([], workdir=tmp_path, allow_unsafe=True)


def test_line_relay_hands_over_complete_new_lines_only(tmp_path):
    from aira.agents.sandbox import _LineRelay

    f = tmp_path / "out"
    f.write_bytes(b"")
    got = []
    relay = _LineRelay(f, got.append)
    relay.pump()
    assert got == []
    with open(f, "ab") as fh:
        fh.write(b"one\ntw")
    relay.pump()
    assert got == ["one"]  # "tw" is not a line yet
    with open(f, "ab") as fh:
        fh.write(b"o\n\n" + b"".join(b"line %d\n" % i for i in range(30)) + b"x" * 1000 + b"\n")
    relay.pump()
    # at most the last 20 lines per call (saying how many were left out), each cut to 300 characters;
    # blank lines are skipped
    assert got[1:3] == ["(13 lines not shown)", "line 11"] and got[-2:] == ["line 29", "x" * 300]
    assert len(got) == 22
    relay.pump()
    assert len(got) == 22  # nothing new
    relay.path = tmp_path / "gone"
    relay.pump()  # an unreadable file is not an error
