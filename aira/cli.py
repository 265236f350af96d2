"""The `aira` command line: a few verbs, `--help` on each, one clear line and exit code 2 on bad input.

Each verb lives in `aira/commands/<verb>.py` with a `register(subparsers)` function that adds its
parser and sets `func`; handlers import heavy modules (torch) lazily so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from aira.errors import UsageError

# Verb modules, in the order `aira --help` lists them. A module that is missing is skipped, so the
# CLI keeps working while a verb is being written.
VERBS = ["demo", "train", "models", "compose", "design", "runs", "report", "export"]


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
        try:
            mod = importlib.import_module(f"aira.commands.{verb}")
        except ModuleNotFoundError as e:
            if e.name == f"aira.commands.{verb}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        sys.stderr.write(f"aira: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("aira: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
