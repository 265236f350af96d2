"""Sections for what later stages leave in the run folder: Compose's aggregation, extrapolations,
scaling study and proxy-fidelity checks, autoresearch's results.tsv and plots, and the LRA report section.

Every one is optional: a function returns None when its file is absent. The files are written by
other commands (`aira compose ...`, the autoresearch loop), so fields are read defensively: a
missing key shows as "-" rather than failing the whole report.
"""

from __future__ import annotations

import json

from aira.report import plots
from aira.report.analysis import FIDELITY_ROWS, fidelity_rows, ratio_text, reference_score
from aira.report.data import RunData
from aira.report.html import Images, Markup, esc, figure, fmt, kv_table, para, section, si, table


def _code(x) -> Markup:
    return Markup(f"<code>{esc(x)}</code>")


def aggregate_section(run: RunData, images: Images) -> Markup | None:
    agg = run.aggregate
    if not agg or not isinstance(agg.get("pattern"), str):
        return None
    top = [c for c in agg.get("top", []) if isinstance(c, dict) and isinstance(c.get("pattern"), str)]
    strips = [(f"aggregate ({agg.get('method', '?')})", agg["pattern"])]
    strips += [(f"top #{i + 1} ({fmt(c.get('score'))})", c["pattern"]) for i, c in enumerate(top[:10])]
    fallbacks = [str(layer.get("layer")) for layer in agg.get("layers", []) if layer.get("fallback")]
    items = {
        "method": agg.get("method", "-"),
        "pattern": _code(agg["pattern"]),
        "ratio": ratio_text(agg["pattern"]),
        "top candidates": len(top),
        "layers that fell back to a shorter context": ", ".join(fallbacks) or "none",
    }
    rows = [
        (i + 1, _code(c["pattern"]), fmt(c.get("score")), ratio_text(c["pattern"])) for i, c in enumerate(top)
    ]
    ref = reference_score(run.nodes)
    below = [c for c in top if isinstance(c.get("score"), (int, float)) and ref is not None
             and run.info.better(ref, c["score"])]
    notes = []
    if below:
        notes.append(Markup(
            f'<p class="warn below-baseline">{len(below)} of the {len(top)} candidates this pattern was voted '
            f"from score below the reference (baseline) proposal's {esc(fmt(ref))}: the vote aggregated over "
            "candidates that do not beat the baseline.</p>"))
    return section(
        "aggregate",
        "Aggregated pattern",
        *notes,
        kv_table(items),
        figure(
            images.add("aggregate", plots.pattern_strips(strips), "aggregated pattern and top candidates"),
            "The aggregated pattern (top row) and the top candidates it was voted from.",
        ),
        table(["#", "candidate", "score", "ratio"], rows, cls="top"),
    )


def extrapolate_section(run: RunData, images: Images) -> Markup | None:
    xs = [x for x in run.extrapolations if isinstance(x.get("pattern"), str)]
    if not xs:
        return None
    strips, rows, seen_ref = [], [], set()
    for x in xs:
        label = f"{x.get('target', '?')} {x.get('strategy', '?')}"
        strips.append((label, x["pattern"]))
        ref = x.get("reference_pattern")
        if isinstance(ref, str) and (x.get("target"), ref) not in seen_ref:
            seen_ref.add((x.get("target"), ref))
            strips.append((f"{x.get('target', '?')} reference", ref))
        rows.append(
            (
                x.get("target", "-"),
                x.get("strategy", "-"),
                _code(x.get("source_pattern", "-")),
                _code(x.get("compressed") or x["pattern"]),
                x.get("layers", len(x["pattern"])),
                ratio_text(x["pattern"]),
                fmt(x.get("scale"), ".3g"),
                si(x.get("params")),
                si(x.get("non_embedding_params")),
                si(x.get("reference_non_embedding_params")),
                si(x.get("flops_per_token")),
            )
        )
    headers = [
        "target",
        "strategy",
        "searched",
        "extrapolated",
        "layers",
        "ratio",
        "scale M/m",
        "params",
        "non-emb.",
        "reference non-emb.",
        "FLOPs/token",
    ]
    return section(
        "extrapolate",
        "Extrapolated patterns",
        table(headers, rows, cls="extrapolate"),
        figure(
            images.add("extrapolated", plots.pattern_strips(strips), "extrapolated patterns"),
            "Each extrapolated pattern with its target's Llama-style reference below it.",
        ),
    )


def scaling_section(run: RunData, images: Images) -> Markup | None:
    sc = run.scaling
    archs = sc.get("architectures") if sc else None
    if not isinstance(archs, dict) or not archs:
        return None
    rows = []
    for name, arch in archs.items():
        fr = arch.get("frontier") or {}
        pts = fr.get("points", [])
        rows.append(
            (
                name,
                fmt(fr.get("a"), ".4g"),
                fmt(fr.get("b"), ".4f"),
                len(pts),
                sum(bool(p.get("fitted")) for p in pts),
                len(arch.get("runs", [])),
            )
        )
    parts = [
        figure(
            images.add("scaling", plots.scaling_frontiers(archs), "scaling frontiers"),
            "Faint dots: every run; diamonds: each budget's compute-optimal point; lines: L*(C) = a C^b.",
        ),
        table(["architecture", "a", "b", "budgets", "fitted minima", "runs"], rows, cls="frontiers"),
    ]
    comps = [c for c in sc.get("comparisons") or [] if isinstance(c, dict)]
    if comps:
        keys = list(dict.fromkeys(k for c in comps for k in c))
        parts.append(para("Comparisons (p = 100 (b_X / b_Y - 1): how much faster X's frontier falls):"))
        parts.append(table(keys, [[_cell(c.get(k)) for k in keys] for c in comps], cls="comparisons"))
    return section("scaling", "Scaling frontiers", *parts)


def _cell(v) -> str:
    if isinstance(v, float):
        return fmt(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return "-" if v is None else str(v)


FIDELITY_META = ("proxy", "space", "layers", "fidelities", "date", "machine", "command", "notes")


def _readable(v) -> str:
    """A value of fidelity.json as text: numbers rounded, intervals as [a, b], small dicts as 'k v, ...'."""
    if isinstance(v, bool) or v is None:
        return "-" if v is None else ("yes" if v else "no")
    if isinstance(v, float):
        return fmt(v, ".3g")
    if isinstance(v, list):
        return "[" + ", ".join(_readable(x) for x in v) + "]" if len(v) <= 8 else f"{len(v)} values"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_readable(x)}" for k, x in v.items() if not isinstance(x, (dict, list)))
    return str(v)


def fidelity_section(run: RunData) -> Markup | None:
    from aira.report.sections_search import proxy_fidelity_notes

    fid = run.fidelity
    notes = proxy_fidelity_notes(run)
    if not fid:
        return section("fidelity", "Proxy fidelity", *notes) if notes else None
    parts = [*notes, para(
        "How far the proxy's ranking can be trusted: rank correlation with the larger scale, its confidence "
        "interval, seed-to-seed agreement, the noise floor and score saturation.")]
    rows = [(label, _readable(v), target, meaning) for label, v, target, meaning in fidelity_rows(fid)]
    parts.append(table(["figure", "value", "target", "what it says"], rows, cls="fidelity"))
    per = fid.get("per_fidelity")
    if isinstance(per, dict) and per:
        per = {f: x for f, x in per.items() if isinstance(x, dict)}
        keys = list(dict.fromkeys(k for x in per.values() for k, v in x.items() if not isinstance(v, (dict, list))))
        parts.append(para("Per fidelity:"))
        parts.append(table(["fidelity", *keys], [[f, *(_readable(x.get(k)) for k in keys)] for f, x in per.items()],
                           cls="fidelity-per"))
    meta = {k: _readable(fid[k]) for k in FIDELITY_META if k in fid}
    shown = {k for k, *_ in FIDELITY_ROWS} | set(FIDELITY_META) | {"per_fidelity"}
    rest = {k: _readable(v) for k, v in fid.items() if k not in shown and not isinstance(v, (dict, list))}
    if meta or rest:
        parts.append(kv_table({**meta, **rest}))
    return section("fidelity", "Proxy fidelity", *parts)


def halving_section(run: RunData) -> Markup | None:
    h = run.halving
    rungs = [r for r in (h or {}).get("rungs", []) if isinstance(r, dict) and isinstance(r.get("ranked"), list)]
    if len(rungs) < 2:
        return None
    scores = [{e.get("pattern"): e.get("score") for e in r["ranked"] if isinstance(e, dict)} for r in rungs]
    order = [e.get("pattern") for e in rungs[-1]["ranked"] if isinstance(e, dict)]
    rows = [[_code(p)] + [fmt(s[p]) if p in s else "-" for s in scores] for p in order]
    heads = ["pattern"] + [f"rung {r.get('rung', '?')} ({r.get('budget', '?')})" for r in rungs]
    return section(
        "halving",
        "Successive halving",
        para(
            f"The search's best candidates trained longer (eta {h.get('eta', '?')}: each rung keeps 1/eta of "
            f"the patterns at eta times the budget; scores: {h.get('score', '-')}). Promoted: "
            f"{h.get('promoted') or '-'}."
        ),
        table(heads, rows, cls="halving"),
    )


def autoresearch_section(run: RunData, images: Images) -> Markup | None:
    if run.results_tsv is None and not run.pngs:
        return None
    parts = []
    if run.results_tsv is not None:
        rows = run.results_tsv
        headers = list(rows[0]) if rows else ["(results.tsv is empty)"]
        parts.append(para(f"results.tsv: {len(rows)} experiments."))
        parts.append(table(headers, [[r.get(h, "") for h in headers] for r in rows], cls="results"))
    for p in run.pngs:
        try:
            data = p.read_bytes()
        except OSError:
            continue
        parts.append(figure(images.add_png(f"run-{p.stem}", data, p.name), f"{p.name} (from the run folder)"))
    return section("experiments", "Experiments", *parts)


def lra_section(run: RunData) -> Markup | None:
    """`lra_report.md` (written by `aira design run lra-*`), shown as preformatted text."""
    try:
        text = (run.run_dir / "lra_report.md").read_text(encoding="utf-8")
    except OSError:
        return None
    return section("lra", "Long Range Arena", Markup(f'<pre class="lra">{esc(text)}</pre>'))


def _origin_line(origin: dict) -> str:
    # the run folder's own words (report reads no code): a design run's node and score, or a file
    if origin.get("kind") == "design-run":
        score = origin.get("metric")
        sel = origin.get("selection_metric")
        scored = f", {origin.get('metric_name', 'score')} {fmt(score)}" if isinstance(score, (int, float)) else ""
        hidden = f", hidden test {fmt(sel)}" if isinstance(sel, (int, float)) else ""
        return (f"design run {origin.get('run')} node {origin.get('node')} ({origin.get('task', '?')}{scored}"
                f"{hidden}): {origin.get('idea', '')}").rstrip(": ")
    return f"file {origin.get('path', '?')}"


def primitives_section(run: RunData) -> Markup | None:
    """Where each promoted primitive (an LRA mechanism made a Compose layer) came from, and its measured size."""
    if not run.primitives:
        return None
    rows = []
    for p in run.primitives:
        c = p.get("counts") or {}
        ratio = (f"{c['params'] / c['attention_params']:.2f}x / {c['flops_per_token'] / c['attention_flops_per_token']:.2f}x"
                 if c.get("attention_params") and c.get("attention_flops_per_token") else "")
        rows.append((p.get("letter", "?"), _origin_line(p.get("origin") or {}), str(p.get("sha256", ""))[:12],
                     si(c.get("params")), si(c.get("flops_per_token")), ratio))
    return section("primitives", "Promoted primitives",
                   para("Mechanisms written for LRA (AIRA-Design) and promoted into this search space; their code is "
                        "in primitives/ of the run folder. Parameters and training FLOPs per token are measured per "
                        "layer at the proxy's width and length."),
                   table(["code", "origin", "sha256", "params", "FLOPs/token", "vs A (params / FLOPs)"], rows,
                         cls="primitives"))
