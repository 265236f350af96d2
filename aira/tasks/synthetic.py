"""A cheap synthetic pattern task with a known optimum, for testing agents and policies.

A proposal is a 16-letter layer pattern over {A, M, S} (Attention, MLP, Mamba-2), like a Compose
search, but the "evaluation" is a closed-form score instead of training a model:

    raw(p) = sum_i w_i [p_i = t_i]  +  bonus * sum_i [p_i = t_i and p_{i+1} = t_{i+1}]

against a hidden target pattern t with per-position weights w_i in [0.5, 1.5] (both derived from
`target_seed`). The adjacent-pair bonus is epistatic: a correct letter is worth more next to
another correct letter, so segment moves and crossover matter, not only point mutations. The
metric is raw / raw(t), in [0, 1], with its optimum 1.0 at t. With `lower_is_better` the task
reports the regret 1 - score instead, to exercise policies that minimise.

Optional Gaussian noise (`noise`, seeded by the evaluation seed and the pattern) perturbs the
search metric; the hidden selection metric gets an independent draw, as a held-out split would.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from aira.agents.base import Task
from aira.agents.types import Job
from aira.tasks.patterns import PatternSpace

ALPHABET = "AMS"
LENGTH = 16
PAIR_BONUS = 0.5


def _weights(target_seed: int, length: int) -> list[float]:
    rng = random.Random(f"weights:{target_seed}")
    return [0.5 + rng.random() for _ in range(length)]


def hidden_target(target_seed: int, length: int = LENGTH, alphabet: str = ALPHABET) -> str:
    rng = random.Random(f"target:{target_seed}")
    return "".join(rng.choice(alphabet) for _ in range(length))


def score(pattern: str, target: str, weights: list[float], bonus: float = PAIR_BONUS) -> float:
    """Noise-free score in [0, 1]; 1.0 exactly at the target."""
    hit = [a == b for a, b in zip(pattern, target)]
    raw = sum(w for w, h in zip(weights, hit) if h)
    raw += bonus * sum(1 for a, b in zip(hit, hit[1:]) if a and b)
    best = sum(weights) + bonus * (len(target) - 1)
    return raw / best


def _noise(seed: int, pattern: str, stream: str) -> float:
    # Seeded by (seed, pattern, stream) so a re-evaluation in another process gives the same number.
    h = hashlib.sha256(f"{stream}:{seed}:{pattern}".encode()).hexdigest()
    return random.Random(h).gauss(0.0, 1.0)


def evaluate(pattern: str, seed: int = 0, *, target_seed: int = 0, noise: float = 0.0,
             lower_is_better: bool = False) -> dict[str, Any]:
    """The frozen evaluator (Job fn "aira.tasks.synthetic:evaluate"): a Result dict."""
    target = hidden_target(target_seed, len(pattern))
    s = score(pattern, target, _weights(target_seed, len(pattern)))
    search = s + noise * _noise(seed, pattern, "search")
    selection = s + noise * _noise(seed, pattern, "selection")
    if lower_is_better:
        search, selection = 1.0 - search, 1.0 - selection
    return {"status": "ok", "metric": search, "selection_metric": selection, "true_score": s}


class SyntheticPatternTask(Task):
    """Find the hidden 16-layer pattern; see the module docstring for the score."""

    proposal_kind = "pattern"

    def __init__(self, *, target_seed: int = 0, noise: float = 0.0, lower_is_better: bool = False,
                 length: int = LENGTH, alphabet: str = ALPHABET):
        self.name = f"synthetic-{target_seed}"
        self.target_seed, self.noise = target_seed, noise
        self.lower_is_better = lower_is_better
        self.length, self.alphabet = length, alphabet
        self.reference_score = 0.0 if lower_is_better else 1.0

    def optimum(self) -> str:
        return hidden_target(self.target_seed, self.length, self.alphabet)

    def describe(self) -> str:
        direction = "lower is better (regret, 0 at the optimum)" if self.lower_is_better \
            else "higher is better (1.0 at the optimum)"
        return (
            f"Propose a layer pattern: a string of exactly {self.length} letters over "
            f"{{{', '.join(self.alphabet)}}} (A = attention, M = MLP, S = Mamba-2), one letter per layer.\n"
            f"The score rewards the right primitive at each layer, with a bonus when two neighbouring "
            f"layers are both right. Metric: {direction}."
        )

    def validate(self, proposal: Any) -> str | None:
        if not isinstance(proposal, str):
            return f"the pattern must be a string, got {type(proposal).__name__}"
        if len(proposal) != self.length:
            return f"the pattern must have {self.length} letters, got {len(proposal)}"
        bad = sorted(set(proposal) - set(self.alphabet))
        if bad:
            return f"letters {''.join(bad)!r} are not in the alphabet {self.alphabet!r}"
        return None

    def _kwargs(self) -> dict[str, Any]:
        return {"target_seed": self.target_seed, "noise": self.noise, "lower_is_better": self.lower_is_better}

    def make_job(self, proposal: Any, *, seed: int, job_id: str) -> Job:
        return Job(id=job_id, fn="aira.tasks.synthetic:evaluate", timeout_s=60.0,
                   kwargs={"pattern": proposal, "seed": seed, **self._kwargs()})

    def evaluate(self, proposal: str, seed: int = 0) -> dict[str, Any]:
        """In-process evaluation (tests, quick experiments): the same dict the Job returns."""
        return evaluate(proposal, seed, **self._kwargs())

    def space(self) -> PatternSpace:
        return PatternSpace(self.length, self.alphabet)
