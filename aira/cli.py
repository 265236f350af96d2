"""The `aira` command line: a few verbs, `--help` on each, one clear line and exit code 2 on bad input.

Each verb lives in `aira/commands/<verb>.py` with a `register(subparsers)` function that adds its
parser and sets `func`; handlers import heavy modules (torch) lazily so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from aira.errors import UsageError

# Verb modules, in the order `aira --help` lists them.
VERBS = ["demo", "train", "models", "compose", "design", "runs", "report", "dashboard", "export", "cache"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aira", description="Agents that discover neural-network architectures.")
    from aira import __version__

    parser.add_argument("--version", action="version", version=f"aira {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb in VERBS:
        importlib.import_module(f"aira.commands.{verb}").register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, like Ctrl-C: the same cleanup runs (executors kill
    the jobs they started, which run in their own sessions and would otherwise outlive us, holding
    CPUs and GPUs; runs save their state)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    handled = (signal.SIGTERM, signal.SIGHUP) if threading.current_thread() is threading.main_thread() else ()
    previous = {s: signal.signal(s, _terminate) for s in handled}
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe must show here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:
        # The reader left (`aira runs show --json RUN | head -1`): stop quietly. Point stdout at
        # devnull so the flush at exit does not raise again (the idiom of the Python docs on SIGPIPE).
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # stdout is not a file (an embedding caller)
            pass
        return 1
    except UsageError as e:
        sys.stderr.write(f"aira: error: {e}\n")
        return 2
    except Terminated as e:
        sys.stderr.write(f"aira: stopped by {e}\n")
        return 128 + e.signum
    except KeyboardInterrupt:
        sys.stderr.write("aira: interrupted\n")
        return 130
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


if __name__ == "__main__":
    raise SystemExit(main())
