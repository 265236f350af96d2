"""Published LRA test accuracies (%), for reports and normalised scores. Compare only non-stand-in runs
at the "gpu" preset against these, and even then note that aira's trainer is not LRA's.

Sources: Transformer from the LRA paper (Tay et al. 2020, arXiv 2011.04006, Table 1); S4 (Gu et al.
2022, arXiv 2111.00396); S5 (Smith et al. 2023, arXiv 2208.04933); Mega (Ma et al. 2023,
arXiv 2209.10655); LRU (Orvieto et al. 2023, arXiv 2303.06349). Figures as gathered in the project's
REFERENCES.md.
"""

from __future__ import annotations

from aira.errors import UsageError

TASK_COLUMNS = ("lra-listops", "lra-text", "lra-retrieval", "lra-image", "lra-pathfinder")

PUBLISHED: dict[str, dict[str, float]] = {
    "Transformer": dict(zip(TASK_COLUMNS, (36.37, 64.27, 57.46, 42.44, 71.40))),
    "S4": dict(zip(TASK_COLUMNS, (59.60, 86.82, 90.90, 88.65, 94.20))),
    "S5": dict(zip(TASK_COLUMNS, (62.15, 89.31, 91.40, 88.00, 95.33))),
    "Mega": dict(zip(TASK_COLUMNS, (63.14, 90.43, 91.25, 90.44, 96.01))),
    "LRU": dict(zip(TASK_COLUMNS, (60.2, 89.4, 89.9, 89.0, 95.1))),
}

SOURCES = {
    "Transformer": "Tay et al. 2020, Long Range Arena, arXiv 2011.04006",
    "S4": "Gu, Goel, Re 2022, S4, arXiv 2111.00396",
    "S5": "Smith, Warrington, Linderman 2023, S5, arXiv 2208.04933",
    "Mega": "Ma et al. 2023, Mega, arXiv 2209.10655",
    "LRU": "Orvieto et al. 2023, LRU, arXiv 2303.06349",
}

CHANCE = {"lra-listops": 10.0, "lra-text": 50.0, "lra-retrieval": 50.0, "lra-image": 10.0,
          "lra-pathfinder": 50.0}


def published(task: str) -> dict[str, float]:
    """{model: accuracy %} for one task."""
    if task not in TASK_COLUMNS:
        raise UsageError(f"unknown LRA task {task!r}; valid: {', '.join(TASK_COLUMNS)}")
    return {model: row[task] for model, row in PUBLISHED.items()}


def best_published(task: str) -> tuple[str, float]:
    """The highest published accuracy among the tabled models (a 'human SOTA' reference)."""
    return max(published(task).items(), key=lambda kv: kv[1])
