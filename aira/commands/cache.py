"""`aira cache`: the evaluation cache shared by every run (aira.train.cache).

    aira cache info [--cache DIR]     where it is, how many evaluations it holds, its size
    aira cache clear [--cache DIR]    delete every cached evaluation (runs' journals keep their scores)
"""

from __future__ import annotations

import argparse
import json

from aira.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("cache", help="the evaluation cache shared across runs: info, clear",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--cache", default=None, help="the cache folder (default: $AIRA_CACHE, else "
                                                 "~/.cache/aira/evaluations)")
    p.add_argument("--json", action="store_true", help="info as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aira.train.cache import EvalCache, resolve_dir

    where = resolve_dir(args.cache)
    if where is None:
        raise UsageError("--cache off names no cache folder")
    cache = EvalCache(where)
    if args.action == "clear":
        n = cache.clear()
        print(f"removed {n} cached evaluation{'s' if n != 1 else ''} from {where}")
        return 0
    files = cache.files()
    size = sum(f.stat().st_size for f in files)
    info = {"path": where, "evaluations": len(files), "bytes": size}
    print(json.dumps(info) if args.json else f"{where}: {len(files)} cached evaluations, {size / 2**20:.1f} MiB")
    return 0
