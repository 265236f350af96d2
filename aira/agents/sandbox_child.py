"""The sandbox's first process: isolate itself, then exec the untrusted command.

Run by path with the standard library only (`python -I -S sandbox_child.py CONFIG_JSON -- CMD...`),
started by `aira.agents.sandbox` as root (or as an ordinary user, with less isolation). In order:

1. new network namespace (only a downed loopback: no route anywhere, 127.0.0.1 included) and, as root,
   a new mount namespace; as a non-root user, a user namespace first, which makes the others possible;
2. as root: tmpfs over the folders to hide (/tmp, /dev/shm, ancestors the sandbox uid could not cross)
   with the paths it needs (interpreter, workdir, aira) bound back at their own paths, read-only
   except the workdir; then the masks: paths the harness wants unreadable (held-out data, a corpus in
   the venv) covered by an empty tmpfs (a folder) or /dev/null (a file), as root or not;
3. rlimits (CPU, address space, file size, processes), no-new-privileges;
4. as root: drop to the run's unprivileged uid/gid (no supplementary groups);
5. chdir to the workdir and exec the command, with default SIGPIPE / SIGXFSZ handling.

Any failure before exec exits with code 97 and one line on stderr, so the harness can tell a broken
sandbox from a failing command. `--probe` stops after step 1 (used to check that isolation works).
"""

import ctypes
import ctypes.util
import json
import os
import resource
import signal
import sys

SETUP_FAILED = 97
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
O_PATH = getattr(os, "O_PATH", 0o10000000)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(src, target, fstype, flags, data=None) -> None:
    enc = (lambda s: s.encode() if isinstance(s, str) else s)
    _check(_libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def enter_namespaces(mounts: bool) -> None:
    if os.geteuid() == 0:
        _unshare(CLONE_NEWNET | (CLONE_NEWNS if mounts else 0))
        if mounts:
            _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount reaches the host
        return
    # Not root: a user namespace maps our uid to root inside it, which allows a network namespace (and
    # a mount namespace, for the masks).
    uid, gid = os.geteuid(), os.getegid()
    _unshare(CLONE_NEWUSER | CLONE_NEWNET | (CLONE_NEWNS if mounts else 0))
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    if mounts:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def arrange_mounts(hide: list, binds: list) -> None:
    """tmpfs over each hidden folder; needed paths inside one are bound back at the same path."""
    fds = []
    for path, rw in binds:
        if any(_under(path, h) for h, _, _ in hide):
            fds.append((os.open(path, O_PATH), path, rw))  # grabbed before the tmpfs covers it
    for h, mode, size in sorted(hide, key=lambda x: len(x[0])):
        if os.path.isdir(h):
            opts = f"mode={mode:o}" + (f",size={size}m" if size else "")
            _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for fd, path, rw in sorted(fds, key=lambda x: len(x[1])):  # outer first: inner binds land on top
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        if not rw:
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_REC)
        os.close(fd)


def mask_paths(masks: list) -> None:
    """Make each path read as empty: a folder gets an empty read-only tmpfs on top, a file /dev/null.
    Done after the binds, so a path inside a bound-back folder (a corpus in the venv) is covered too."""
    for path in masks:
        if not os.path.lexists(path):
            continue  # already out of sight (under a hidden folder that was not bound back)
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=555,size=4k")
        else:
            _mount("/dev/null", path, None, MS_BIND)
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def set_limits(limits: dict) -> None:
    for name, value in limits.items():
        res = getattr(resource, name)
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU at the soft limit, SIGKILL after
        resource.setrlimit(res, (value, hard))


def main(argv: list) -> int:
    if argv[:1] == ["--probe"]:
        cfg = json.loads(argv[1]) if len(argv) > 1 else {}
        try:
            enter_namespaces(cfg.get("mounts", False))
        except OSError as e:
            sys.stderr.write(f"sandbox: {e}\n")
            return SETUP_FAILED
        return 0
    cfg = json.loads(argv[0])
    cmd = argv[argv.index("--") + 1:]
    try:
        if cfg.get("netns", True):
            enter_namespaces(bool(cfg.get("hide") or cfg.get("mask")))
        if cfg.get("hide"):
            arrange_mounts(cfg["hide"], cfg.get("binds", []))
        if cfg.get("mask"):
            mask_paths(cfg["mask"])
        set_limits(cfg.get("limits", {}))
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if cfg.get("uid") is not None:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        os.chdir(cfg["workdir"])
        os.umask(0o077)
    except (OSError, ValueError, KeyError) as e:
        sys.stderr.write(f"sandbox setup failed: {e}\n")
        return SETUP_FAILED
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.stderr.write(f"sandbox: cannot run {cmd[0]!r}: {e}\n")
        return SETUP_FAILED
    return SETUP_FAILED


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
