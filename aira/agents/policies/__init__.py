"""Search policies: which operator to apply next, to which parents.

    make_policy("greedy", lower_is_better=False, num_drafts=3)

Every policy is a kw-only dataclass of its parameters plus `lower_is_better`, the task's direction
(pass `task.lower_is_better`); policies turn metrics into a higher-is-better fitness internally.
Given the same rng and node sequence a policy makes the same steps. Nodes handed to `next_step`
may still be pending or running (asynchronous workers): no policy builds on an unscored node, and
in-flight drafts count towards the initial drafts.

| name           | what it does                                                               |
|----------------|----------------------------------------------------------------------------|
| oneshot        | one draft, then done                                                       |
| greedy         | 5 drafts, then debug failed leaves (p=1.0, depth < 20) or improve the best  |
| mcts           | UCT (c=0.25, min-max normalised), 5 children per expansion, debug cycles   |
| evolutionary   | 3 islands (cap 20), softmax parents, crossover p=0.5 after 2 generations   |
| steady_state   | AIRA-2 async evolution, rank-based parents p ~ (N - rank + 1)^(1/T)        |
| random         | drafts only: the random-search control                                    |
| bo             | Bayesian optimisation (Optuna TPE or GP) over the task's categorical space |
| baselines      | evaluates the task's named baselines once each (not a searcher)            |

`bo` and `baselines` read the task itself: `make_policy_for` calls their `bind(task)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aira.agents.policies._common import SearchPolicy
from aira.agents.policies.baselines import Baselines
from aira.agents.policies.bayesian import BayesianOptimisation
from aira.agents.policies.evolutionary import Evolutionary
from aira.agents.policies.greedy import Greedy
from aira.agents.policies.mcts import MCTS
from aira.agents.policies.oneshot import OneShot
from aira.agents.policies.random_search import RandomSearch
from aira.agents.policies.steady_state import SteadyState
from aira.errors import UsageError

POLICIES: dict[str, type[SearchPolicy]] = {
    cls.name: cls
    for cls in (OneShot, Greedy, MCTS, Evolutionary, SteadyState, RandomSearch, BayesianOptimisation, Baselines)
}

# Checked by make_policy so that a bad value is one clear line, not a policy that misbehaves later.
_RANGES = {
    "debug_prob": (0.0, 1.0), "crossover_prob": (0.0, 1.0),
    "num_drafts": (1, None), "max_debug_depth": (0, None), "num_children": (1, None),
    "num_islands": (1, None), "island_cap": (1, None), "init_per_island": (1, None),
    "crossover_after": (0, None), "migration_every": (0, None), "c": (0.0, None),
    "improve_margin": (0.0, None),
}
_POSITIVE = {"temperature"}


def _coerce(policy: str, key: str, value: Any, kind: type) -> Any:
    """Parameters may come from a command line as strings; turn them into the field's type."""
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"policy {policy}: {key}={value!r} is not a valid {kind.__name__}") from None


def make_policy(name: str, *, lower_is_better: bool = False, **params: Any) -> SearchPolicy:
    """A fresh policy by name ("steady-state" is accepted for "steady_state"), with `params`
    overriding its defaults. Unknown names, parameters or out-of-range values raise UsageError."""
    key = name.strip().lower().replace("-", "_")
    if key not in POLICIES:
        raise UsageError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
    cls = POLICIES[key]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "lower_is_better"}
    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    clean: dict[str, Any] = {}
    for k, v in params.items():
        if k not in fields:
            known = ", ".join(fields) or "none"
            raise UsageError(f"policy {key} has no parameter {k!r} (parameters: {known})")
        kind = kinds[fields[k].type] if isinstance(fields[k].type, str) else fields[k].type
        v = _coerce(key, k, v, kind)
        if k in _RANGES:
            lo, hi = _RANGES[k]
            if v < lo or (hi is not None and v > hi):
                bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
                raise UsageError(f"policy {key}: {k}={v} must be {bound}")
        if k in _POSITIVE and v <= 0:
            raise UsageError(f"policy {key}: {k}={v} must be > 0")
        clean[k] = v
    return cls(lower_is_better=lower_is_better, **clean)


__all__ = ["POLICIES", "make_policy", "SearchPolicy", "OneShot", "Greedy", "MCTS", "Evolutionary",
           "SteadyState", "RandomSearch"]
