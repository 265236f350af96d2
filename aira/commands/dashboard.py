"""`aira dashboard [RUNS_DIR] [--host 127.0.0.1] [--port 0]`: a live web page of running and finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve a local web page that follows runs as they go (read-only)",
        description="Serve a page that follows every run folder under RUNS_DIR (or RUNS_DIR itself, when it is "
        "one run) from its journal, updating every two seconds: agents' progress, the leaderboard with ties "
        "and the noise band, score against time and compute, the layer heat map, the proxy's fidelity, "
        "failures with their log tails, cost. Nothing is written into a run folder. See docs/report.md.",
    )
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                   help="a folder of run folders, or one run folder (default: runs)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; the page shows "
                        "proposals, costs and logs)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: 0, any free port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aira.errors import UsageError

    if not Path(args.runs_dir).is_dir():
        raise UsageError(f"no folder at {args.runs_dir} (give a folder of run folders, or one run folder)")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    from aira.dashboard.server import serve

    try:
        serve(args.runs_dir, args.host, args.port)
    except OSError as e:  # the port is taken, or the address is not this machine's
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0
