"""The LRA report section: each task's best mechanism beside published LRA results.

    write_report("runs/lra1")            # -> runs/lra1/lra_report.md (the HTML report embeds it)
    render(["runs/lra1", "runs/lra2"])   # one markdown text over several runs (one task each)

Per run: the final pick (best node by the hidden test accuracy; its validation accuracy beside it) with
its code, params, attention FLOPs and seconds; the full-softmax baseline's noise floor; the top nodes.
Then a table of published LRA test accuracies (Transformer, S4, S5, Mega, LRU, with sources) and the
gap from our best to the best of them, in points. A run on a stand-in (any data that is not LRA's at
LRA's sizes, which includes every smoke / cpu preset) is labelled STAND-IN everywhere and never
compared with the published numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from aira.agents.stats import REFERENCE, TaskInfo, leaderboard, noise_floor
from aira.agents.types import Node, Status
from aira.tasks.lra.references import PUBLISHED, SOURCES, TASK_COLUMNS, best_published

REPORT_FILE = "lra_report.md"
STANDIN_NOTE = "STAND-IN: not LRA's data at LRA's sizes; never compare with published numbers"


def _pct(x) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{100 * x:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _si(x) -> str:
    if not isinstance(x, (int, float)):
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _load(run_dir: Path) -> tuple[dict, list[Node]]:
    from aira.agents.journal import Journal

    config = json.loads((run_dir / "config.json").read_text())
    with Journal(run_dir, readonly=True) as j:
        return config, j.nodes()


def _is_standin(nodes: Sequence[Node]) -> bool:
    # Every evaluated node records whether its data was a stand-in; unknown counts as one.
    flags = [n.metrics.get("standin") for n in nodes if "standin" in n.metrics]
    return not flags or any(f is not False for f in flags)


def run_section(run_dir: str | Path) -> tuple[str, dict]:
    """(markdown for one run, a summary row {task, standin, val, test}) ."""
    run_dir = Path(run_dir)
    config, nodes = _load(run_dir)
    task = str(config.get("task", "?"))
    kw = config.get("task_kwargs", {})
    info = TaskInfo(name=task, lower_is_better=False)
    standin = _is_standin(nodes)
    agents_nodes = [n for n in nodes if n.operator != REFERENCE]
    board = leaderboard(agents_nodes, info, top=5)
    best = board[0] if board else None
    source = next((n.metrics.get("source") for n in nodes if n.metrics.get("source")), "?")
    lines = [f"## {task} ({kw.get('setting', 'fixed')} setting, preset {kw.get('preset', 'cpu')})", "",
             f"Data: {source}.", ""]
    if standin:
        lines += [f"**{STANDIN_NOTE}.**", ""]
    failed = sum(1 for n in agents_nodes if n.status.failed)
    lines.append(f"Run {run_dir}: {len(agents_nodes)} agent nodes ({failed} failed), "
                 f"{len(nodes) - len(agents_nodes)} baseline runs.")
    floor = noise_floor(nodes)
    refs = [n for n in nodes if n.operator == REFERENCE and n.status == Status.OK]
    if floor is not None:
        tests = [n.selection_metric for n in refs if n.selection_metric is not None]
        test_mean = sum(tests) / len(tests) if tests else None
        lines.append(f"Baseline (full softmax, {floor.n} seeds): validation {_pct(floor.mean)}% "
                     f"(std {100 * floor.std:.2f}), test {_pct(test_mean)}%.")
    lines.append("")
    if best is None:
        lines += ["No agent node finished OK.", ""]
        return "\n".join(lines), {"task": task, "standin": standin, "val": None, "test": None}
    m = best.metrics
    lines += ["### Best mechanism (final pick by the hidden test split)", "",
              "| node | agent | idea | val acc % | test acc % | params | attention params | attention FLOPs/token | seconds |",
              "|---|---|---|---|---|---|---|---|---|",
              (f"| {best.id} | {best.agent} | {_cell(best.idea or best.operator)} | {_pct(best.metric)} | "
               f"{_pct(best.selection_metric)} | {_si(m.get('params'))} | {_si(m.get('attention_params'))} | "
               f"{_si(m.get('flops'))} | {best.seconds:.0f} |"), ""]
    files = best.proposal.get("files", {}) if isinstance(best.proposal, dict) else {}
    for name, code in files.items():
        lines += [f"`{name}`:", "", "```python", code.rstrip(), "```", ""]
    lines += ["### Top nodes", "", "| # | node | agent | idea | val acc % | test acc % | seconds |",
              "|---|---|---|---|---|---|---|"]
    for i, n in enumerate(board, 1):
        lines.append(f"| {i} | {n.id} | {n.agent} | {_cell(n.idea or n.operator)[:80]} | {_pct(n.metric)} | "
                     f"{_pct(n.selection_metric)} | {n.seconds:.0f} |")
    lines.append("")
    return "\n".join(lines), {"task": task, "standin": standin, "val": best.metric,
                              "test": best.selection_metric}


def published_section(rows: Sequence[dict]) -> str:
    """Published test accuracies for the tasks of `rows`, and our gap to the best of them."""
    tasks = [t for t in TASK_COLUMNS if any(r["task"] == t for r in rows)] or list(TASK_COLUMNS)
    lines = ["## Published LRA results (test accuracy %)", "",
             "| model | " + " | ".join(tasks) + " | source |", "|---" * (len(tasks) + 2) + "|"]
    for model, accs in PUBLISHED.items():
        lines.append(f"| {model} | " + " | ".join(f"{accs[t]:.2f}" for t in tasks) + f" | {SOURCES[model]} |")
    ours = []
    for t in tasks:
        r = next((r for r in rows if r["task"] == t), None)
        if r is None or r["test"] is None:
            ours.append("-")
        elif r["standin"]:
            ours.append(f"({_pct(r['test'])}, stand-in)")
        else:
            ours.append(_pct(r["test"]))
    lines += ["| ours (best node) | " + " | ".join(ours) + " | this run |", ""]
    for r in rows:
        if r["test"] is None:
            continue
        if r["standin"]:
            lines.append(f"- {r['task']}: not compared ({STANDIN_NOTE}).")
            continue
        model, acc = best_published(r["task"])
        gap = acc - 100 * r["test"]
        lines.append(f"- {r['task']}: best published {model} {acc:.2f}%, ours {_pct(r['test'])}%: "
                     f"{'behind by' if gap > 0 else 'ahead by'} {abs(gap):.2f} points (aira's trainer, "
                     f"not LRA's).")
    lines.append("")
    return "\n".join(lines)


def render(run_dirs: Sequence[str | Path]) -> str:
    parts, rows = ["# AIRA-Design on Long Range Arena", ""], []
    for d in run_dirs:
        text, row = run_section(d)
        parts.append(text)
        rows.append(row)
    parts.append(published_section(rows))
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> Path:
    """Write `run_dir/lra_report.md` and return its path."""
    out = Path(run_dir) / REPORT_FILE
    out.write_text(render([run_dir]))
    return out
