"""The sandbox's first process: isolate itself, then exec the untrusted command.

Run by path with the standard library only (`python -I -S sandbox_child.py CONFIG_JSON -- CMD...`),
started by `aira.agents.sandbox` as root (or as an ordinary user, with less isolation). In order:

1. new network namespace (only a downed loopback: no route anywhere, 127.0.0.1 included) and, as root,
   a new mount namespace; as a non-root user, a user namespace first, which makes the others possible;
2. as root: tmpfs over the folders to hide (/tmp, /dev/shm, ancestors the sandbox uid could not cross)
   with the paths it needs (interpreter, workdir, aira) bound back at their own paths, read-only
   except the workdir; then the masks: paths the harness wants unreadable (held-out data, a corpus in
   the venv) covered by an empty tmpfs (a folder) or /dev/null (a file), as root or not;
3. rlimits (CPU, address space, file size, processes), no-new-privileges, and a seccomp filter that
   kills any process of the run that signals (or traces, or opens a pidfd for) the harness: our
   parent and its ancestors, by pid or process group; the harness reports that death (SIGSYS) as a
   contract breach;
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
import struct
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


# Signals and traces aimed at the harness: (syscall, argument holding the pid, argument holding the
# signal or None). The numbers differ per architecture; pidfd_open is the same everywhere.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_GUARDED = {
    "x86_64": [(62, 0, 1), (200, 0, 1), (234, 0, 2), (129, 0, 1), (297, 0, 2), (101, 1, None), (310, 0, None),
               (311, 0, None), (434, 0, None)],
    "aarch64": [(129, 0, 1), (130, 0, 1), (131, 0, 2), (138, 0, 1), (240, 0, 2), (117, 1, None),
                (270, 0, None), (271, 0, None), (434, 0, None)],
}
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ALLOW = 0x80000000, 0x7FFF0000
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def harness_pids() -> list:
    """Our parent and its ancestors up to pid 1: the processes the sandbox must leave alone."""
    pids, pid = [], os.getppid()
    while pid > 0 and pid not in pids:
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def guard_filter(targets: list, machine: str) -> bytes:
    """A seccomp BPF program that kills the calling process when it sends a signal (other than 0, the
    existence probe) to, traces, reads / writes the memory of, or opens a pidfd for one of `targets`
    (pids, and their process groups as -pid). Everything else is allowed."""
    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    targets = targets[:60]  # jump offsets are 8 bits: a block must stay under 256 instructions
    values = [t & 0xFFFFFFFF for t in targets] + [(-t) & 0xFFFFFFFF for t in targets]
    arg = lambda i: 16 + 8 * i  # low word of seccomp_data.args[i] (little-endian)
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, _AUDIT_ARCH[machine]), (ret, 0, 0, SECCOMP_RET_ALLOW), (ld, 0, 0, 0)]
    for nr, pid_arg, sig_arg in _GUARDED[machine]:
        block = [(ld, 0, 0, arg(pid_arg))]
        n = len(values)
        # a match jumps to the tail (signal check, then kill); no match falls through to "reload nr"
        for i, v in enumerate(values):
            block.append((jeq, n - i, 0, v))
        block.append((0x05, 0, 0, 4 if sig_arg is not None else 1))  # BPF_JMP|JA: to "reload nr"
        if sig_arg is not None:
            block += [(ld, 0, 0, arg(sig_arg)), (jeq, 0, 1, 0), (ret, 0, 0, SECCOMP_RET_ALLOW)]
        block.append((ret, 0, 0, SECCOMP_RET_KILL_PROCESS))
        block.append((ld, 0, 0, 0))  # back to the syscall number for the next entry
        prog.append((jeq, 0, len(block), nr))
        prog += block
    prog.append((ret, 0, 0, SECCOMP_RET_ALLOW))
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


def install_guard(targets: list) -> None:
    machine = os.uname().machine
    if machine not in _GUARDED:
        raise OSError(0, f"no seccomp table for {machine}")
    code = guard_filter(targets, machine)
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(code) // 8, ctypes.addressof(buf))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


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
        if cfg.get("guard", True):
            install_guard(harness_pids())
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
