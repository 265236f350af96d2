"""The harness's small interfaces. Each has one to three abstract methods.

- `Task`: what may be proposed, how it is validated, how a valid one becomes a `Job`.
- `ProposalSpace`: search moves over a task's proposals, used by the offline "LLM" and by random search.
- `LLM`: text in, `Completion` out.
- `Executor`: runs `Job`s with hard limits and hands back `Result`s.
- `Policy`: decides the next step (operator + parents) from the agent's tree.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aira.agents.types import Completion, Job, Node, Result

if TYPE_CHECKING:
    from aira.agents.stats import NoiseFloor


class ProposalSpace(ABC):
    """Search moves over proposals, without an LLM. Moves return (proposal, one-line idea)."""

    @abstractmethod
    def sample(self, rng: random.Random) -> tuple[Any, str]: ...

    @abstractmethod
    def mutate(self, proposal: Any, rng: random.Random) -> tuple[Any, str]: ...

    def crossover(self, a: Any, b: Any, rng: random.Random) -> tuple[Any, str]:
        return self.mutate(a if rng.random() < 0.5 else b, rng)

    def repair(self, proposal: Any, error: str, rng: random.Random) -> tuple[Any, str]:
        """Fix a failed proposal; by default a mutation (the offline agent cannot read tracebacks)."""
        return self.mutate(proposal, rng)

    def dimensions(self) -> list[tuple[str, list]] | None:
        """A categorical encoding [(name, choices), ...] for model-based searchers (Bayesian
        optimisation); None when the space has none."""
        return None

    def decode(self, params: dict[str, Any]) -> Any:
        """The proposal for one assignment of `dimensions()`."""
        raise NotImplementedError


class Task(ABC):
    """A search problem. The harness, never the agent, evaluates proposals (see make_job)."""

    name: str = "task"
    lower_is_better: bool = False
    proposal_kind: str = "json"  # "pattern" | "json" | "file": how replies are parsed
    reference_score: float | None = None  # e.g. a published SOTA, for normalised scores
    measured_noise: float | None = None   # std of a candidate's score measured outside the run, if known
    # the fidelity `promotion_job` evaluates at (RunConfig.promote), e.g. "large"; None: the task has none
    promotion_fidelity: str | None = None

    @abstractmethod
    def describe(self) -> str:
        """Text the agent reads: the space, the metric and its direction, the budget, the rules."""

    @abstractmethod
    def validate(self, proposal: Any) -> str | None:
        """None when valid, else a one-line error message the debug operator will see."""

    @abstractmethod
    def make_job(self, proposal: Any, *, seed: int, job_id: str) -> Job:
        """The frozen evaluation of a valid proposal."""

    def promotion_job(self, proposal: Any, *, seed: int, job_id: str) -> Job:
        """The evaluation of a valid proposal at `promotion_fidelity` (a costlier, more faithful score on
        another scale), for the candidates a run promotes; tasks without one never get asked."""
        raise NotImplementedError(f"{self.name} has no higher fidelity to promote candidates to")

    def reference(self) -> Any | None:
        """A known-good proposal (the baseline), evaluated first to measure the noise floor."""
        return None

    def space(self) -> ProposalSpace | None:
        """Search moves for the offline agent and random search; None if the task has none."""
        return None

    def baselines(self) -> dict[str, Any]:
        """Named reference proposals evaluated beside the agents (the `baselines` policy)."""
        ref = self.reference()
        return {} if ref is None else {"reference": ref}

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b

    def seconds_per_eval(self) -> tuple[float, str] | None:
        """(a measured estimate of one evaluation's seconds on one worker, where it was measured), or None;
        the orchestrator plans a wall-clock budget with it."""
        return None


class LLM(ABC):
    spec: str = "llm"

    @abstractmethod
    def complete(self, messages: Sequence[dict], *, system: str | None = None,
                 max_tokens: int = 4096, temperature: float = 1.0) -> Completion:
        """messages: [{"role": "user"|"assistant", "content": str}, ...]."""


class Executor(ABC):
    """Runs jobs concurrently with hard limits. submit() never blocks; poll() returns finished ones."""

    slots: int = 1

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def poll(self, timeout: float = 0.0) -> list[tuple[str, Result]]:
        """(job id, result) of jobs finished since the last call; waits up to `timeout` for one."""

    def running(self) -> int:
        return 0

    def shutdown(self) -> None:
        return None


@dataclass
class Step:
    """What a policy asks for next."""

    operator: str                       # draft | improve | debug | crossover
    parents: list[str] = field(default_factory=list)
    # A policy that chooses proposals itself (a baseline list, Bayesian optimisation) sets them here;
    # the orchestrator then records the proposal as-is instead of calling an operator.
    proposal: Any = None
    idea: str = ""


class Policy(ABC):
    """A search policy over one agent's tree. Sees nodes (with their search metric), never internals."""

    name: str = "policy"

    @abstractmethod
    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        """The next step, or None when the policy is done (e.g. one-shot after its draft)."""

    def observe(self, node: Node) -> None:
        """Called once per finished node (in completion order)."""


@dataclass
class OperatorContext:
    """Everything an operator may look at. `memory` is what the agent is allowed to remember
    (its own tree, or the shared memory of an ensemble); it never holds selection-split metrics."""

    task: Task
    llm: LLM | None                     # None: the offline agent (search moves over task.space())
    parents: list[Node]                 # improve: 1, crossover: 2, debug: the failed node, draft: 0
    memory: list[Node]
    rng: random.Random
    debug_chain: list[Node] = field(default_factory=list)  # earlier repair attempts, oldest first
    noise_floor: NoiseFloor | None = None  # the reference's spread over seeds, stated in the prompt
    constraints: str = ""               # rules for the prompt's Constraints section beyond the fixed ones
    guidance: Guidance | None = None     # the researcher's note in force (RUN/guidance.md), None: none


@dataclass(frozen=True)
class Guidance:
    """A version of the researcher's guidance note (aira.agents.steering); version 0: none yet."""

    version: int = 0
    text: str = ""
    sha256: str = ""


@dataclass
class Draft:
    """An operator's output, before validation and evaluation."""

    proposal: Any
    idea: str = ""
    transcript: list[dict] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: str = ""                     # set when no valid reply came back (the node is INVALID)
    guidance_read: bool = False         # the prompt included the researcher's guidance (ctx.guidance)


class Operator(ABC):
    name: str = "operator"

    @abstractmethod
    def __call__(self, ctx: OperatorContext) -> Draft: ...
