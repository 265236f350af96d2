"""Process-group plumbing shared by the executors and the sandbox.

Every job runs as the leader of its own session and process group (`start_new_session=True`), so one
`killpg` reaches the job and everything it forked. A child that called `setsid()` itself leaves the
group; we also walk the process tree from /proc at kill time to catch those while their parent lives.
(The sandbox goes further: it kills by a per-run uid, which nothing inside can leave.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def _ppid_map() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc (empty where /proc is missing)."""
    out: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may itself hold spaces or parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            out[int(name)] = int(fields[1])
    return out


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (children first), found by walking /proc."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppid_map().items():
        children.setdefault(parent, []).append(child)
    out, frontier = [], [pid]
    while frontier:
        nxt = []
        for p in frontier:
            for c in children.get(p, []):
                out.append(c)
                nxt.append(c)
        frontier = nxt
    return out


def signal_tree(pid: int, sig: int) -> None:
    """Send `sig` to the process group led by `pid` and to every descendant that left it."""
    targets = descendants(pid)
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for p in targets:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def pids_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes whose real uid is `uid`, read from /proc/<pid>/status."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                zombie = False
                for line in f:
                    if line.startswith("State:"):
                        zombie = line.split()[1] in ("Z", "X")
                    elif line.startswith("Uid:"):
                        if int(line.split()[1]) == uid and not zombie:
                            out.append(int(name))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return out


def log_tail(path: str | Path | None, lines: int = 20, max_chars: int = 4000) -> str:
    """The last `lines` lines of a text file (at most `max_chars`), '' when it is missing."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.rstrip("\n").splitlines()[-lines:])[-max_chars:]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class GroupProcess:
    """A command running as its own session / process group, output to log files.

    Non-blocking: `poll()` reaps it; `terminate()` / `kill()` signal the whole tree; `cleanup()`
    removes whatever the job left running after the leader exited.
    """

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None, cwd: str | None,
                 stdout_path: str | Path, stderr_path: str | Path | None = None):
        self.started = time.monotonic()
        self._out = open(stdout_path, "ab")
        self._err = open(stderr_path, "ab") if stderr_path and stderr_path != stdout_path else None
        try:
            self.proc = subprocess.Popen(
                list(argv), env=dict(env) if env is not None else None, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=self._out,
                stderr=self._err if self._err else subprocess.STDOUT, start_new_session=True,
            )
        except BaseException:
            self._close()
            raise
        self.pid = self.proc.pid
        self.returncode: int | None = None
        self.cpu_seconds = 0.0

    def poll(self) -> int | None:
        """The exit status once the leader has exited (reaped with its CPU time), else None."""
        if self.returncode is None:
            try:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status, usage = self.pid, 0, None
            if pid == 0:
                return None
            self.returncode = os.waitstatus_to_exitcode(status) if usage else (self.proc.returncode or 0)
            if usage:
                self.cpu_seconds = usage.ru_utime + usage.ru_stime
            self.proc.returncode = self.returncode  # so Popen never waits on a reaped pid
            self._close()
        return self.returncode

    def terminate(self) -> None:
        signal_tree(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        signal_tree(self.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        """Kill what is left of the group after the leader exited (orphaned grandchildren)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _close(self) -> None:
        for f in (self._out, self._err):
            if f:
                f.close()
