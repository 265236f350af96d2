"""A synchronous in-process driver: run a policy on a cheap task without executors or a journal.

For tests, benchmarks and quick experiments with tasks whose jobs take milliseconds (the synthetic
pattern task). It does what the orchestrator does, in one thread: next_step -> operator ->
validate -> evaluate (the task's Job function, called in this process) -> observe. Up to
`in_flight` nodes stay pending at once and finish in submission order, so a policy sees pending
nodes as it would with asynchronous workers; a step that builds on an unfinished node is a
policy bug and raises.
"""

from __future__ import annotations

import random

from aira.agents.base import LLM, Draft, OperatorContext, Policy, Task
from aira.agents.memory import debug_chain
from aira.agents.operators import OPERATORS
from aira.agents.types import Node, Result, Status


def evaluate_inline(task: Task, proposal, seed: int, job_id: str) -> Result:
    from aira.agents.executors.worker import run_job

    return run_job(task.make_job(proposal, seed=seed, job_id=job_id))


def run_inline(policy: Policy, task: Task, n_evals: int, seed: int = 0, *, llm: LLM | None = None,
               in_flight: int = 1, fail_every: int = 0) -> list[Node]:
    """Up to `n_evals` nodes (fewer if the policy stops). `fail_every` > 0 makes every such
    evaluation crash (to exercise debug paths)."""
    rng = random.Random(seed)
    nodes: list[Node] = []
    queue: list[Node] = []
    finished: list[str] = []

    def finish(n: Node) -> None:
        err = n.error or task.validate(n.proposal)
        if err:
            n.apply(Result(status=Status.INVALID, error=err))
        elif fail_every and len(finished) % fail_every == fail_every - 1:
            n.apply(Result(status=Status.CRASHED, error="RuntimeError: injected failure"))
        else:
            n.apply(evaluate_inline(task, n.proposal, seed, n.id))
        finished.append(n.id)
        policy.observe(n)

    while len(nodes) < n_evals:
        step = policy.next_step(nodes, rng)
        if step is None:
            break
        by_id = {n.id: n for n in nodes}
        parents = [by_id[p] for p in step.parents]
        busy = [p.id for p in parents if p.status in (Status.PENDING, Status.RUNNING)]
        if busy:
            raise RuntimeError(f"{policy.name}: {step.operator} builds on unfinished node(s) {busy}")
        chain = debug_chain(parents[0], nodes) if step.operator == "debug" else []
        ctx = OperatorContext(task=task, llm=llm, parents=parents, memory=list(nodes), rng=rng,
                              debug_chain=chain)
        if step.proposal is not None:  # the policy chose the proposal itself (bo, baselines)
            draft = Draft(proposal=step.proposal, idea=step.idea)
        else:
            draft = OPERATORS[step.operator](ctx)
        n = Node(id=f"n{len(nodes)}", agent=f"{policy.name}:{llm.spec if llm else 'offline'}",
                 operator=step.operator, parents=list(step.parents), proposal=draft.proposal,
                 idea=draft.idea, transcript=draft.transcript, error=draft.error, seed=seed,
                 llm=llm.spec if llm else "offline")
        nodes.append(n)
        queue.append(n)
        if len(queue) >= in_flight:
            finish(queue.pop(0))
    while queue:
        finish(queue.pop(0))
    return nodes
