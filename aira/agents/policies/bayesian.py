"""The `bo` policy: Bayesian optimisation over the task's categorical encoding, with Optuna.

Composer searched layer patterns with Bayesian optimisation; this is that control, run through the
same harness at the same evaluation budget as the agents. The space must expose `dimensions()` and
`decode()` (a pattern space does: one categorical per layer). Sampler: `tpe` (default, Optuna's
TPESampler) or `gp` (Optuna's GPSampler, which needs scipy and torch); `startup` random trials first.

Ask/tell: each step asks a trial and proposes its decoded pattern; when the node finishes, the trial
is told the search metric (failed nodes are told FAIL). Nodes the policy did not ask for (a resumed
run's history) are added to the study as completed trials, so resume rebuilds the model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy
from aira.agents.types import Node, Status
from aira.errors import UsageError


@dataclass(kw_only=True)
class BayesianOptimisation(SearchPolicy):
    name = "bo"
    sampler: str = "tpe"
    startup: int = 8
    seed: int = 0
    _study: object = field(default=None, init=False, repr=False)
    _dims: list = field(default_factory=list, init=False, repr=False)
    _space: object = field(default=None, init=False, repr=False)
    _asked: dict = field(default_factory=dict, init=False, repr=False)  # proposal -> [trial, ...]

    def bind(self, task) -> None:
        try:
            import optuna
        except ImportError:
            raise UsageError("the bo policy needs optuna: pip install 'aira[search]'") from None
        space = task.space()
        dims = space.dimensions() if space is not None else None
        if not dims:
            raise UsageError(f"task {task.name} has no categorical encoding; the bo policy cannot search it")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if self.sampler == "tpe":
            sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.startup)
        elif self.sampler == "gp":
            sampler = optuna.samplers.GPSampler(seed=self.seed, n_startup_trials=self.startup)
        else:
            raise UsageError(f"bo sampler {self.sampler!r} unknown: use tpe or gp")
        self._study = optuna.create_study(direction="minimize" if self.lower_is_better else "maximize",
                                          sampler=sampler)
        self._dims, self._space = dims, space

    def _distributions(self):
        import optuna

        return {name: optuna.distributions.CategoricalDistribution(choices) for name, choices in self._dims}

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        if self._study is None:
            raise UsageError("the bo policy was not bound to a task")
        trial = self._study.ask(self._distributions())
        proposal = self._space.decode(trial.params)
        self._asked.setdefault(_key(proposal), []).append(trial)
        return Step("draft", proposal=proposal, idea=f"[offline] Bayesian optimisation ({self.sampler}) trial "
                                                        f"{trial.number}")

    def observe(self, node: Node) -> None:
        import optuna

        if self._study is None or node.proposal is None:
            return
        ok = node.status is Status.OK and node.metric is not None
        pending = self._asked.get(_key(node.proposal))
        if pending:
            trial = pending.pop(0)
            if ok:
                self._study.tell(trial, node.metric)
            else:
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif ok:  # history from before a resume, or a proposal from another source
            try:
                params = dict(zip([n for n, _ in self._dims], _encode(node.proposal, self._dims)))
            except ValueError:
                return
            self._study.add_trial(optuna.trial.create_trial(params=params, distributions=self._distributions(),
                                                            value=node.metric))


def _key(proposal) -> str:
    return proposal if isinstance(proposal, str) else repr(proposal)


def _encode(proposal, dims) -> list:
    """Inverse of a per-position categorical decode, for string proposals (patterns)."""
    if not isinstance(proposal, str) or len(proposal) != len(dims):
        raise ValueError("not encodable")
    for c, (_, choices) in zip(proposal, dims):
        if c not in choices:
            raise ValueError("not encodable")
    return list(proposal)
