"""The report's "Verification" section: `verify.json` (written by `aira compose verify`), when present.

Reads only what the file says: the patterns trained at one width, their held-out bits per byte over
seeds, and each one's difference from Llama's alternation with its interval and verdict.
"""

from __future__ import annotations

from aira.report.data import RunData
from aira.report.html import Markup, badge, esc, fmt, para, section, si, table


def _ci(c: dict) -> str:
    ci = c.get("ci95")
    if not isinstance(ci, list) or len(ci) != 2:
        return "-"
    return f"[{fmt(ci[0], '+.4f')}, {fmt(ci[1], '+.4f')}]"


def verify_section(run: RunData) -> Markup | None:
    v = run.verify
    arms = [a for a in (v or {}).get("arms", []) if isinstance(a, dict)]
    if not arms:
        return None
    comps = {c.get("name"): c for c in v.get("comparisons", []) if isinstance(c, dict)}
    rows, attrs = [], []
    for a in arms:
        c = comps.get(a.get("name"), {})
        matched = a.get("ffn_dim") != a.get("preset_ffn_dim")
        rows.append([
            a.get("name", "?"), Markup(f"<code>{esc(a.get('compressed') or a.get('pattern'))}</code>"),
            fmt(a.get("layers")), si(a.get("non_embedding_params")), f"{fmt(a.get('ffn_dim'))}{' (matched)' if matched else ''}",
            fmt(a.get("heldout_bpb"), ".4f"), fmt(a.get("heldout_bpb_std"), ".4f"), len(a.get("seeds") or {}),
            fmt(c.get("difference"), "+.4f") if c else "reference", _ci(c) if c else "",
            c.get("verdict", "") if c else "",
        ])
        attrs.append({"data-name": a.get("name", ""), "data-verdict": c.get("verdict", "reference") if c else "reference"})
    verdict = v.get("verdict") or "incomplete"
    kind = {"better": "ok", "worse": "bad"}.get(verdict, "")
    winner = v.get("winner") or {}
    intro = para(
        f"The winner ({winner.get('source', '?')}) and the baselines retrained at {v.get('target', '?')} width, "
        f"non-embedding parameters matched to Llama's alternation within "
        f"{fmt(100 * (v.get('match') or {}).get('tolerance', float('nan')), '.0f')}% "
        f"({(v.get('match') or {}).get('how', '-')}); {v.get('data', '-')}; {v.get('budget', '-')} per model, "
        f"seeds {', '.join(map(str, v.get('seeds', [])))}. Scores: {v.get('metric', '-')}. Rule: {v.get('rule', '-')}."
    )
    head = Markup(f"<p>Verdict for the winner: {badge(verdict, kind)}"
                  f"{'' if v.get('complete') else ' (incomplete: some trainings are missing or failed)'}</p>")
    return section(
        "verify", "Verification",
        head, intro,
        table(["pattern", "layers", "non-embedding", "FFN width", "heldout bpb", "std", "seeds", "vs llama",
               "95% CI", "verdict"], rows, cls="verify", row_attrs=attrs),
    )
