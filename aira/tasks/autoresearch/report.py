"""The autoresearch report: progress plot (val_bpb per experiment, kept ones highlighted) and the final
report section (baseline and best with the noise floor, kept changes as diffs with their gain, val_bpb
per experiment, compute seconds and LLM cost, published reference points).

Published points (autoresearch baseline 0.9979, Karpathy's best 0.9697, Meta's best agent 0.968) are
all from one H100 with a 300 s budget on autoresearch's data. They are shown as comparable only when the
run used the gpu preset with a 300 s budget on an H100 and parquet shards (`--data-dir`); otherwise they
are listed under a flag that says why they do not compare.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

from aira.tasks.autoresearch.loop import GIT_ID, PLOT, REPO, STATE, read_results

PUBLISHED = [  # (what, val_bpb); H100, 300 s, autoresearch's data (docs/autoresearch.md has sources)
    ("autoresearch baseline train.py (Karpathy)", 0.9979),
    ("autoresearch best agent session (Karpathy, 125 experiments)", 0.9697),
    ("AIRA-Design best (Meta: greedy, Opus 4.5, literature access)", 0.968),
]


def plot_progress(run_dir: str | Path) -> Path | None:
    """progress.png: every experiment's val_bpb, kept ones highlighted, the best-so-far line and the
    baseline's noise band. None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    run_dir = Path(run_dir)
    rows = read_results(run_dir)
    base = [float(r["val_bpb"]) for r in rows if r["status"] == "baseline" and r["val_bpb"] != "-"]
    exps = [r for r in rows if r["status"] != "baseline"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if base:
        mean = statistics.fmean(base)
        std = statistics.stdev(base) if len(base) > 1 else 0.0
        ax.axhspan(mean - std, mean + std, color="0.85", label=f"baseline {mean:.4f} ± {std:.2g}")
        ax.axhline(mean, color="0.5", lw=1)
    xs_d = [i for i, r in enumerate(exps, 1) if r["status"] == "discard"]
    ax.scatter(xs_d, [float(exps[i - 1]["val_bpb"]) for i in xs_d], c="0.6", s=14, label="discarded")
    xs_k = [i for i, r in enumerate(exps, 1) if r["status"] == "keep"]
    ys_k = [float(exps[i - 1]["val_bpb"]) for i in xs_k]
    ax.scatter(xs_k, ys_k, c="tab:green", s=40, zorder=3, label="kept")
    if xs_k:
        ax.step([0, *xs_k, len(exps)], [base and statistics.fmean(base) or ys_k[0], *ys_k, ys_k[-1]],
                where="post", c="tab:green", lw=1)
    crashes = sum(r["status"] == "crash" for r in exps)
    ax.set(xlabel="experiment", ylabel="val_bpb (lower is better)",
           title=f"autoresearch: {len(exps)} experiments, {len(xs_k)} kept, {crashes} crashed")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = run_dir / PLOT
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def comparable(info: dict) -> list[str]:
    """Why this run does not compare with the published H100 numbers (empty: it does)."""
    why = []
    if "H100" not in str(info.get("device", "")):
        why.append(f"device {info.get('device', '?')} is not an H100")
    if info.get("time_budget_s") != 300:
        why.append(f"time budget {info.get('time_budget_s')} s, not 300 s")
    data = Path(str(info.get("data", "")))
    if not (data.suffix == ".parquet" or (data.is_dir() and any(data.glob("*.parquet")))):
        why.append(f"data {info.get('data')!r} is not parquet shards like autoresearch's")
    return why


def _diff(repo: Path, a: str, b: str) -> str:
    out = subprocess.run(["git", *GIT_ID, "diff", "--unified=1", a, b], cwd=repo, capture_output=True,
                         text=True, check=False)
    return out.stdout.strip()


def final_report(run_dir: str | Path) -> str:
    """The report section, as Markdown (also written to run_dir/report.md)."""
    from aira.agents.journal import Journal

    run_dir = Path(run_dir)
    state = json.loads((run_dir / STATE).read_text())
    rows = read_results(run_dir)
    with Journal(run_dir, readonly=True) as j:
        nodes = j.nodes()
    compute_s = sum(n.seconds or 0.0 for n in nodes)
    cost = sum(n.cost_usd or 0.0 for n in nodes)
    llms = sorted({n.llm for n in nodes if n.operator != "reference"})
    info = next((n.metrics for n in nodes if n.metrics.get("device")), {})
    base = state["baseline"]
    lines = ["## Autoresearch", ""]
    if base:
        std = statistics.stdev(base) if len(base) > 1 else 0.0
        lines.append(f"- baseline val_bpb: {statistics.fmean(base):.6f} ± {std:.2g} (std over {len(base)} "
                     f"seeds: the noise floor; a change is kept only if it gains more than that)")
    best = state["best"]
    kept = state["kept"]
    if kept:
        gain = statistics.fmean(base) - best if base else float("nan")
        lines.append(f"- best val_bpb: {best:.6f} (gain {gain:+.6f} over the baseline mean), "
                     f"{len(kept)} kept change(s)")
        held = next((n.selection_metric for n in nodes if n.id == kept[-1]["node"]), None)
        if held is not None:
            lines.append(f"- best script on the hidden held-out split: {held:.6f} bpb")
    else:
        lines.append("- no experiment beat the baseline by more than the noise floor")
    n_exp = sum(r["status"] != "baseline" for r in rows)
    lines.append(f"- experiments: {n_exp} ({sum(r['status'] == 'crash' for r in rows)} crashed); compute "
                 f"{compute_s:.0f} s; LLM cost ${cost:.2f} ({', '.join(llms) or 'none'})")
    lines.append(f"- setting: preset {info.get('preset', '?')}, budget {info.get('time_budget_s', '?')} s, "
                 f"device {info.get('device', '?')}, data {info.get('data', '?')}")
    why = comparable(info)
    lines += ["", "### Published reference points (H100, 300 s, autoresearch's data)", ""]
    if why:
        lines.append(f"**Not comparable with this run** ({'; '.join(why)}); listed for context only:")
    for what, v in PUBLISHED:
        lines.append(f"- {what}: {v}")
    lines += ["", "### Kept changes", ""]
    repo = run_dir / REPO
    for k in kept:
        gain = (k["before"] - k["val_bpb"]) if k["before"] is not None else float("nan")
        lines += [f"**{k['node']}** {k['idea']}: val_bpb {k['val_bpb']:.6f} (gain {gain:+.6f})", "",
                  "```diff", _diff(repo, k["parent_sha"], k["sha"]) or "(no textual change)", "```", ""]
    if not kept:
        lines.append("none")
    lines += ["", "### val_bpb per experiment", "",
              "| # | node | val_bpb | status | memory GB | description |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(f"| {i} | {r['node']} | {r['val_bpb']} | {r['status']} | {r['memory_gb']} | "
                     f"{r['description'].replace('|', '/')} |")
    if (run_dir / PLOT).exists():
        lines += ["", f"![progress]({PLOT})"]
    text = "\n".join(lines) + "\n"
    (run_dir / "report.md").write_text(text)
    return text
