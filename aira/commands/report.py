"""`aira report RUN [--out FILE] [--open] [--top N] [--json]`: write a run folder's HTML report.

The page is self-contained (figures embedded); see aira/report/__init__.py and docs/report.md.
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report (leaderboard, search curves, patterns, frontiers) of a run",
        description="Write one self-contained HTML page with the plots of a run folder. Sections for "
        "Compose's aggregate / extrapolate / scaling / fidelity files and autoresearch's results.tsv "
        "appear when the run folder has them.",
    )
    p.add_argument(
        "run", help="run folder (config.json + journal.sqlite), or a scaling / fidelity study folder"
    )
    p.add_argument("--out", default=None, help="HTML file to write (default: RUN/report.html)")
    p.add_argument("--top", type=int, default=20, help="leaderboard rows (default: 20)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--json", action="store_true", help="print the page's path and its images as JSON")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from aira.errors import UsageError

    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    try:
        import matplotlib  # noqa: F401 - the report's only optional dependency
    except ImportError:
        raise UsageError("aira report needs matplotlib: pip install 'aira[report]'") from None
    from aira.report import write_report

    try:
        out = write_report(args.run, args.out, top=args.top)
    except OSError as e:  # an --out folder that cannot be written is the user's input, not a bug
        raise UsageError(f"cannot write the report: {e}") from None
    if getattr(args, "json", False):
        import json

        images = out.parent / out.stem
        print(json.dumps({"report": str(out), "images": sorted(str(p) for p in images.glob("*.png"))}, indent=1))
    else:
        print(f"report: {out}")
    if args.open:
        import webbrowser

        if not webbrowser.open(out.resolve().as_uri()):
            print(f"could not open a browser; open {out} yourself", file=sys.stderr)
    return 0
