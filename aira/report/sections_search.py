"""Sections every run has: overview and final pick, agents, leaderboard, search curves, and (for
pattern proposals) the primitive heat map and ratios of the top candidates.

Each function takes the loaded run and the image sink and returns the section's HTML, or None when
the run has nothing to show there.
"""

from __future__ import annotations

from aira.agents.stats import REFERENCE, agent_stats, stopped_with_run
from aira.agents.types import Node, Status
from aira.report import plots
from aira.report.analysis import (
    agent_evaluations,
    best_so_far,
    curve_points,
    frequencies,
    leader_rows,
    ratio_text,
    top_patterns,
)
from aira.report.data import RunData
from aira.report.html import Images, Markup, badge, esc, figure, fmt, kv_table, para, section, si, table

# Policies that are baselines for the LLM agents: drawn dashed in the search curves.
BASELINE_POLICIES = ("random", "bo", "baselines")


def short(proposal, n: int = 80) -> str:
    from aira.agents.memory import short_proposal

    s = short_proposal(proposal)
    return s if len(s) <= n else s[: n - 1] + "…"


def origin(node: Node) -> Markup:
    """How a node came about: reference, or its LLM, with every offline (no-LLM) move labelled so."""
    if node.operator == REFERENCE:
        return badge("reference", "reference")
    if node.llm == "offline":
        return badge("offline", "offline")
    return esc(node.llm)


def metric_name(run: RunData) -> str:
    for n in run.nodes:
        name = n.metrics.get("metric_name")
        if isinstance(name, str) and name:
            return name
    return "metric"


def overview(run: RunData) -> Markup:
    nodes = run.nodes
    if not nodes and not run.config:
        notes = [Markup(f'<p class="warn">{esc(w)}</p>') for w in run.warnings]
        return section(
            "overview", "Overview", para("A study folder (no agent run): only its results are shown."), *notes
        )
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n.status.value] = counts.get(n.status.value, 0) + 1
    info = run.info
    items = {
        "task": f"{info.name} ({metric_name(run)}, {'lower' if info.lower_is_better else 'higher'} is better)",
        "agents": " ".join(run.config.get("agents", [])) or "-",
        "budget": run.config.get("resolved", {}).get("budget", "-"),
        "nodes": f"{len(nodes)} (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")",
        "LLM cost": f"${sum(n.cost_usd for n in nodes):.2f}",
        "compute": f"{sum(n.seconds for n in nodes):.0f} s",
    }
    if run.summary:
        items["stopped"] = run.summary.get("stop_reason") or "-"
        items["wall clock"] = f"{run.summary.get('elapsed_s', 0):.0f} s"
    else:
        items["stopped"] = "no summary.json: the run is still going or did not finish"
    if run.floor is not None:
        f = run.floor
        items["noise floor"] = (
            f"reference mean {f.mean:.4g}, std {f.std:.3g}, max-min {f.spread:.3g} over {f.n} seeds; "
            + ("std: the proxy's measured figure (too few reference seeds in the run); "
               if getattr(f, "source", "") == "measured" else "")
            + "differences smaller than one std are ties"
        )
    else:
        items["noise floor"] = "none (the task has no reference proposal, or it did not finish)"
    stopped = sum(stopped_with_run(n) for n in nodes)
    if stopped:
        items["nodes"] += f"; {stopped} killed were stopped with the run when its budget ran out (not failures)"
    parts = [*proxy_fidelity_notes(run), kv_table(items)]
    if run.config and agent_evaluations(nodes) == 0:
        parts.insert(0, Markup(
            '<p class="warn zero-evals"><b>No agent evaluation finished:</b> the agents spent 0 evaluations '
            "(every proposal was invalid, the budget ran out first, or the run has not got that far), so "
            "there is nothing here to rank.</p>"))
    offline = sum(n.llm == "offline" and n.operator != REFERENCE for n in nodes)
    agents = [n for n in nodes if n.operator != REFERENCE]
    if offline:
        parts.append(
            Markup(
                f'<p class="warn">{badge("offline", "offline")} {offline} of {len(agents)} agent nodes were '
                "made by the offline agent (the task's search moves, no LLM): they say nothing about an "
                "LLM's ability.</p>"
            )
        )
    parts += [Markup(f'<p class="warn">{esc(w)}</p>') for w in run.warnings]
    pick = run.final_pick()
    if pick is not None:
        sel = pick.selection_metric
        parts.append(
            Markup(
                f'<div class="pick"><b>Final pick</b> (best by the hidden selection split): node '
                f"<code>{esc(pick.id)}</code> by {esc(pick.agent)} {origin(pick)}; selection score "
                f"<b>{esc(fmt(sel))}</b>, search score {esc(fmt(pick.metric))}"
                f"{'' if sel is not None else ' (the task has no selection split: ranked by search)'}"
                f"<br><code>{esc(short(pick.proposal, 200))}</code></div>"
            )
        )
    return section("overview", "Overview", *parts)


def proxy_fidelity_notes(run: RunData) -> list[Markup]:
    """The proxy-fidelity warnings `aira compose run` printed at the start (kept in config.json)."""
    notice = run.config.get("resolved", {}).get("proxy_fidelity")
    if not isinstance(notice, dict):
        return []
    warnings = [w for w in notice.get("warnings") or [] if isinstance(w, str)]
    if not warnings:
        return [para(f"Proxy fidelity ({notice.get('proxy', '?')}): {notice.get('figures') or '-'}")]
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    return [Markup(f'<div class="warn fidelity-warning"><b>Proxy fidelity ({esc(notice.get("proxy", "?"))}, '
                   f'{esc(notice.get("status", "?"))}):</b> {esc(notice.get("figures") or "")}<ul>{items}</ul></div>')]


def agents_section(run: RunData) -> Markup | None:
    stats = agent_stats(run.nodes, run.info, run.floor)
    if not stats:
        return None
    rows = []
    for s in stats:
        mine = [n for n in run.nodes if n.agent == s.agent]
        llms = sorted({n.llm for n in mine})
        llm = badge("offline", "offline") if llms == ["offline"] else esc(", ".join(llms))
        tokens = sum(n.input_tokens + n.output_tokens for n in mine)
        rows.append(
            (
                s.agent,
                llm,
                s.nodes,
                f"{s.valid_rate:.0%}",
                f"{s.success_rate:.0%}",
                fmt(s.best_metric),
                fmt(s.best_selection),
                fmt(s.normalised, ".3f"),
                f"${s.cost_usd:.2f}",
                f"{tokens:,}",
                f"{s.compute_s:.1f}",
            )
        )
    headers = [
        "agent",
        "LLM",
        "nodes",
        "valid",
        "ok",
        "best search",
        "its selection",
        "NS",
        "LLM cost",
        "tokens",
        "compute s",
    ]
    note = para(
        "NS: AIRS-Bench normalised score of the agent's best node (0 = the reference baseline, "
        "1 = the task's SOTA reference). Compute: seconds of evaluation jobs."
    )
    return section("agents", "Agents", table(headers, rows, cls="agents"), note)


def leaderboard_section(run: RunData, images: Images, *, top: int) -> Markup | None:
    rows = leader_rows(run.nodes, run.info, run.floor, top=top)
    if not rows:
        return None
    metric = metric_name(run)
    body, attrs = [], []
    for r in rows:
        n = r.node
        rank = f"={r.group}" if r.tied and r.group != r.rank else str(r.rank)
        tie = badge(f"tie with #{r.group}", "tie") if r.tied and r.group != r.rank else ""
        spread = "-" if r.seed_std is None else f"± {r.seed_std:.3g} ({r.seeds} seeds)"
        body.append(
            (
                Markup(f"{esc(rank)} {tie}"),
                Markup(f"<code>{esc(n.id)}</code>"),
                n.agent,
                origin(n),
                n.operator,
                fmt(n.metric),
                spread,
                fmt(n.selection_metric),
                si(n.metrics.get("params")),
                si(n.metrics.get("flops_per_token")),
                _proposal_cell(n),
            )
        )
        attrs.append(
            {
                "class": " ".join(
                    c for c in ("reference" if r.reference else "", "tied" if r.tied else "") if c
                ),
                "data-node": n.id,
                "data-search": repr(n.metric),
                "data-selection": repr(n.selection_metric),
                "data-group": r.group,
            }
        )
    headers = [
        "#",
        "node",
        "agent",
        "origin",
        "operator",
        f"search {metric}",
        "spread over seeds",
        "selection",
        "params",
        "FLOPs/token",
        "proposal",
    ]
    floor = None if run.floor is None else (run.floor.mean, run.floor.std)
    fig = plots.leaderboard_scores(
        [f"#{r.rank} {r.node.id} {r.node.agent}" for r in rows],
        [r.node.metric for r in rows],
        [r.seed_std for r in rows],
        metric=metric,
        floor=floor,
        highlight=[r.reference for r in rows],
    )
    tie_note = (
        f"Rows marked '=k' are within the noise floor (one std, {run.floor.std:.3g}) of row k: a tie."
        if run.floor is not None and run.floor.std > 0
        else "No noise floor was measured (no reference runs), so no differences are marked as ties."
    )
    return section(
        "leaderboard",
        "Leaderboard",
        para(
            f"Finished nodes ranked by the hidden selection split (search split where there is none), best "
            f"first; reference runs are grey. {tie_note}"
        ),
        table(headers, body, cls="leaderboard", row_attrs=attrs),
        figure(
            images.add("leaderboard", fig, "leaderboard scores"),
            "Search score of the top rows; bars are the spread over seeds, grey band the noise floor.",
        ),
    )


def _proposal_cell(n: Node) -> Markup:
    code = Markup(f"<code>{esc(short(n.proposal))}</code>")
    if n.operator == "baseline" and n.idea:  # a named baseline (Llama-style, Composer's composites, ...)
        return Markup(f"{esc(n.idea)}: {code}")
    return code


def curves_section(run: RunData, images: Images) -> Markup | None:
    curves = {a: best_so_far(run.nodes, run.info, a) for a in run.agents}
    curves = {a: ys for a, ys in curves.items() if any(y is not None for y in ys)}
    if not curves:
        return None
    dashed = [a for a in curves if a.split(":", 1)[0].split("#", 1)[0] in BASELINE_POLICIES]
    style = {"lower_is_better": run.info.lower_is_better, "metric": metric_name(run), "dashed": dashed,
             "floor": None if run.floor is None else (run.floor.mean, run.floor.std)}
    fig = plots.best_so_far(curves, **style)
    points = {a: [(p.wall_s, p.compute_s, p.best) for p in curve_points(run.nodes, run.info, a)] for a in curves}
    cost = plots.best_against_cost(points, **style)
    return section(
        "curves",
        "Search curves",
        figure(
            images.add("best_so_far", fig, "best score so far per agent"),
            "Best search score against each agent's own evaluations (crashes count, invalid proposals and "
            "jobs stopped by the budget do not); random search and BO dashed; grey: the reference and its "
            "noise band.",
        ),
        figure(
            images.add("best_vs_cost", cost, "best score so far against wall time and compute"),
            "The same curves against the run's wall clock (left) and against each agent's compute, its "
            "evaluation seconds summed (right): an agent that wins per evaluation may lose per second.",
        ),
    )


def patterns_section(run: RunData, images: Images) -> Markup | None:
    """Heat map of primitive frequency per layer and the attention:MLP:Mamba ratios of the top candidates."""
    if run.aggregate and run.aggregate.get("top"):
        pats = [c["pattern"] for c in run.aggregate["top"] if isinstance(c.get("pattern"), str)]
        source = f"the {len(pats)} top candidates the aggregation used"
    else:
        pats = top_patterns(run.nodes, run.info, k=20)
        source = f"the {len(pats)} best distinct patterns"
    pats = [p for p in pats if p and len(p) == len(pats[0])] if pats else []
    if not pats:
        return None
    codes, freq = frequencies(pats)
    heat = plots.primitive_heatmap(codes, freq, title=f"primitive frequency per layer among {source}")
    items = [(f"#{i + 1} {p}", p) for i, p in enumerate(pats[:12])]
    # The stage-2 results beside the candidates they came from: does aggregation keep the mix?
    if run.aggregate and isinstance(run.aggregate.get("pattern"), str):
        items.append((f"aggregate ({run.aggregate.get('method', '?')})", run.aggregate["pattern"]))
    items += [
        (f"{x.get('target', '?')} {x.get('strategy', '?')}", x["pattern"])
        for x in run.extrapolations
        if isinstance(x.get("pattern"), str)
    ]
    ratio_rows = [(f"#{i + 1}", Markup(f"<code>{esc(p)}</code>"), ratio_text(p)) for i, p in enumerate(pats)]
    return section(
        "patterns",
        "Top patterns",
        figure(
            images.add("heatmap", heat, "primitive frequency per layer"),
            f"Share of {source} that use each primitive at each layer.",
        ),
        figure(
            images.add("ratios_top", plots.ratio_bars(items), "primitive ratios of the top candidates"),
            "Primitive shares (attention : MLP : Mamba-2) of the best candidates, and of the aggregated "
            "and extrapolated patterns where those stages ran.",
        ),
        table(["#", "pattern", "ratio"], ratio_rows, cls="ratios"),
    )


def failures_note(run: RunData) -> Markup | None:
    bad = [n for n in run.nodes if n.status.failed and n.status != Status.INVALID and not stopped_with_run(n)]
    stopped = sum(stopped_with_run(n) for n in run.nodes)
    note = para(f"{stopped} jobs were stopped when the run's budget ran out; they are not failures and are not "
                "listed.") if stopped else ""
    if not bad:
        return section("failures", "Failed evaluations", para("No evaluation failed."), note) if stopped else None
    rows = [(n.id, n.agent, n.status.value, _last_line(n.error)) for n in bad[:30]]
    return section(
        "failures",
        "Failed evaluations",
        para(f"{len(bad)} evaluations failed (first 30 shown, last line of the error)."),
        table(["node", "agent", "status", "error"], rows, cls="failures"),
        note,
    )


def _last_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""
