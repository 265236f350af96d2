"""Agent specs: `POLICY:LLM[?key=value&key=value]`.

    greedy:offline
    mcts:anthropic/claude-opus-4-5
    evolutionary:openai-compatible/qwen3@http://localhost:8000/v1
    greedy:offline?debug_prob=0.5&num_drafts=3

The policy is everything before the first ":", the LLM spec everything after it up to the first "?"
(so URLs keep their own colons); a bare `POLICY` means `POLICY:offline`. Parameters after "?" are
passed to the policy's constructor as keyword arguments; values are read as JSON where they parse
(numbers, true/false, null) and kept as strings otherwise. Several specs form an ensemble: each
agent grows its own tree and all share the executor. An agent's name is `SPEC#INDEX` (e.g.
"greedy:offline#0"), unique within a run, and is what the journal records as `Node.agent`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

from aira.agents.types import Node
from aira.errors import UsageError

# Metric keys no policy or operator may see: the hidden selection split (Hidden Consistent
# Evaluation) and ground truth a test task reports (the synthetic task's true_score).
HIDDEN_PREFIXES = ("selection", "true_")

# The policies aira ships; aira.agents.policies is the authority once it is importable.
DEFAULT_POLICIES = ("oneshot", "greedy", "mcts", "evolutionary", "steady_state", "random")


def known_policies() -> tuple[str, ...]:
    try:
        from aira.agents import policies
    except ImportError:
        return DEFAULT_POLICIES
    names = getattr(policies, "POLICIES", None)
    return tuple(sorted(names)) if names else DEFAULT_POLICIES


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    policy: str
    llm: str = "offline"
    params: dict = field(default_factory=dict)
    index: int = 0

    @property
    def spec(self) -> str:
        query = "&".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in self.params.items())
        return f"{self.policy}:{self.llm}" + (f"?{query}" if query else "")

    @property
    def name(self) -> str:
        return f"{self.policy}:{self.llm}#{self.index}"

    @classmethod
    def parse(cls, text: str, *, index: int = 0) -> AgentSpec:
        policies = known_policies()
        hint = f"use POLICY:LLM with POLICY one of {', '.join(policies)} (e.g. greedy:offline)"
        raw = (text or "").strip()
        if not raw:
            raise UsageError(f"empty agent spec: {hint}")
        head, _, query = raw.partition("?")
        policy, colon, llm = head.partition(":")
        policy, llm = policy.strip().lower().replace("-", "_"), llm.strip()
        if colon and not llm:
            raise UsageError(f"agent spec {text!r} has no LLM after ':': {hint}")
        if policy not in policies:
            raise UsageError(f"unknown policy {policy!r} in agent spec {text!r}: {hint}")
        params = {}
        for item in filter(None, query.split("&")):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise UsageError(
                    f"bad parameter {item!r} in agent spec {text!r}: write ?key=value&key=value; {hint}"
                )
            params[key.strip()] = _value(unquote(value.strip()))
        return cls(policy=policy, llm=llm or "offline", params=params, index=index)


def parse_agents(specs: list[str] | str) -> list[AgentSpec]:
    """Several specs (a list, or one string with specs separated by whitespace)."""
    if isinstance(specs, str):
        specs = specs.split()
    if not specs:
        raise UsageError("no agents: give at least one spec such as greedy:offline")
    return [AgentSpec.parse(s, index=i) for i, s in enumerate(specs)]


@dataclass(eq=False, kw_only=True)
class AgentRuntime:
    """One agent of a running ensemble: its policy, LLM and random stream, and whether it may step."""

    spec: AgentSpec
    policy: object  # aira.agents.base.Policy
    llm: object | None  # aira.agents.base.LLM, None for the offline agent
    rng: object  # random.Random
    done: bool = False  # the policy said None with nothing of its own in flight
    waiting: bool = False  # the policy said None while its own nodes run: ask again after one ends
    invalid_streak: int = 0  # consecutive INVALID proposals; too many retire the agent

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def can_step(self) -> bool:
        return not (self.done or self.waiting)

    def draft_node(self, step, ctx, operators: dict, *, node_id: str, seed: int) -> Node:
        """Run the step's operator and wrap its Draft in a pending Node. An operator that raises
        gives a node with `error` set (recorded INVALID), except for UsageError (bad setup, e.g. a
        missing API key) and the LLM budget running out, which end the run.

        The operator's LLM calls are metered, so the node is charged for every paid reply even when
        the operator raises after it; when the budget runs out after a paid reply, the node is
        attached to the BudgetExceeded (`e.node`) for the orchestrator to record."""
        from aira.agents.base import Draft
        from aira.agents.llm import BudgetExceeded
        from aira.agents.llm.ledger import MeteredLLM

        op = operators.get(step.operator)
        meter = MeteredLLM(ctx.llm) if ctx.llm is not None else None
        if meter is not None:
            ctx = replace(ctx, llm=meter)
        out_of_budget = None
        try:
            if getattr(step, "proposal", None) is not None:  # the policy chose the proposal itself
                draft = Draft(proposal=step.proposal, idea=step.idea)
            elif op is None:
                raise ValueError(f"policy {self.spec.policy} asked for unknown operator {step.operator!r}")
            else:
                draft = op(ctx)
        except UsageError:
            raise
        except BudgetExceeded as e:
            if meter is None or not meter.completions:
                raise
            out_of_budget = e
            draft = Draft(proposal=None, error=f"operator {step.operator} stopped: {e}")
        except Exception as e:  # noqa: BLE001 - a failed operator is one INVALID node, not a dead run
            draft = Draft(proposal=None, error=f"operator {step.operator} failed: {type(e).__name__}: {e}")
        tokens = (draft.input_tokens, draft.output_tokens, draft.cost_usd)
        transcript = draft.transcript
        if meter is not None and meter.completions:
            # What passed through the meter was paid, whatever the draft says (nothing, if it raised).
            tokens = tuple(max(a, b) for a, b in zip(tokens, meter.usage()))
            transcript = transcript or meter.transcript
        debug = step.operator == "debug" and ctx.parents
        node = Node(
            id=node_id, agent=self.name, operator=step.operator, parents=list(step.parents),
            proposal=draft.proposal, idea=draft.idea, llm=self.spec.llm, transcript=transcript,
            input_tokens=tokens[0], output_tokens=tokens[1], cost_usd=tokens[2],
            error=draft.error, seed=seed, debug_depth=ctx.parents[0].debug_depth + 1 if debug else 0,
            guidance=ctx.guidance.version if ctx.guidance is not None else 0, guidance_read=draft.guidance_read,
        )  # fmt: skip
        if out_of_budget is not None:
            out_of_budget.node = node
            raise out_of_budget
        return node


def strip_hidden(node: Node) -> Node:
    """A copy safe to show a policy or operator: no selection-split (or other hidden) metrics."""
    view = Node.from_dict(node.to_dict())
    view.selection_metric = None
    view.metrics = {k: v for k, v in view.metrics.items() if not k.startswith(HIDDEN_PREFIXES)}
    return view


def make_policy_for(spec: AgentSpec, task):
    """A fresh policy for `spec`, oriented by the task's direction."""
    from aira.agents.policies import make_policy

    policy = make_policy(spec.policy, lower_is_better=task.lower_is_better, **spec.params)
    if hasattr(policy, "bind"):  # policies that read the task itself (baselines, Bayesian optimisation)
        policy.bind(task)
    return policy
