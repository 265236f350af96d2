"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

`Figure()` is used directly instead of `pyplot`: pyplot keeps global state and picks a GUI backend,
neither of which a report written from a CLI or a test wants. Each function takes plain data and
returns a Figure; `png(fig)` renders it. Colours are fixed per primitive (attention blue, MLP
orange, Mamba-2 green) so that every figure of every report reads the same way.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from aira.report.analysis import code_order, primitive_name

PRIMITIVE_COLORS = {"A": "#4C72B0", "M": "#DD8452", "S": "#55A868", "W": "#8172B3"}
_OTHER = ["#C44E52", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]
_SERIES = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
DPI = 100


def color(code: str) -> str:
    if code in PRIMITIVE_COLORS:
        return PRIMITIVE_COLORS[code]
    return _OTHER[(ord(code) - ord("A")) % len(_OTHER)]


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def best_so_far(
    curves: dict[str, Sequence[float | None]],
    *,
    lower_is_better: bool,
    metric: str = "search score",
    floor: tuple[float, float] | None = None,
    dashed: Sequence[str] = (),
) -> Figure:
    """One step line per agent: best search score against that agent's evaluation count.
    `floor` = (mean, std) of the reference draws a band; agents in `dashed` (random search, BO) are
    drawn dashed, as the baselines the LLM agents must beat."""
    fig = Figure(figsize=(8, 4.2))
    ax = fig.add_subplot()
    for agent, ys in curves.items():
        xs = [i + 1 for i, y in enumerate(ys) if y is not None]
        vals = [y for y in ys if y is not None]
        if not vals:
            continue
        # markers: an agent with a single evaluation has no step to draw, only its point
        ax.step(xs, vals, where="post", label=agent, linestyle="--" if agent in dashed else "-", linewidth=1.6,
                marker="o", markersize=3)
    _floor_band(ax, floor)
    ax.set_xlabel("evaluations of the agent")
    ax.set_ylabel(f"best {metric} so far ({'lower' if lower_is_better else 'higher'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def _floor_band(ax, floor: tuple[float, float] | None) -> None:
    if floor is not None:
        mean, std = floor
        ax.axhline(mean, color="0.4", linewidth=1, label="reference (noise floor)")
        if std > 0:
            ax.axhspan(mean - std, mean + std, color="0.6", alpha=0.25, linewidth=0)


def best_against_cost(
    curves: dict[str, Sequence[tuple[float, float, float | None]]],
    *,
    lower_is_better: bool,
    metric: str = "search score",
    floor: tuple[float, float] | None = None,
    dashed: Sequence[str] = (),
) -> Figure:
    """Two panels of the same best-so-far lines: against the run's wall clock (left) and against the
    agent's own compute, its evaluation seconds summed (right). `curves[agent]` = [(wall_s, compute_s,
    best)] per evaluation, in order."""
    fig = Figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for k, (ax, xlabel) in enumerate(zip(axes, ("wall-clock time since the run started (s)",
                                                "compute: the agent's evaluation seconds, summed"))):
        for agent, pts in curves.items():
            xy = [(p[k], p[2]) for p in pts if p[2] is not None]
            if xy:
                ax.step([x for x, _ in xy], [y for _, y in xy], where="post", label=agent, marker="o",
                        markersize=3, linewidth=1.6, linestyle="--" if agent in dashed else "-")
        _floor_band(ax, floor)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"best {metric} so far ({'lower' if lower_is_better else 'higher'} is better)")
    axes[1].legend(fontsize=8, loc="best")
    return fig


def leaderboard_scores(
    labels: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float | None],
    *,
    metric: str,
    floor: tuple[float, float] | None = None,
    highlight: Sequence[bool] = (),
) -> Figure:
    """Horizontal bars of the top rows' search score with their spread over seeds as error bars."""
    n = len(labels)
    fig = Figure(figsize=(8, 0.9 + 0.32 * n))
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]
    colors = ["#888888" if (highlight and highlight[i]) else "#4C72B0" for i in range(n)]
    errs = [s if s is not None and math.isfinite(s) else 0.0 for s in stds]
    ax.errorbar(means, ys, xerr=errs, fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.scatter(means, ys, c=colors, zorder=3)
    if floor is not None:
        mean, std = floor
        ax.axvline(mean, color="0.4", linewidth=1)
        if std > 0:
            ax.axvspan(mean - std, mean + std, color="0.6", alpha=0.25, linewidth=0)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlabel(f"{metric} (search split; bars: spread over seeds; band: noise floor)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def primitive_heatmap(codes: Sequence[str], freq: Sequence[Sequence[float]], *, title: str) -> Figure:
    """Share of the top candidates using each primitive at each layer (rows: primitives)."""
    layers = len(freq[0])
    fig = Figure(figsize=(max(6.0, 0.45 * layers + 1.5), 0.7 + 0.55 * len(codes)))
    ax = fig.add_subplot()
    im = ax.imshow(freq, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0)
    for r, row in enumerate(freq):
        for i, v in enumerate(row):
            ax.text(
                i,
                r,
                f"{v:.0%}" if v else "",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > 0.6 else "black",
            )
    ax.set_yticks(range(len(codes)), [f"{c} {primitive_name(c)}" for c in codes])
    ax.set_xticks(range(layers), [str(i) for i in range(layers)], fontsize=8)
    ax.set_xlabel("layer")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    return fig


def ratio_bars(items: Sequence[tuple[str, str]]) -> Figure:
    """Stacked bars of each pattern's primitive shares (attention : MLP : Mamba ...)."""
    codes = sorted({c for _, p in items for c in p}, key=code_order)
    fig = Figure(figsize=(8, 0.9 + 0.3 * len(items)))
    ax = fig.add_subplot()
    ys = list(range(len(items)))[::-1]
    left = [0.0] * len(items)
    for c in codes:
        share = [p.count(c) / len(p) if p else 0.0 for _, p in items]
        ax.barh(ys, share, left=left, color=color(c), label=f"{c} {primitive_name(c)}")
        left = [a + b for a, b in zip(left, share)]
    ax.set_yticks(ys, [label for label, _ in items], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of layers")
    ax.legend(fontsize=8, ncol=len(codes), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


def pattern_strips(items: Sequence[tuple[str, str]]) -> Figure:
    """Each pattern as a row of coloured cells, one per layer, so depth and order read at a glance."""
    longest = max(len(p) for _, p in items)
    fig = Figure(figsize=(min(14.0, max(6.0, 0.16 * longest + 3)), 0.7 + 0.38 * len(items)))
    ax = fig.add_subplot()
    for row, (_, p) in enumerate(items):
        y = len(items) - 1 - row
        for i, c in enumerate(p):
            ax.add_patch(_cell(i, y, color(c)))
    ax.set_xlim(0, longest)
    ax.set_ylim(-0.1, len(items))
    ax.set_yticks(
        [len(items) - 1 - r + 0.4 for r in range(len(items))], [label for label, _ in items], fontsize=8
    )
    ax.set_xlabel("layer")
    seen = sorted({c for _, p in items for c in p}, key=code_order)
    handles = [_cell(0, 0, color(c)) for c in seen]
    ax.legend(
        handles,
        [f"{c} {primitive_name(c)}" for c in seen],
        fontsize=8,
        ncol=len(seen),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return fig


def _cell(x: float, y: float, fc: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 0.92, 0.8, facecolor=fc, edgecolor="none")


def scaling_frontiers(archs: dict[str, dict]) -> Figure:
    """Left: isoFLOP curves, loss against non-embedding parameters for each compute budget. Right: loss
    against compute (log-log) with each budget's compute-optimal point and the fitted frontier
    L*(C) = a * C^b per architecture."""
    fig = Figure(figsize=(12, 4.6))
    iso, ax = fig.subplots(1, 2)
    for i, (name, arch) in enumerate(archs.items()):
        col = _SERIES[i % len(_SERIES)]
        runs = [r for r in arch.get("runs", []) if _positive(r.get("compute")) and _positive(r.get("loss"))]
        for c in sorted({r["compute"] for r in runs}):
            curve = sorted(
                (r.get("params") or r.get("size") or 0, r["loss"]) for r in runs if r["compute"] == c
            )
            curve = [(n, loss) for n, loss in curve if _positive(n)]
            if curve:
                iso.plot(
                    [n for n, _ in curve],
                    [loss for _, loss in curve],
                    marker="o",
                    markersize=3,
                    color=col,
                    alpha=0.8,
                    linewidth=1,
                )
        if runs:
            ax.scatter([r["compute"] for r in runs], [r["loss"] for r in runs], s=12, color=col, alpha=0.35)
        fr = arch.get("frontier") or {}
        pts = [
            p for p in fr.get("points", []) if _positive(p.get("compute")) and _positive(p.get("loss_opt"))
        ]
        label = name
        if pts:
            ax.scatter([p["compute"] for p in pts], [p["loss_opt"] for p in pts], s=36, color=col, marker="D")
            iso.scatter(
                [p["n_opt"] for p in pts if _positive(p.get("n_opt"))],
                [p["loss_opt"] for p in pts if _positive(p.get("n_opt"))],
                s=36,
                color=col,
                marker="D",
            )
        if pts and _positive(fr.get("a")) and isinstance(fr.get("b"), (int, float)):
            lo, hi = min(p["compute"] for p in pts), max(p["compute"] for p in pts)
            xs = [lo * (hi / lo) ** (k / 40) for k in range(41)] if hi > lo else [lo]
            ax.plot(xs, [fr["a"] * x ** fr["b"] for x in xs], color=col, linewidth=1.6)
            label = f"{name}: L = {fr['a']:.3g} C^{fr['b']:.4f}"
        ax.plot([], [], color=col, label=label)
    iso.set_xscale("log")
    iso.set_xlabel("non-embedding parameters N")
    iso.set_ylabel("loss")
    iso.set_title("isoFLOP curves (one line per budget)", fontsize=10)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("loss")
    ax.set_title("frontiers", fontsize=10)
    # Losses span less than a decade: label the minor ticks as plain numbers, not 7x10^0.
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    for a in (iso, ax):
        a.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0
