"""`aira demo`: the offline default job behind `make demo`.

The AIRA-Compose pipeline on a laptop CPU with no key and no download: offline agents (greedy and
evolutionary search moves, no LLM) search 16-layer patterns over attention / MLP (the space whose proxy
fidelity was measured; `--space attn-mlp-mamba` adds Mamba-2) on the MAD CPU proxy, beside random search,
Bayesian optimisation and the published baselines; the top candidates are aggregated (Composer's N_0
vote) and extrapolated to Llama 3.2 1B widths; an HTML report is written. Every number comes from real
training; the proxy's measured fidelity is printed at the start, and its measured noise (rather than a
handful of reference seeds) sets the acceptance margin and the ties.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# A 10-minute CPU demo fits ~4 candidates per agent: with aira-dojo's defaults (5 drafts for greedy,
# 3 islands x 5 for evolutionary) both would only ever draft. Fewer drafts let them improve and breed.
DEMO_AGENTS = ["greedy:offline?num_drafts=2", "evolutionary:offline?num_islands=1&init_per_island=3"]


def register(sub) -> None:
    p = sub.add_parser("demo", help="offline AIRA-Compose run on the CPU proxy, then the HTML report",
                       description=__doc__)
    p.add_argument("--budget", default="10m", help="wall-clock budget of the search (default: 10m)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel evaluations (default: one per usable CPU core, 1 thread each)")
    p.add_argument("--space", default="attn-mlp", help="attn-mlp (default) | attn-mlp-mamba | codes")
    p.add_argument("--proxy", default="mad")
    p.add_argument("--out", default=None, help="run folder (default: runs/demo-<time>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aira.commands.compose import _run as compose_run
    from aira.report import write_report

    out = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"aira demo: offline AIRA-Compose search ({args.space}, proxy {args.proxy}, "
          f"budget {args.budget}); no LLM is used: the agents are search algorithms, and every node says "
          f"llm: offline", flush=True)
    compose_args = argparse.Namespace(
        space=args.space, proxy=args.proxy, layers=16, agents=DEMO_AGENTS,
        no_controls=False, budget=f"{args.budget},stop=kill", workers=args.workers, executor="local",
        ray_address=None, seeds=None, noise_seeds=1, seed=0, cache=None, shared_memory=False, out=str(out),
        quiet=False)
    code = compose_run(compose_args)
    report = write_report(out)
    print(f"\nreport: {report}  (open it in a browser; `aira runs show {out}` prints the tables)")
    return code
