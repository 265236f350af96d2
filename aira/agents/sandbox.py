"""A sandbox for agent-written code (AIRA-Design): no network, no secrets, hard limits, own folder.

`run_sandboxed(cmd, workdir=...)` runs a command to completion and reports a `SandboxResult`;
`SandboxProcess` is the same thing non-blocking, for the local executor. What it does, and what it
does not (it is not a container), is in docs/sandbox.md. In short, as root:

- a new network namespace (no interface up: every connect fails at once, nothing is sent) and a new
  mount namespace with a private /tmp and /dev/shm; folders the sandbox uid could not cross (e.g. a
  0700 /root holding the interpreter) are covered by a tmpfs with only the needed paths bound back;
- a fresh unprivileged uid/gid per run (never shared by two live runs), so RLIMIT_NPROC counts this
  run's processes only, file permissions apply (it can write its workdir and nothing of ours), it
  cannot signal the harness, and a final kill by uid reaches every process it left, setsid or not;
- rlimits: CPU seconds, address space, file size, processes; a wall-clock kill of everything;
- a seccomp filter that kills a process signalling or tracing the harness (a contract breach);
- the environment rebuilt from an allow-list; names that look like secrets are never passed.

Without root it falls back to a user + network namespace (no uid change, weaker, see the doc); with no
namespace at all it refuses, unless `allow_unsafe` (the CLI's --unsafe-no-sandbox).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aira.agents.executors.proc import GroupProcess, log_tail, pids_of_uid
from aira.agents.types import Status
from aira.errors import UsageError

CHILD = Path(__file__).with_name("sandbox_child.py")
AIRA_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds the `aira` package
DATA_DIR = "data"  # read-only copies of the data, inside the workdir
SANDBOX_USER = "aira-sandbox"  # the user name a sandboxed child sees (its uid has no passwd entry)
UID_BASE, UID_SPAN = 200_000, 60_000  # per-run uids, far from real users
SETUP_FAILED = 97
CONTRACT_BREACH = ("contract breach: it signalled or traced a harness process (killed by the sandbox's "
                   "seccomp filter)")

DEFAULT_ENV_ALLOW = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "CUDA_VISIBLE_DEVICES"]
# Never passed, whatever the allow-list says (matched on the upper-cased name).
SECRET_PATTERNS = ["*KEY*", "*TOKEN*", "*SECRET*", "*PASSW*", "*CREDENTIAL*", "*AUTH*", "*COOKIE*"]


@dataclass(kw_only=True)
class SandboxLimits:
    timeout_s: float = 60.0
    cpu_s: int | None = None
    mem_mb: int | None = None
    max_file_mb: int | None = 256
    max_procs: int | None = 64
    env_allow: list[str] = field(default_factory=lambda: list(DEFAULT_ENV_ALLOW))
    allow_unsafe: bool = False
    private_tmp: bool = True  # a fresh tmpfs on /tmp, /var/tmp, /dev/shm (root only)
    masked: list[str] = field(default_factory=list)  # paths that read as empty inside (held-out data)


@dataclass
class SandboxResult:
    returncode: int | None
    status: Status
    stdout_tail: str
    stderr_tail: str
    seconds: float
    violation: str = ""   # "network disabled", "memory limit", "cpu time", "process limit", ...
    isolated: bool = True  # False when run with allow_unsafe and no namespace
    uid: int | None = None  # the run's own uid (root mode), for audits

    def failure(self) -> tuple[str, str]:
        """(status, why) of a run that did not finish ok: why is the violation, else the exit code."""
        why = self.violation or (f"exit {self.returncode}" if self.status == Status.CRASHED else self.status.value)
        return self.status.value, why


# ---------------------------------------------------------------------------------------------------
# What isolation this machine allows


@functools.cache
def isolation_mode() -> str | None:
    """'root' (namespaces + uid drop), 'userns' (user + network namespace) or None (nothing works)."""
    as_root = os.geteuid() == 0
    cfg = json.dumps({"mounts": as_root})
    try:
        rc = subprocess.run([sys.executable, "-I", "-S", str(CHILD), "--probe", cfg],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=30).returncode
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rc != 0:
        return None
    return "root" if as_root else "userns"


def build_env(workdir: str, env_allow: Sequence[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's whole environment: allow-listed names, our fixed entries, never a secret."""
    def secret(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name.upper(), p) for p in SECRET_PATTERNS)

    env = {k: v for k, v in os.environ.items()
           if any(fnmatch.fnmatchcase(k, p) for p in env_allow) and not secret(k)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(HOME=workdir, PYTHONPATH=AIRA_ROOT, PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    # the per-run uid has no passwd entry, and getpass.getuser() (which torch.compile's inductor and
    # Triton call for their cache folders) raises KeyError without one of these names: seen on an H200
    env.update(USER=SANDBOX_USER, LOGNAME=SANDBOX_USER)
    for k, v in (extra or {}).items():
        if not secret(k):
            env[k] = v
    return env


# ---------------------------------------------------------------------------------------------------
# The workdir and its read-only data


def _readonly_copy(src: Path, dst: Path) -> None:
    """Hard-link when the sandbox uid could read but not write the original; else copy, mode 0444."""
    st = src.stat()
    if st.st_mode & 0o004 and not st.st_mode & 0o002 and st.st_dev == dst.parent.stat().st_dev:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o444)


def prepare_workdir(workdir: str | Path, readonly_paths: Sequence[str | Path] = (), *,
                    uid: int | None = None, gid: int | None = None) -> Path:
    """Create the workdir, put read-only data in workdir/data/, give the workdir to uid/gid.

    The data stays ours (0555 folders, 0444 or non-writable files), so the sandbox can read it but not
    change it. Never pass hidden labels here: they must stay outside the sandbox entirely.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if readonly_paths:
        data = workdir / DATA_DIR
        data.mkdir(exist_ok=True)
        os.chmod(data, 0o755)
        for p in map(Path, readonly_paths):
            if not p.exists():
                raise UsageError(f"read-only path {p} does not exist")
            dst = data / p.name
            if dst.exists():
                shutil.rmtree(dst) if dst.is_dir() and not dst.is_symlink() else dst.unlink()
            if p.is_dir():
                shutil.copytree(p, dst, copy_function=lambda s, d: _readonly_copy(Path(s), Path(d)))
                for root, dirs, _ in os.walk(dst):
                    for d in dirs:
                        os.chmod(os.path.join(root, d), 0o555)
                os.chmod(dst, 0o555)
            else:
                _readonly_copy(p, dst)
        os.chmod(data, 0o555)
    if uid is not None:
        for root, dirs, files in os.walk(workdir):
            if Path(root) == workdir:
                dirs[:] = [d for d in dirs if d != DATA_DIR]  # the data stays ours
            for name in [root, *(os.path.join(root, f) for f in files + dirs)]:
                os.lchown(name, uid, gid if gid is not None else uid)
        os.chmod(workdir, 0o700)
    return workdir


def open_regular(path: str | Path, max_bytes: int):
    """A file the sandbox wrote, opened for reading without following a link it may have planted, and
    only if it is a regular file of at most max_bytes (a FIFO would hang us, a link to our files would
    leak or overwrite them); None otherwise. The harness reads sandbox output only through this."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def drop_data(workdir: str | Path) -> None:
    """Remove the read-only data copy from a finished sandbox's workdir (0555 folders: open them first).
    The sandbox owns the workdir: a `data` it replaced by a link is removed as a link, never followed."""
    data = Path(workdir) / DATA_DIR
    if data.is_symlink() or (data.exists() and not data.is_dir()):
        data.unlink()
    elif data.is_dir():
        for d, _, _ in os.walk(data):
            os.chmod(d, 0o755)
        shutil.rmtree(data, ignore_errors=True)


def _allocate_uid() -> int:
    """A uid no live process has (per-run uids keep runs' process counts and kills apart)."""
    for _ in range(100):
        uid = random.randrange(UID_BASE, UID_BASE + UID_SPAN)
        if not pids_of_uid(uid):
            return uid
    raise RuntimeError("could not find a free sandbox uid")


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` until none is left (a fork bomb may fork between passes)."""
    for _ in range(50):
        pids = pids_of_uid(uid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def _mount_plan(needed: Sequence[str], limits: SandboxLimits) -> tuple[list, list]:
    """(folders to cover with a tmpfs, paths to bind back) for a sandbox uid that owns nothing here."""
    tmp_size = max(64, limits.max_file_mb or 256)
    hide = [[d, 0o1777, tmp_size] for d in ("/tmp", "/var/tmp", "/dev/shm")] if limits.private_tmp else []
    hidden = [h[0] for h in hide]
    for path in needed:
        parts = Path(path).parts
        for i in range(2, len(parts)):
            anc = str(Path(*parts[:i]))
            if any(anc == h or anc.startswith(h + "/") for h in hidden):
                break  # recreated traversable inside a tmpfs already
            if not os.stat(anc).st_mode & 0o001:  # "other" cannot cross it
                hide.append([anc, 0o755, 16])
                hidden.append(anc)
                break
    binds = [[p, i == 0] for i, p in enumerate(needed)]  # only the workdir is writable
    return hide, binds


def _mask_plan(masked: Sequence[str | Path], needed: Sequence[str]) -> list[str]:
    """Real paths to mask; UsageError for one that holds a path the sandbox needs (it would vanish)."""
    out = []
    for m in masked:
        real = os.path.realpath(m)
        for n in needed:
            n = os.path.realpath(n)
            if n == real or n.startswith(real.rstrip("/") + "/"):
                raise UsageError(f"cannot hide {m} from the sandbox: it holds {n}, which the sandbox needs")
        out.append(real)
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------------
# Running


class SandboxProcess(GroupProcess):
    """`cmd` running in the sandbox, non-blocking (poll / terminate / kill / cleanup)."""

    def __init__(self, cmd: Sequence[str], *, workdir: str | Path, limits: SandboxLimits,
                 stdout_path: str | Path, stderr_path: str | Path | None = None,
                 readonly_paths: Sequence[str | Path] = (), extra_env: Mapping[str, str] | None = None):
        if not cmd:
            raise UsageError("sandbox: empty command")
        self.limits = limits
        mode = isolation_mode()
        if mode is None and not limits.allow_unsafe:
            raise UsageError("cannot isolate agent code here (no network namespace: needs root or user "
                             "namespaces); pass --unsafe-no-sandbox to run it without isolation")
        self.isolated = mode is not None
        self.uid = _allocate_uid() if mode == "root" else None
        self.workdir = prepare_workdir(workdir, readonly_paths, uid=self.uid, gid=self.uid)
        rl: dict[str, int] = {}
        if limits.cpu_s:
            rl["RLIMIT_CPU"] = int(limits.cpu_s)
        if limits.mem_mb:
            rl["RLIMIT_AS"] = int(limits.mem_mb) * 2**20
        if limits.max_file_mb:
            rl["RLIMIT_FSIZE"] = int(limits.max_file_mb) * 2**20
        if limits.max_procs and self.uid is not None:  # per-user count: only meaningful with our own uid
            rl["RLIMIT_NPROC"] = int(limits.max_procs)
        cfg: dict = {"workdir": str(self.workdir), "limits": rl, "netns": self.isolated}
        if limits.masked:
            if not self.isolated:
                raise UsageError("cannot hide held-out data without a mount namespace; run as root or "
                                 "where user namespaces work")
            cfg["mask"] = _mask_plan(limits.masked, [str(self.workdir), AIRA_ROOT, sys.prefix,
                                                     sys.base_prefix])
        if self.uid is not None:
            needed = [str(self.workdir), AIRA_ROOT, os.path.realpath(sys.prefix),
                      os.path.realpath(sys.base_prefix)]
            exe_dir = os.path.dirname(os.path.realpath(shutil.which(cmd[0]) or cmd[0]))
            if os.path.isdir(exe_dir):
                needed.append(exe_dir)
            needed = list(dict.fromkeys(needed))
            cfg.update(uid=self.uid, gid=self.uid)
            cfg["hide"], cfg["binds"] = _mount_plan(needed, limits)
        argv = [sys.executable, "-I", "-S", str(CHILD), json.dumps(cfg), "--", *cmd]
        env = build_env(str(self.workdir), limits.env_allow, extra_env)
        super().__init__(argv, env=env, cwd=str(self.workdir), stdout_path=stdout_path,
                         stderr_path=stderr_path)

    def kill(self) -> None:
        super().kill()
        if self.uid is not None:
            kill_uid(self.uid)

    def cleanup(self) -> None:
        super().cleanup()
        if self.uid is not None:
            kill_uid(self.uid)


_SIGNATURES = [  # (status, violation, substrings of stderr), checked in order
    (Status.KILLED, "file size", ["File too large", "EFBIG"]),
    (Status.KILLED, "process limit", ["BlockingIOError", "Resource temporarily unavailable", "fork: retry",
                                      "Cannot fork"]),
    (Status.KILLED, "memory limit", ["MemoryError", "Cannot allocate memory", "std::bad_alloc",
                                     "out of memory"]),
]
_CRASH_HINTS = [
    ("network disabled", ["Network is unreachable", "name resolution", "Name or service not known",
                          "gaierror", "ENETUNREACH"]),
    ("permission denied", ["PermissionError", "Permission denied", "Read-only file system"]),
]


def classify(returncode: int | None, *, timed_out: bool, stderr: str, cpu_seconds: float = 0.0,
             cpu_s: float | None = None) -> tuple[Status, str]:
    """(status, violation) from how the sandboxed command ended and what it wrote to stderr."""
    if returncode == 0 and not timed_out:
        return Status.OK, ""
    if returncode == SETUP_FAILED and "sandbox" in stderr:
        return Status.CRASHED, "sandbox setup failed"
    if returncode == -signal.SIGSYS:  # the child's seccomp filter: never an honest program's end
        return Status.CRASHED, CONTRACT_BREACH
    if returncode == -signal.SIGXCPU or (cpu_s and cpu_seconds >= cpu_s):
        return Status.KILLED, "cpu time"
    if returncode == -signal.SIGXFSZ:
        return Status.KILLED, "file size"
    for status, violation, needles in _SIGNATURES:
        if any(n in stderr for n in needles):
            return status, violation
    if timed_out:
        return Status.TIMED_OUT, "wall-clock limit"
    for violation, needles in _CRASH_HINTS:
        if any(n in stderr for n in needles):
            return Status.CRASHED, violation
    return Status.CRASHED, ""


class _LineRelay:
    """Hands the complete lines appended to a file since the last call to a callback."""

    MAX_LINES, MAX_CHARS, MAX_READ = 20, 300, 1 << 20

    def __init__(self, path: Path, callback: Callable[[str], None]):
        self.path, self.callback, self.offset, self.partial = path, callback, 0, b""

    def pump(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size - self.offset > self.MAX_READ:  # far behind (a flood): skip to the recent part
                    self.offset, self.partial = size - self.MAX_READ, b""
                fh.seek(self.offset)
                data = fh.read(size - self.offset)
        except OSError:
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        if len(lines) > self.MAX_LINES:
            self.callback(f"({len(lines) - self.MAX_LINES} lines not shown)")
        for line in lines[-self.MAX_LINES:]:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.callback(text[: self.MAX_CHARS])


def relay_to_stderr(prefix: str) -> Callable[[str], None]:
    """An `on_output` that prints each relayed line to stderr as `  <prefix> | <line>` (the design verbs'
    eval commands: a gpu-preset evaluation trains for minutes)."""

    def echo(line: str) -> None:
        print(f"  {prefix} | {line}", file=sys.stderr, flush=True)

    return echo


def run_sandboxed(cmd: Sequence[str], *, workdir: str | Path, readonly_paths: Sequence[str | Path] = (),
                  timeout_s: float = 60.0, cpu_s: int | None = None, mem_mb: int | None = None,
                  max_file_mb: int | None = 256, max_procs: int | None = 64,
                  env_allow: Sequence[str] = tuple(DEFAULT_ENV_ALLOW), allow_unsafe: bool = False,
                  private_tmp: bool = True, masked: Sequence[str | Path] = (),
                  extra_env: Mapping[str, str] | None = None,
                  grace_s: float = 1.0, tail_lines: int = 40,
                  on_output: Callable[[str], None] | None = None, output_every_s: float = 5.0) -> SandboxResult:
    """Run `cmd` in the sandbox to completion (or to its wall-clock limit) and say how it ended.

    `on_output`: called with each new line the command writes to stdout, every `output_every_s` seconds
    while it runs (at most the last 20 lines per call, each cut to 300 characters: the output is the
    sandboxed code's, so it must not flood the caller), so that a long run shows where it is.
    `masked`: paths (folders or files) that read as empty inside, e.g. validation data that sits
    where the sandbox could otherwise read it (a corpus inside the venv, a world-readable data folder)."""
    limits = SandboxLimits(timeout_s=timeout_s, cpu_s=cpu_s, mem_mb=mem_mb, max_file_mb=max_file_mb,
                           max_procs=max_procs, env_allow=list(env_allow), allow_unsafe=allow_unsafe,
                           private_tmp=private_tmp, masked=[str(m) for m in masked])
    logs = Path(tempfile.mkdtemp(prefix="aira-sbx-logs-"))  # ours: 0700, out of the sandbox's reach
    try:
        out, err = logs / "stdout", logs / "stderr"
        proc = SandboxProcess(cmd, workdir=workdir, limits=limits, stdout_path=out, stderr_path=err,
                              readonly_paths=readonly_paths, extra_env=extra_env)
        deadline = proc.started + timeout_s
        timed_out, term_at, delay = False, None, 0.002
        relay = _LineRelay(out, on_output) if on_output else None
        next_relay = proc.started + output_every_s
        while proc.poll() is None:
            now = time.monotonic()
            if relay is not None and now >= next_relay:
                relay.pump()
                next_relay = now + output_every_s
            if not timed_out and now >= deadline:
                timed_out, term_at = True, now
                proc.terminate()
            elif term_at is not None and now >= term_at + grace_s:
                proc.kill()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        proc.cleanup()
        if relay is not None:
            relay.pump()
        seconds = time.monotonic() - proc.started
        stderr_tail = log_tail(err, tail_lines)
        status, violation = classify(proc.returncode, timed_out=timed_out, stderr=stderr_tail,
                                     cpu_seconds=proc.cpu_seconds, cpu_s=cpu_s)
        if not proc.isolated:
            violation = (violation + "; " if violation else "") + "UNSAFE: ran without isolation"
        return SandboxResult(returncode=proc.returncode, status=status, stdout_tail=log_tail(out, tail_lines),
                             stderr_tail=stderr_tail, seconds=seconds, violation=violation,
                             isolated=proc.isolated, uid=proc.uid)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
