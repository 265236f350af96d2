"""The orchestrator: runs an ensemble of agents against one task, one journal, one executor.

A run folder holds `config.json` (the resolved RunConfig), `journal.sqlite` (every node) and, at the
end, `summary.json` (aira.agents.runfolder defines and reads the two JSON files). The loop keeps every executor slot busy:

1. Noise floor: the task's reference proposal is evaluated with `noise_seeds` seeds (nodes with
   operator "reference", agent "reference"); their mean / std / max-min is the floor, and
   `improve_margin` ("noise" = one std, or a number) is handed to policies as the attribute
   `policy.improve_margin`; operators get the floor as `ctx.noise_floor` (a `NoiseFloor` or None),
   which their prompts state. Reference runs do not count against the evaluation budget.
2. Search: round robin over agents that can step: `policy.next_step(own nodes)`, the operator makes a
   Draft, the task validates it (invalid: an INVALID node, observed at once), else the job is
   submitted. Finished results are applied, journaled, and observed by the owning policy.
   Policies and operators only ever see copies with the hidden selection-split metrics stripped.
3. Stop when a budget is spent (in-flight jobs waited for or killed, `stop=`), or every agent is done.

Promotion (`promote="K[:EVERY]"`, for a task with a `promotion_fidelity`): after every EVERY counted
evaluations, and once more when the search stops with its evaluation budget spent or every agent done, the best
K distinct proposals by the hidden selection score are re-evaluated with `task.promotion_job` (each
proposal once per run). A promotion is a node of its own (agent and operator "promote", parent = the
promoted node); it goes through the same job loop and slots (ahead of the agents' next steps), counts
against the wall clock but not the evaluation budget nor the per-evaluation timeout, and no policy or
operator ever sees it: its score is on another scale, and the search stays the single-fidelity search
it would be without promotion. The final pick ranks promoted candidates by it (`stats.final_order`).

`resume(run_dir)` marks nodes that were pending / running when the run died as CRASHED ("lost in
crash; re-proposed"), forgets them and the nodes a budget's stop=kill ended (never evaluated: not
counted, not replayed), replays the other finished nodes into fresh policies in journal order, and
continues with what is left of the budget. A run and each resume hold the run folder's writer lock
(`journal.writer_lock`) throughout, so a second writer is refused before it touches the journal.
With one slot and an in-process executor a run is deterministic for its seed.

Steering (aira.agents.steering): wherever the loop waits for results (`_drain`) it reads the run folder's
guidance note and control requests: a new guidance version goes into the LLM operators' next prompts,
pause holds new submissions (and the budget's clock) while in-flight results still land, stop ends the
search as a spent budget would, add-budget extends the whole run's budget. Listeners (`listeners=`,
e.g. the experiment trackers the command layer builds) get `on_node(node)` for each finished node,
`on_summary(dict)` and `close()`; one that raises is dropped with one warning.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aira.agents.agent import AgentRuntime, AgentSpec, make_policy_for, parse_agents, strip_hidden
from aira.agents.base import Executor, Guidance, OperatorContext, Task
from aira.agents.budget import Budget, BudgetTracker, plan_budget
from aira.agents.jobs import JobLoop
from aira.agents.journal import Journal, writer_lock
from aira.agents.progress import Progress, Snapshot
from aira.agents.runfolder import RunConfig, RunSummary, load_config, parse_promote, write_config
from aira.agents.stats import (
    LOST,
    MIN_REFERENCE_SEEDS,
    PROMOTE,
    REFERENCE,
    STOPPED,
    TaskInfo,
    agent_stats,
    best_node,
    forgotten,
    noise_floor,
    promoted_scores,
    rank_key,
    stopped_with_run,
)
from aira.agents.steering import STOPPED_BY_RESEARCHER
from aira.agents.transcripts import bound_transcript
from aira.agents.types import Node, Status
from aira.errors import UsageError

MAX_INVALID_STREAK = 25  # an agent whose proposals keep failing validation is retired, not spun forever


# While a run is paused with nothing in flight, the loop waits this long between readings of the run
# folder (an idle executor's poll returns at once). `_sleep` is replaced by tests.
PAUSE_IDLE_S = 0.5
_sleep = time.sleep


class _Run:
    """The state of one run segment (a fresh run, or one resume of it)."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        task: Task,
        executor: Executor,
        journal: Journal,
        *,
        segment: int = 0,
        policy_factory: Callable[[AgentSpec, Task], Any] = make_policy_for,
        operators: dict | None = None,
        listeners: list | Callable[[], list] | None = None,
        clock: Callable[[], float] | None = None,  # the budget's clock (tests inject one)
    ):
        from aira.agents.memory import debug_chain

        self.config, self.run_dir, self.task = config, run_dir, task
        self.executor, self.journal = executor, journal
        self.debug_chain = debug_chain
        if operators is None:
            from aira.agents.operators import OPERATORS as operators
        self.operators = operators
        # jobs kept in flight: an executor that batches jobs wants a full batch per slot
        self.loop = JobLoop(executor)
        self.slots = self.loop.capacity
        self.nodes: dict[str, Node] = {n.id: n for n in journal.nodes()}
        self.views: dict[str, Node] = {i: strip_hidden(n) for i, n in self.nodes.items()}
        self.inflight: dict[str, Node] = {}
        self.counter = len(self.nodes)
        self.info = TaskInfo.of(task)
        self.best, self.n_failed, self.n_stopped = None, 0, 0
        for n in self.nodes.values():
            self._tally(n)
        self.stop_reason = ""

        done = [n for n in self.nodes.values() if self._counts(n)]
        self.tracker = BudgetTracker(
            config.budget,
            elapsed_before=journal.meta("elapsed_s", 0.0),
            evals_before=len(done),
            usd_before=sum(n.cost_usd for n in self.nodes.values()),
            clock=clock,
        )
        self.usd_before = self.tracker.usd
        from aira.agents.llm import BudgetExceeded, CostLedger, make_llm

        self.BudgetExceeded = BudgetExceeded
        cap = None if config.budget.usd is None else max(0.0, config.budget.usd - self.tracker.usd)
        self.ledger = CostLedger(cap)
        self.agents: list[AgentRuntime] = []
        for spec in parse_agents(config.agents):
            self.agents.append(
                AgentRuntime(
                    spec=spec,
                    policy=policy_factory(spec, task),
                    llm=make_llm(spec.llm, ledger=self.ledger),
                    rng=random.Random(f"{config.seed}:{spec.name}:{segment}"),
                )
            )
        self.by_name = {a.name: a for a in self.agents}
        # Resume: fresh policies learn the tree by observing it again, in the order it finished.
        for n in journal.finished():
            if not forgotten(n) and n.agent in self.by_name:
                self.by_name[n.agent].policy.observe(self.views[n.id])
        self.rr = 0
        self.floor = None
        self.margin = 0.0
        self.promote = parse_promote(config.promote)
        # each proposal is promoted once per run: a lost or stopped promotion may be tried again
        self.promoted = {str(n.proposal) for n in self.nodes.values() if n.operator == PROMOTE and not forgotten(n)}
        self.promote_queue: list[Node] = []
        self.next_promotion = self.promote and self.promote[1] * (self.tracker.evals // self.promote[1] + 1)
        self.progress = Progress(quiet=config.quiet)
        self.phase = ""  # what the progress line says the run is waiting for, outside the search
        self._last_meta = time.monotonic()
        # a factory is called here, under the writer lock: trackers write into the run folder
        self.listeners = list((listeners() if callable(listeners) else listeners) or [])
        self._init_steering()

    # --- steering and listeners (aira.agents.steering) --------------------------------------------

    def _init_steering(self) -> None:
        from aira.agents.steering import RunSteering

        self.steering = RunSteering(self)

    def _steer(self) -> None:
        self.steering.poll()
        self.phase = (f"paused (`aira runs continue {self.run_dir}`)" if self.steering.paused
                      else "" if self.phase.startswith("paused") else self.phase)

    @property
    def paused(self) -> bool:
        return self.steering.paused

    @property
    def user_stopped(self) -> bool:
        return self.steering.stopped

    @property
    def kill_requested(self) -> bool:
        return self.steering.kill

    def _guidance_for(self, agent: AgentRuntime) -> Guidance | None:
        return self.steering.for_step(agent)

    def extend_budget(self, budget: Budget) -> None:
        """A live add-budget: the whole run's budget, stored in config.json as a resume would store it."""
        self.config.budget = self.tracker.budget = budget
        self.ledger.cap_usd = None if budget.usd is None else max(0.0, budget.usd - self.usd_before)
        write_config(self.config, self.run_dir, self.task)

    def _tell(self, event: str, *args) -> None:
        """Call `event` on every listener (experiment trackers); one that raises is warned about once and
        dropped: tracking never stops a search."""
        for listener in list(self.listeners):
            fn = getattr(listener, event, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - a tracker's failure is the tracker's, not the run's
                self.listeners.remove(listener)
                name = getattr(listener, "name", type(listener).__name__)
                print(f"aira: warning: tracking to {name} failed ({type(e).__name__}: {e}); it is off for the "
                      f"rest of this run", file=sys.stderr)

    # --- bookkeeping -----------------------------------------------------------------------------

    @staticmethod
    def _counts(node: Node) -> bool:
        """A completed candidate evaluation, counted against the evaluation budget."""
        return (
            node.operator not in (REFERENCE, PROMOTE)
            and node.status not in (Status.PENDING, Status.RUNNING, Status.INVALID)
            and not forgotten(node)
        )

    def _new_id(self) -> str:
        self.counter += 1
        return f"n{self.counter:04d}"

    def _record(self, node: Node, *, new: bool = False) -> None:
        if new:
            bound_transcript(node, self.run_dir)  # a runaway reply must not bloat every event
        self.nodes[node.id] = node
        self.views[node.id] = strip_hidden(node)
        (self.journal.add if new else self.journal.update)(node)
        self._tally(node)

    def _tally(self, node: Node) -> None:
        """Running best and failure count for the progress line (rescanning every node each tick
        made the loop quadratic)."""
        if node.operator in (REFERENCE, PROMOTE) or node.status in (Status.PENDING, Status.RUNNING):
            return
        if stopped_with_run(node):
            self.n_stopped += 1
        elif node.status.failed:
            self.n_failed += 1
        elif node.metric is not None and (
            self.best is None or self.info.better(node.metric, self.best.metric)
        ):
            self.best = node

    def _save_elapsed(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last_meta > 2.0:
            self.journal.set_meta("elapsed_s", self.tracker.elapsed())
            self._last_meta = time.monotonic()

    def _visible(self, agent: str | None) -> list[Node]:
        """Nodes a policy (agent given) or shared memory (None) may see; lost ones are forgotten."""
        return [
            v
            for v in self.views.values()
            if not forgotten(v) and v.operator not in (REFERENCE, PROMOTE)
            and (agent is None or v.agent == agent)
        ]

    def _submit(self, node: Node) -> None:
        if node.operator == PROMOTE:  # its own timeout: the per-evaluation budget is for candidates
            job = self.task.promotion_job(node.proposal, seed=node.seed, job_id=node.id)
        else:
            job = self.task.make_job(node.proposal, seed=node.seed, job_id=node.id)
            job.timeout_s = self.tracker.job_timeout(job.timeout_s)
        self._record(node, new=True)
        self.loop.submit(job, node)
        node.status = Status.RUNNING
        self._record(node)
        self.inflight[node.id] = node

    def _agent_inflight(self) -> int:
        """In-flight jobs that count against the evaluation budget (promotions do not)."""
        return sum(n.operator != PROMOTE for n in self.inflight.values())

    def _promotion_round(self) -> None:
        """Queue the best K distinct proposals by the hidden selection score that were never promoted."""
        seen: set[str] = set()
        for n in sorted((n for n in self.nodes.values() if self._counts(n) and n.status == Status.OK
                         and n.metric is not None), key=lambda n: rank_key(n, self.info, selection=True)):
            key = str(n.proposal)
            if key in seen:
                continue
            seen.add(key)
            if key not in self.promoted:
                self.promoted.add(key)
                self.promote_queue.append(Node(
                    id="", agent=PROMOTE, operator=PROMOTE, parents=[n.id], proposal=n.proposal, seed=n.seed,
                    idea=f"promoted to the {self.task.promotion_fidelity} fidelity: #{len(seen)} of the best "
                         f"{self.promote[0]} after {self.tracker.evals} evaluations"))
            if len(seen) == self.promote[0]:
                break

    def _submit_promotions(self) -> None:
        if self.promote and self.tracker.evals >= self.next_promotion:
            self._promotion_round()
            while self.next_promotion <= self.tracker.evals:
                self.next_promotion += self.promote[1]
        while self.promote_queue and len(self.inflight) < self.slots:
            node = self.promote_queue.pop(0)
            node.id = self._new_id()  # numbered when submitted: the journal holds no gaps
            self._submit(node)

    def _observe(self, node: Node) -> None:
        agent = self.by_name.get(node.agent)
        if agent is not None:
            agent.waiting = False
            agent.policy.observe(self.views[node.id])

    def _drain(self, timeout: float) -> int:
        """Take finished results (waiting up to `timeout`), then apply the researcher's steering; while the
        run is paused, keep taking results and reading requests here until it continues or stops."""
        finished = self._collect(timeout)
        self._steer()
        while self.paused and not self.stop_reason:
            finished += self._collect(0.5)
            self._steer()
            if self.paused and not self.inflight:  # an idle executor's poll returns at once: do not spin
                _sleep(PAUSE_IDLE_S)
        return finished

    def _collect(self, timeout: float) -> int:
        finished = 0
        for job, _, result in self.loop.drain(timeout):
            node = self.inflight.pop(job.id, None)
            if node is None:  # a duplicate
                continue
            node.apply(result)
            self._record(node)
            if self._counts(node):
                self.tracker.evals += 1
            self._observe(node)
            finished += 1
            if node.operator == REFERENCE:  # the search may have started beside the reference runs
                self._update_floor()
            self._tell("on_node", node)
        self._save_elapsed()
        if not self.progress.quiet:  # every wait ticks the line: references and the last jobs included
            self.progress.update(self.snapshot())
        return finished

    def snapshot(self) -> Snapshot:
        best = self.best
        return Snapshot(
            agents=len(self.agents),
            done=self.tracker.evals,
            running=len(self.inflight),
            failed=self.n_failed,
            stopped=self.n_stopped,
            best=best and best.metric,
            best_node=best and best.id,
            cost_usd=self.tracker.usd,
            elapsed_s=self.tracker.elapsed(),
            phase=self.phase,
        )

    # --- phases ----------------------------------------------------------------------------------

    def _margin_in_advance(self) -> float | None:
        """The improve margin when it does not wait for the reference runs: a number given, or the task's
        measured noise where the run has fewer reference seeds than it takes to measure its own."""
        cfg = self.config
        if cfg.improve_margin != "noise":
            return float(cfg.improve_margin)
        if self.info.measured_noise is not None and cfg.noise_seeds < MIN_REFERENCE_SEEDS:
            return self.info.measured_noise
        return None

    def _set_margin(self, margin: float) -> None:
        self.margin = margin
        for a in self.agents:
            if "improve_margin" not in a.spec.params:  # an explicit ?improve_margin= wins
                a.policy.improve_margin = self.margin

    def noise_floor_phase(self) -> None:
        """Evaluate the reference. When the margin does not depend on its scores (`_margin_in_advance`),
        its jobs only queue ahead of the agents' and the search starts at once; else the search waits."""
        ref = self.task.reference()
        cfg = self.config
        early = self._margin_in_advance()
        if ref is not None and cfg.noise_seeds > 0:
            have = {
                n.seed
                for n in self.nodes.values()
                if n.operator == REFERENCE and n.status != Status.PENDING and not forgotten(n)
            }
            todo = [cfg.seed + i for i in range(cfg.noise_seeds) if cfg.seed + i not in have]
            if todo and (err := self.task.validate(ref)):
                raise UsageError(f"the task's reference proposal is invalid: {err}")
            while todo or (self.inflight and early is None):
                done = sum(n.operator == REFERENCE and n.status == Status.OK for n in self.nodes.values())
                self.phase = f"measuring the noise floor ({done} of {cfg.noise_seeds} reference runs done)"
                while todo and (early is not None or len(self.inflight) < self.slots):
                    s = todo.pop(0)
                    self._submit(
                        Node(
                            id=self._new_id(),
                            agent=REFERENCE,
                            operator=REFERENCE,
                            proposal=ref,
                            idea=f"reference, noise-floor seed {s}",
                            seed=s,
                        )
                    )
                if reason := self.stop_reason or self.tracker.hard_stop_reason():
                    self.stop_reason, self.phase = reason, ""
                    return
                if todo or (self.inflight and early is None):
                    self._drain(0.2)
        self.phase = ""
        if early is not None:
            self._set_margin(early)
            self._update_floor()
            return
        self.floor = noise_floor(self.nodes.values(), self.info)
        self._set_margin(self.floor.std if self.floor else 0.0)

    def _update_floor(self) -> None:
        """The floor once no reference job is in flight: after the reference phase, and as each reference
        run finishes when the search started beside them (_drain)."""
        if not any(n.operator == REFERENCE for n in self.inflight.values()):
            self.floor = noise_floor(self.nodes.values(), self.info)

    def _next_agent(self) -> AgentRuntime | None:
        for k in range(len(self.agents)):
            a = self.agents[(self.rr + k) % len(self.agents)]
            if a.can_step:
                self.rr = (self.rr + k + 1) % len(self.agents)
                return a
        return None

    def _step(self, agent: AgentRuntime) -> None:
        own = self._visible(agent.name)
        step = agent.policy.next_step(own, agent.rng)
        if step is None:
            if any(n.agent == agent.name for n in self.inflight.values()):
                agent.waiting = True
            else:
                agent.done = True
            return
        parents = [self.views[p] for p in step.parents if p in self.views]
        memory = self._visible(None if self.config.shared_memory else agent.name)
        memory += [v for v in self.views.values() if v.operator == REFERENCE and v.status == Status.OK]
        chain = self.debug_chain(parents[0], memory) if step.operator == "debug" and parents else []
        ctx = OperatorContext(
            task=self.task,
            llm=agent.llm,
            parents=parents,
            memory=memory,
            rng=agent.rng,
            debug_chain=chain,
            noise_floor=self.floor,
            guidance=self._guidance_for(agent),
        )
        try:
            node = agent.draft_node(step, ctx, self.operators, node_id=self._new_id(), seed=self.config.seed)
        except self.BudgetExceeded as e:
            self.stop_reason = str(e)
            if (node := getattr(e, "node", None)) is not None:  # its replies were paid: keep the cost
                self.tracker.usd += node.cost_usd
                node.status, node.finished_at = Status.INVALID, time.time()
                self._record(node, new=True)
            return
        self.tracker.usd += node.cost_usd
        error = node.error
        if not error:
            try:
                error = self.task.validate(node.proposal)
            except Exception as e:  # noqa: BLE001 - a validator that raises rejects the proposal
                error = f"validation failed: {type(e).__name__}: {e}"
        if error:
            node.status, node.error, node.finished_at = Status.INVALID, error, time.time()
            self._record(node, new=True)
            self._observe(node)
            agent.invalid_streak += 1
            if agent.invalid_streak >= MAX_INVALID_STREAK:
                agent.done = True
                print(
                    f"aira: agent {agent.name} retired after {MAX_INVALID_STREAK} invalid proposals in a row",
                    file=sys.stderr,
                )
            return
        agent.invalid_streak = 0
        self._submit(node)

    def search_phase(self) -> None:
        while not self.stop_reason:
            self._drain(0.0)
            if reason := self.stop_reason or self.tracker.hard_stop_reason():  # a stop may have come in _drain
                self.stop_reason = reason
                break
            self._submit_promotions()
            while len(self.inflight) < self.slots and self.tracker.may_submit(self._agent_inflight()):
                agent = self._next_agent()
                if agent is None or self.stop_reason:
                    break
                self._step(agent)
                # A step can take minutes (an LLM retrying 500s) and submit nothing: check the clock
                # after each one, or an agent with only invalid proposals outruns the budget.
                self.stop_reason = self.stop_reason or self.tracker.hard_stop_reason() or ""
                if self.stop_reason:
                    break
            if not self.inflight:
                if self.tracker.evals_spent():
                    self.stop_reason = f"evaluation budget spent ({self.config.budget.evals})"
                elif not any(a.can_step for a in self.agents):
                    self.stop_reason = "every agent is done"
                continue
            self._drain(0.2)

    def promotion_phase(self) -> None:
        """The last promotion round, once the search stopped with no agent job in flight (its evaluation
        budget spent, or every agent done): the best K by then, run to the end unless the wall clock or
        dollars run out. A run the clock stopped promotes nothing more."""
        if (not self.promote or self.tracker.hard_stop_reason() or self.user_stopped
                or any(n.operator != PROMOTE for n in self.inflight.values())):
            return
        self.next_promotion = 0
        self._submit_promotions()
        while self.promote_queue or self.inflight:
            if reason := self.tracker.hard_stop_reason() or (self.user_stopped and STOPPED_BY_RESEARCHER):
                self.stop_reason = f"{self.stop_reason}; then {reason} during the last promotions"
                return
            self._submit_promotions()
            self._drain(0.2)
            if not self.progress.quiet:
                self.progress.update(self.snapshot())

    def finish(self) -> None:
        """Wait for or kill in-flight jobs, as the budget's `stop` option says."""
        if self.inflight and (self.config.budget.on_stop == "kill" or self.kill_requested):
            self._kill_inflight()
        while self.inflight:
            self.phase = f"{self.stop_reason or 'stopping'}: waiting for the last {len(self.inflight)} jobs"
            self._drain(0.5)
            if self.kill_requested and self.inflight:  # `runs stop --kill` while the last jobs run
                self._kill_inflight()
        self.phase = ""
        if self.floor is None:  # references the budget's stop=kill ended never reached _drain
            self._update_floor()
        self._save_elapsed(force=True)
        self.progress.close(self.snapshot())

    def _kill_inflight(self) -> None:
        self.loop.close()
        for node in list(self.inflight.values()):
            node.status, node.error = Status.KILLED, f"{STOPPED}{self.stop_reason}"
            node.finished_at = time.time()
            self._record(node)
        self.inflight.clear()

    def summary(self) -> RunSummary:
        nodes = list(self.nodes.values())
        info = TaskInfo.of(self.task)
        best = best_node([n for n in nodes if n.operator != REFERENCE], info, selection=True)
        large = best and promoted_scores(nodes).get(best.id)
        fields = ("id", "agent", "metric", "selection_metric", "proposal")
        promotions = [n for n in nodes if n.operator == PROMOTE and not forgotten(n)]
        s = RunSummary(
            run_dir=str(self.run_dir),
            stop_reason=self.stop_reason,
            evaluations=self.tracker.evals,
            nodes=len(nodes),
            lost=sum(n.error == LOST for n in nodes),
            stopped=sum(stopped_with_run(n) for n in nodes),
            elapsed_s=self.tracker.elapsed(),
            cost_usd=self.tracker.usd,
            noise_floor=self.floor and self.floor.to_dict(),
            best=best and {**{k: getattr(best, k) for k in fields},
                           "promoted": large and {k: getattr(large, k) for k in fields[:4]}},
            agents=[a.to_dict() for a in agent_stats(nodes, info, self.floor)],
            promotions=self.promote and {
                "k": self.promote[0], "every": self.promote[1], "fidelity": self.task.promotion_fidelity,
                "evaluations": len(promotions), "ok": sum(n.status == Status.OK for n in promotions),
                "compute_s": sum(n.seconds for n in promotions)},
        )
        (self.run_dir / "summary.json").write_text(json.dumps(s.to_dict(), indent=1, default=str))
        self._tell("on_summary", s.to_dict())
        return s


def _execute(
    config: RunConfig, run_dir: Path, task: Task, executor: Executor | None, *, segment: int, **hooks
) -> RunSummary:
    if executor is None:
        from aira.agents.executors import make_executor

        kw = dict(config.executor_kwargs)
        if config.executor in ("local", "ray"):
            # job logs belong to the run folder: never a ./runs/jobs that a second run would overwrite
            kw.setdefault("log_dir", str(run_dir / "jobs"))
        executor = make_executor(config.executor, config.slots, **kw)
    with Journal(run_dir) as journal:
        r = _Run(config, run_dir, task, executor, journal, segment=segment, **hooks)
        try:
            try:
                r.noise_floor_phase()
                r.search_phase()
                r.promotion_phase()
                r.finish()
            finally:
                r._save_elapsed(force=True)
                executor.shutdown()
            return r.summary()
        finally:
            r._tell("close")


def _plan(config: RunConfig, task: Task, executor: Executor | None, spent_s: float = 0.0) -> None:
    """Say what the wall-clock budget buys; fewer reference runs when they would eat it (the config is
    updated, so the stored one says what ran); a budget that buys no candidate is refused."""
    est = task.seconds_per_eval()
    slots = int(getattr(executor, "slots", 0) or config.slots)
    ref_left = config.noise_seeds if spent_s == 0 else 0  # a resumed run has (mostly) measured its floor
    plan = plan_budget(config.budget, slots=slots, noise_seeds=ref_left, job_s=est and est[0],
                       source=est[1] if est else "", measured_noise=TaskInfo.of(task).measured_noise is not None,
                       spent_s=spent_s)
    if spent_s == 0:
        config.noise_seeds = plan.noise_seeds
    if not config.quiet:
        for line in plan.lines:
            print(f"aira: {line}", file=sys.stderr)


def run(
    config: RunConfig, *, task: Task | None = None, executor: Executor | None = None, notes: dict | None = None,
    **hooks,
) -> RunSummary:
    """Start a fresh run of `task` in `config.out` (`aira.tasks.runs.run` resolves a task by its name);
    `executor` overrides the one the config names; `notes` join config.json's `resolved` (for the report)."""
    run_dir = Path(config.out)
    task = _given(task)
    _check_promote(config, task)
    _plan(config, task, executor)  # may refuse the budget: before the run folder exists
    with writer_lock(run_dir):  # makes the folder; checked under the lock so two starts cannot both begin
        if (run_dir / Journal.FILENAME).exists():
            raise UsageError(f"{run_dir} already holds a run: resume it with `aira runs resume {run_dir}`")
        write_config(config, run_dir, task, notes)
        return _execute(config, run_dir, task, executor, segment=0, **hooks)


def _check_promote(config: RunConfig, task: Task) -> None:
    if config.promote and not task.promotion_fidelity:
        raise UsageError(f"promote={config.promote!r}: task {task.name} has no higher fidelity to promote to")


def _given(task: Task | None) -> Task:
    if task is None:
        raise TypeError("the orchestrator runs the Task it is handed; aira.tasks.runs.run / resume build one "
                        "from a task name")
    return task


def resume(
    run_dir: str | Path,
    *,
    task: Task | None = None,
    executor: Executor | None = None,
    budget: Budget | str | None = None,
    add: Budget | str | None = None,
    quiet: bool | None = None,
    **hooks,
) -> RunSummary:
    """Continue a run that stopped or crashed. A budget counts the whole run, earlier segments included:
    `budget` replaces the stored total, `add` extends it (wall clock, evaluations, dollars).
    `aira.tasks.runs.resume` rebuilds the task from the stored config."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    if budget is not None:
        config.budget = Budget.coerce(budget)
    if quiet is not None:
        config.quiet = quiet
    task = _given(task)
    _check_promote(config, task)
    with Journal(run_dir, readonly=True) as j:
        spent = float(j.meta("elapsed_s", 0.0))
        if add is not None:
            nodes = j.nodes()
            config.budget = config.budget.extended(
                Budget.coerce(add), spent_s=spent, spent_evals=sum(_Run._counts(n) for n in nodes),
                spent_usd=sum(n.cost_usd for n in nodes))
    if not config.quiet:
        b = config.budget
        left = "" if b.wall_s is None else f", {max(0.0, b.wall_s - spent):.0f}s of it left"
        print(f"aira: resuming {run_dir}: budget {b.describe()} for the whole run ({spent:.0f}s spent before"
              f"{left}; `--add 10m` extends it)", file=sys.stderr)
    if config.budget.wall_s is not None and spent < config.budget.wall_s:
        _plan(config, task, executor, spent_s=spent)
    # Locked before anything is marked lost: a running node of a live writer is not lost.
    with writer_lock(run_dir):
        with Journal(run_dir) as journal:
            for node in journal.nodes():
                if node.status in (Status.PENDING, Status.RUNNING):
                    node.status, node.error, node.finished_at = Status.CRASHED, LOST, time.time()
                    journal.update(node)
            segment = journal.meta("segments", 0) + 1
            journal.set_meta("segments", segment)
        write_config(config, run_dir, task)
        return _execute(config, run_dir, task, executor, segment=segment, **hooks)
