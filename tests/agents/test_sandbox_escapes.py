"""What a careless or hostile proposal would try, each contained and reported with a clear status.

Needs root (network + mount namespaces and a per-run uid); elsewhere these tests skip with the reason.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from aira.agents.executors.proc import pids_of_uid
from aira.agents.sandbox import isolation_mode, run_sandboxed
from aira.agents.types import Status

pytestmark = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or isolation_mode() != "root",
    reason="full sandbox needs root with network/mount namespaces (unshare)")


def run_py(code: str, workdir: Path, **kw):
    kw.setdefault("timeout_s", 3.0)
    return run_sandboxed([sys.executable, "-c", textwrap.dedent(code)], workdir=workdir, **kw)


@pytest.fixture
def open_dir():
    """A folder the sandbox uid may cross (0711) but whose files it does not own."""
    d = Path(tempfile.mkdtemp(prefix="aira-sbx-test-"))
    os.chmod(d, 0o711)
    yield d
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def test_ok_runs_as_own_uid_in_workdir(tmp_path):
    r = run_py("import os; print(os.getuid(), os.getcwd()); open('out.txt', 'w').write('7')", tmp_path / "w")
    assert r.status == Status.OK and r.returncode == 0, r
    uid, cwd = r.stdout_tail.split()
    assert int(uid) == r.uid and r.uid >= 200_000
    assert cwd == str((tmp_path / "w").resolve())
    assert (tmp_path / "w" / "out.txt").read_text() == "7"  # predictions come back to the harness


def test_output_is_relayed_while_the_command_runs(tmp_path):
    seen = []
    code = "import time; print('started', flush=True); time.sleep(2.0); print('finished', flush=True)"
    r = run_py(code, tmp_path / "w", on_output=lambda line: seen.append((line, time.monotonic())),
               output_every_s=0.2)
    end = time.monotonic()
    assert r.status == Status.OK and [line for line, _ in seen] == ["started", "finished"]
    assert end - seen[0][1] > 1.0  # "started" arrived while the command was still sleeping


def test_a_uid_without_a_passwd_entry_still_has_a_user_name(tmp_path):
    # torch.compile (inductor's cache folder) calls getpass.getuser(); the per-run uid has no passwd
    # entry, so without USER/LOGNAME a compiled model failed in the sandbox on a GPU machine
    code = """
    import getpass, os, pwd
    try:
        pwd.getpwuid(os.getuid())
        print("has-entry", getpass.getuser())
    except KeyError:
        print("no-entry", getpass.getuser())
    """
    r = run_py(code, tmp_path / "w")
    assert r.status == Status.OK and r.returncode == 0, r
    assert r.stdout_tail.split() == ["no-entry", "aira-sandbox"]


def test_socket_to_localhost_fails_and_nothing_arrives(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    r = run_py(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)", tmp_path)
    assert r.status == Status.CRASHED and r.violation == "network disabled", r
    assert "Network is unreachable" in r.stderr_tail
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()


def test_external_address_and_dns_fail_at_once(tmp_path):
    code = """
    import errno, socket, time
    t = time.time()
    try:
        socket.create_connection(('1.1.1.1', 53), timeout=5)
    except OSError as e:
        print('connect', e.errno == errno.ENETUNREACH, round(time.time() - t, 2))
    try:
        socket.getaddrinfo('example.com', 443)
    except OSError as e:
        print('dns failed')
    socket.create_connection(('8.8.8.8', 443), timeout=5)
    """
    r = run_py(code, tmp_path)
    lines = r.stdout_tail.splitlines()
    assert lines[0].startswith("connect True"), r  # no route: refused before any packet is sent
    assert float(lines[0].split()[-1]) < 0.5
    assert lines[1] == "dns failed"
    assert r.status == Status.CRASHED and r.violation == "network disabled"


def test_api_keys_never_reach_the_child(tmp_path, monkeypatch):
    monkeypatch.setenv("FOO_API_KEY", "sk-fake")
    monkeypatch.setenv("HF_TOKEN", "hf-fake")
    monkeypatch.setenv("AIRA_HARMLESS", "1")
    r = run_py("import os, json; print(json.dumps(dict(os.environ)))", tmp_path,
               env_allow=["*"])  # even an allow-everything list keeps secrets out
    import json

    env = json.loads(r.stdout_tail)
    assert "FOO_API_KEY" not in env and "HF_TOKEN" not in env
    assert env["AIRA_HARMLESS"] == "1"
    assert env["HOME"] == str(tmp_path.resolve())
    r = run_py("import os; print(sorted(os.environ))", tmp_path)  # the default allow-list
    assert "AIRA_HARMLESS" not in r.stdout_tail and "FOO_API_KEY" not in r.stdout_tail


def test_labels_outside_are_out_of_reach(tmp_path, open_dir):
    hidden_in_tmp = tmp_path / "labels.txt"
    hidden_in_tmp.write_text("1 0 1\n")
    secret = open_dir / "labels.txt"  # visible path, but 0600 and ours
    secret.write_text("1 0 1\n")
    os.chmod(secret, 0o600)
    r = run_py(f"open({str(hidden_in_tmp)!r}).read()", tmp_path / "w")
    assert r.status == Status.CRASHED and "FileNotFoundError" in r.stderr_tail  # private /tmp
    r = run_py(f"open({str(secret)!r}).read()", tmp_path / "w", private_tmp=False)
    assert r.status == Status.CRASHED and r.violation == "permission denied", r


def test_writes_outside_the_workdir_fail(tmp_path, open_dir):
    data = tmp_path / "train.txt"
    data.write_text("x y\n")
    target = open_dir / "evil.txt"
    code = f"""
    import os
    for path in [{str(target)!r}, 'data/train.txt', 'data/new.txt']:
        try:
            open(path, 'a').write('pwned')
            print('wrote', path)
        except OSError as e:
            print('denied', path, type(e).__name__)
    try:
        os.remove('data/train.txt')
    except OSError as e:
        print('denied rm', type(e).__name__)
    open('/tmp/scratch', 'w').write('private tmp is fine')
    open({str(target)!r}, 'w')
    """
    r = run_py(code, tmp_path / "w", readonly_paths=[data], private_tmp=False)
    assert r.status == Status.CRASHED and r.violation == "permission denied", r
    out = r.stdout_tail
    assert "wrote" not in out and out.count("denied") == 4, out
    assert not target.exists()
    assert (tmp_path / "w" / "data" / "train.txt").read_text() == "x y\n"
    assert data.read_text() == "x y\n"


def test_fork_bomb_is_bounded_and_cleaned_up(tmp_path):
    r = run_py("import os\nwhile True:\n    os.fork()\n", tmp_path, max_procs=32, timeout_s=2.0, mem_mb=512)
    assert r.status in (Status.KILLED, Status.CRASHED, Status.TIMED_OUT), r
    assert r.violation == "process limit", r
    assert pids_of_uid(r.uid) == []  # not one process of that run is left


def test_allocating_100_gb_is_a_memory_kill(tmp_path):
    r = run_py("x = bytearray(100 * 2**30)", tmp_path, mem_mb=512)
    assert r.status == Status.KILLED and r.violation == "memory limit", r
    assert "MemoryError" in r.stderr_tail


def test_sleeping_forever_times_out(tmp_path):
    r = run_py("import time\ntime.sleep(1000)", tmp_path, timeout_s=1.0)
    assert r.status == Status.TIMED_OUT and r.violation == "wall-clock limit"
    assert r.seconds >= 1.0  # stopped at its limit, not before


def test_killing_the_parent_cannot_touch_the_harness(tmp_path):
    code = """
    import os, signal
    try:
        os.kill(-1, signal.SIGKILL)  # everything it may signal: only its own uid's processes
    except ProcessLookupError:
        pass
    os.kill(os.getppid(), signal.SIGKILL)
    """
    r = run_py(code, tmp_path)
    assert os.getppid() > 0  # we (the harness) are alive to assert this
    # kill(-1) reached its own processes only (itself among them, or it survived to the next line);
    # the kill of its parent is a contract breach, whatever the result would have been
    assert r.status == Status.CRASHED and r.violation.startswith("contract breach"), r


def test_cpu_time_limit(tmp_path):
    r = run_py("while True: pass", tmp_path, cpu_s=1, timeout_s=5.0)
    assert r.status == Status.KILLED and r.violation == "cpu time", r


def test_file_size_limit(tmp_path):
    r = run_py("open('big', 'wb').write(b'0' * (5 * 2**20))", tmp_path, max_file_mb=1)
    assert r.status == Status.KILLED and r.violation == "file size", r
    assert (tmp_path / "big").stat().st_size <= 2**20


def test_setsid_grandchild_is_killed_with_the_run(tmp_path):
    code = """
    import os, subprocess, sys
    g = subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(60)'],
                         start_new_session=True)
    open('g.pid', 'w').write(str(g.pid))
    """
    r = run_py(code, tmp_path)
    assert r.status == Status.OK, r
    pid = int((tmp_path / "g.pid").read_text())
    assert pids_of_uid(r.uid) == []
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_masked_paths_read_as_empty_even_inside_the_venv(tmp_path, open_dir):
    # held-out data the sandbox uid could otherwise read: a world-readable folder and file, and a
    # package file inside the interpreter's prefix, which the sandbox binds back read-only
    secret_dir = open_dir / "val"
    secret_dir.mkdir()
    (secret_dir / "val.txt").write_text("the validation text")
    os.chmod(secret_dir, 0o755)
    os.chmod(secret_dir / "val.txt", 0o644)
    (open_dir / "heldout.txt").write_text("held-out text")
    os.chmod(open_dir / "heldout.txt", 0o644)
    in_venv = Path(socket.__file__).parent / "json" / "decoder.py"  # a file in the bound-back prefix
    code = f"""
    import os
    print(sorted(os.listdir({str(secret_dir)!r})), repr(open({str(open_dir / 'heldout.txt')!r}).read()),
          len(open({str(in_venv)!r}).read()))
    """
    seen = run_py(code, tmp_path / "a", private_tmp=False)  # open_dir is under /tmp
    assert seen.status == Status.OK and "['val.txt'] 'held-out text'" in seen.stdout_tail, seen
    r = run_py(code, tmp_path / "b", private_tmp=False,
               masked=[secret_dir, open_dir / "heldout.txt", in_venv])
    assert r.status == Status.OK, r
    assert r.stdout_tail.split() == ["[]", "''", "0"]
    assert (secret_dir / "val.txt").read_text() == "the validation text"  # ours, untouched


def test_a_mask_that_would_hide_the_workdir_is_refused(tmp_path):
    from aira.errors import UsageError

    with pytest.raises(UsageError, match="cannot hide"):
        run_py("pass", tmp_path / "w", masked=[tmp_path])


def test_signalling_the_harness_is_a_contract_breach_even_when_the_error_is_caught(tmp_path):
    code = """
    import os, signal
    for target in (os.getppid(), -os.getpgid(os.getppid())):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    print('survived', flush=True)
    """
    r = run_py(code, tmp_path)
    assert os.getppid() > 0
    assert r.status == Status.CRASHED and r.violation.startswith("contract breach"), r
    assert "survived" not in r.stdout_tail


def test_a_probe_and_signals_to_its_own_processes_are_no_breach(tmp_path):
    code = """
    import os, signal, subprocess, sys
    try:
        os.kill(os.getppid(), 0)  # is the parent alive? (EPERM: it is, and it is not ours)
    except PermissionError:
        print('probe refused')
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    child.terminate()
    print('child', child.wait())
    """
    r = run_py(code, tmp_path)
    assert r.status == Status.OK, r
    assert r.stdout_tail.split() == ["probe", "refused", "child", "-15"]
