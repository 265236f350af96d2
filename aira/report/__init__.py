"""The HTML report of a run folder: `write_report(run_dir)` -> `<run>/report.html`.

One self-contained page (PNG figures embedded as base64, plain CSS, one tiny inline script that
checks the images decoded) with the sections the run folder has material for: overview and final
pick, agents (LLM cost, compute), leaderboard with the noise floor and ties, search curves, top
patterns (heat map, ratios), and, when the Compose / autoresearch stages wrote their files, the
aggregated and extrapolated patterns, scaling frontiers, proxy fidelity, the verification of the winner
(verify.json) and results.tsv. The PNGs
are also written next to the page, into a folder named after it (`<run>/report/` by default).
"""

from __future__ import annotations

import time
from pathlib import Path

from aira.report.data import RunData, load_run

__all__ = ["RunData", "load_run", "render", "write_report"]


def render(run: RunData, image_dir: Path, *, top: int = 20) -> str:
    """The page's HTML for a loaded run; figures are written into `image_dir`."""
    from aira.report import sections_search as s1
    from aira.report import sections_stage2 as s2
    from aira.report.html import Images, page
    from aira.report.sections_verify import verify_section

    images = Images(image_dir)
    parts = [
        ("overview", "Overview", s1.overview(run)),
        ("primitives", "Promoted primitives", s2.primitives_section(run)),
        ("agents", "Agents", s1.agents_section(run)),
        ("leaderboard", "Leaderboard", s1.leaderboard_section(run, images, top=top)),
        ("curves", "Search curves", s1.curves_section(run, images)),
        ("patterns", "Top patterns", s1.patterns_section(run, images)),
        ("aggregate", "Aggregate", s2.aggregate_section(run, images)),
        ("extrapolate", "Extrapolate", s2.extrapolate_section(run, images)),
        ("scaling", "Scaling", s2.scaling_section(run, images)),
        ("fidelity", "Fidelity", s2.fidelity_section(run)),
        ("halving", "Halving", s2.halving_section(run)),
        ("verify", "Verification", verify_section(run)),
        ("experiments", "Experiments", s2.autoresearch_section(run, images)),
        ("lra", "LRA", s2.lra_section(run)),
        ("failures", "Failures", s1.failures_note(run)),
    ]
    subtitle = [
        f"run {run.run_dir.resolve()}",
        f"written {time.strftime('%Y-%m-%d %H:%M:%S')} by aira report",
    ]
    return page(f"aira report: {run.info.name}", subtitle, [(k, label, h) for k, label, h in parts if h])


def write_report(run_dir: str | Path, out: str | Path | None = None, *, top: int = 20) -> Path:
    """Write the report of `run_dir` to `out` (default `<run>/report.html`) and return its path.
    Raises UsageError when `run_dir` is not a run folder."""
    run = load_run(run_dir)
    out = Path(out) if out is not None else run.run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render(run, out.parent / out.stem, top=top)
    from aira.fileio import write_atomic

    write_atomic(out, text)  # a reader (a browser tab being refreshed) never sees half a page
    return out
