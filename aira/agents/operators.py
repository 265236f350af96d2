"""The four operators: draft, improve, debug, crossover (aira-dojo's operator set, minus analyze).

With an LLM, an operator renders its prompt template (aira/agents/prompts/<name>.md: role, task,
memory, constraints, response format), asks the model through `complete_with_retries` (3 attempts,
each failed parse is shown to the model again), and parses the reply by the task's proposal kind:

- "pattern" / "json": one JSON object {"idea": "<one line>", "proposal": <the proposal>};
- "file": a line "IDEA: <one line>" and one fenced code block with the whole file, which becomes
  {"files": {<task.editable_file or "solution.py">: code}}.

A reply that still cannot be parsed gives a Draft with `error` set and the full transcript (the
orchestrator records it as INVALID, so the tokens spent are audited, not lost).

With no LLM (the offline agent), the operators are the task's search moves (`task.space()`):
draft = sample, improve = mutate, crossover = crossover, debug = repair, each retried a few times to
avoid proposals already in memory. Their ideas start with "[offline]" so no output can pass for an
LLM's. Operators only ever see search-split metrics; memory rendering drops the selection metric.

The researcher's guidance (`ctx.guidance`, RUN/guidance.md) goes into an LLM prompt as a
delimited section before the response format, and the Draft says it did (`guidance_read`); the offline
moves cannot read prose, so their drafts say they did not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from string import Template
from typing import Any

from aira.agents.base import Draft, Operator, OperatorContext, Task
from aira.agents.memory import debug_chain, render_memory, sibling_ideas
from aira.agents.types import Node
from aira.errors import UsageError

PROMPTS = Path(__file__).parent / "prompts"
SECTIONS = ("## Role", "## Task", "## Memory", "## Constraints", "## Response format")
ATTEMPTS = 3
DEFAULT_FILE = "solution.py"

CONSTRAINTS = (
    "- Give exactly one proposal. It is validated before evaluation; an invalid one wastes a slot.\n"
    "- The harness computes every score on data you cannot see; do not try to read or alter it.\n"
    "- The idea is ONE line that says what is new and why it should help."
)


def _key(proposal: Any) -> str:
    return json.dumps(proposal, sort_keys=True, default=str)


def editable_file(task: Task) -> str:
    return getattr(task, "editable_file", None) or DEFAULT_FILE


def response_format(task: Task) -> str:
    if task.proposal_kind == "file":
        return (f"First a line `IDEA: <one line>`. Then ONE fenced code block (```python ... ```) with the "
                f"COMPLETE new contents of `{editable_file(task)}`; it replaces the file as a whole. "
                "Nothing after the block.")
    what = "the pattern as a string" if task.proposal_kind == "pattern" else \
        "the proposal as a JSON value, in the form the task describes"
    return ("Reply with ONE JSON object and nothing else:\n"
            f'{{"idea": "<one line: what you propose and why>", "proposal": <{what}>}}')


def show_proposal(proposal: Any) -> str:
    """A proposal in full, for a prompt: code as fenced files, a pattern as is, else indented JSON."""
    if isinstance(proposal, dict) and isinstance(proposal.get("files"), dict):
        return "\n\n".join(f"`{name}`:\n```python\n{code}\n```" for name, code in proposal["files"].items())
    if isinstance(proposal, str):
        return proposal
    return json.dumps(proposal, indent=2, sort_keys=True, default=str)


def _metric(node: Node) -> str:
    return "none" if node.metric is None else f"{node.metric:.6g}"


def _parent_fields(prefix: str, node: Node) -> dict[str, str]:
    # Only the search metric: the selection metric is for final ranking, never for the agent.
    return {f"{prefix}_id": node.id, f"{prefix}_metric": _metric(node), f"{prefix}_idea": node.idea or "none",
            prefix: show_proposal(node.proposal)}


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {ln}" for ln in lines if ln) or "- none yet"


def constraints(ctx: OperatorContext) -> str:
    """The fixed rules, the measured noise floor when there is one, and any task-specific rules."""
    lines = [CONSTRAINTS]
    floor = ctx.noise_floor
    if floor is not None and floor.n > 1:
        # Agents otherwise "improve" by luck (users of autoresearch report it): say what noise is.
        lines.append(f"- The reference design scored {floor.mean:.6g} +- {floor.std:.2g} (std over "
                     f"{floor.n} seeds): differences smaller than that are noise, not progress.")
    if ctx.constraints:
        lines.append(ctx.constraints)
    return "\n".join(lines)


def guidance_text(ctx: OperatorContext) -> str:
    """The researcher's guidance in force for this step (`ctx.guidance`, set by the orchestrator from
    RUN/guidance.md), or ""."""
    return ctx.guidance.text.strip() if ctx.guidance is not None else ""


def guidance_section(ctx: OperatorContext) -> str:
    """A clearly delimited prompt section holding the guidance, or "" when there is none."""
    text = guidance_text(ctx)
    if not text:
        return ""
    version = ctx.guidance.version
    return (f"## Guidance from the researcher (version {version})\n"
            "The researcher running this search wrote this note while it runs. Take it into account; the "
            "constraints above and the response format below still hold.\n"
            f"----- begin guidance -----\n{text}\n----- end guidance -----\n\n")


def render_prompt(name: str, ctx: OperatorContext) -> str:
    """The prompt of operator `name` for this context (public so it can be inspected and tested)."""
    values = {"task": ctx.task.describe(), "memory": render_memory(ctx.memory, ctx.task),
              "constraints": constraints(ctx), "response_format": response_format(ctx.task)}
    if name in ("improve", "debug", "crossover"):
        values |= _parent_fields("parent", ctx.parents[0])
    if name == "improve":
        values["siblings"] = _bullets(sibling_ideas(ctx.memory, ctx.parents[0].id))
    elif name == "crossover":
        values |= _parent_fields("other", ctx.parents[1])
    elif name == "debug":
        failed = ctx.parents[0]
        chain = ctx.debug_chain or debug_chain(failed, ctx.memory)
        values["parent_status"] = failed.status.value
        values["parent_error"] = failed.error.strip() or "no error message"
        values["chain"] = "\n".join(
            f"- {n.id} ({n.status.value}): {n.idea or 'no idea'}\n  error: {n.error.strip() or 'none'}"
            for n in chain) or "- none: this is the first repair"
    template = Template((PROMPTS / f"{name}.md").read_text())
    prompt = template.substitute(values)
    if section := guidance_section(ctx):
        head, sep, tail = prompt.rpartition("## Response format")
        prompt = head + section + sep + tail if sep else prompt + "\n\n" + section
    return prompt


def _parse_reply(task: Task) -> Callable[[str], tuple[Any, str]]:
    from aira.agents.llm.parse import ParseError, extract_code_block, extract_json

    def parse_json(text: str) -> tuple[Any, str]:
        obj = extract_json(text)
        if not isinstance(obj, dict) or "proposal" not in obj:
            raise ParseError('the reply must be one JSON object with keys "idea" and "proposal"')
        return obj["proposal"], " ".join(str(obj.get("idea", "")).split())[:200]

    def parse_file(text: str) -> tuple[Any, str]:
        code = extract_code_block(text)
        idea = ""
        for line in text.splitlines():
            if line.strip().upper().startswith("IDEA:"):
                idea = line.strip()[5:].strip()
                break
        if not idea:  # a reply without the IDEA line is still usable: take the first prose line
            idea = next((ln.strip() for ln in text.splitlines() if ln.strip() and "```" not in ln), "")
        return {"files": {editable_file(task): code}}, idea[:200]

    return parse_file if task.proposal_kind == "file" else parse_json


def _usage(usage: Any) -> tuple[int, int, float]:
    get = usage.get if isinstance(usage, dict) else (lambda k, d=0: getattr(usage, k, d))
    return (int(get("input_tokens", 0) or 0), int(get("output_tokens", 0) or 0),
            float(get("cost_usd", 0.0) or 0.0))


def _ask(name: str, ctx: OperatorContext) -> Draft:
    from aira.agents.llm.parse import ParseError, complete_with_retries

    prompt = render_prompt(name, ctx)
    messages = [{"role": "user", "content": prompt}]
    try:
        (proposal, idea), transcript, usage = complete_with_retries(
            ctx.llm, messages, _parse_reply(ctx.task), attempts=ATTEMPTS)
    except ParseError as e:
        tokens = _usage(getattr(e, "usage", None) or {})
        return Draft(proposal=None, idea="", transcript=list(getattr(e, "transcript", None) or messages),
                     input_tokens=tokens[0], output_tokens=tokens[1], cost_usd=tokens[2],
                     error=str(e), guidance_read=bool(guidance_text(ctx)))
    tokens = _usage(usage)
    return Draft(proposal=proposal, idea=idea, transcript=list(transcript),
                 input_tokens=tokens[0], output_tokens=tokens[1], cost_usd=tokens[2],
                 guidance_read=bool(guidance_text(ctx)))


def _fresh(move: Callable[[], tuple[Any, str]], memory: list[Node], tries: int = 20) -> tuple[Any, str]:
    """A move's result, redrawn up to `tries` times while it repeats a proposal already in memory."""
    seen = {_key(n.proposal) for n in memory}
    for _ in range(tries):
        proposal, idea = move()
        if _key(proposal) not in seen:
            break
    return proposal, idea


class _SearchOperator(Operator):
    """Shared plumbing: check the parent count, then the LLM path or the offline move."""

    n_parents = 0

    def __call__(self, ctx: OperatorContext) -> Draft:
        if len(ctx.parents) != self.n_parents:
            raise ValueError(f"{self.name} takes {self.n_parents} parent(s), got {len(ctx.parents)}")
        if ctx.llm is not None:
            return _ask(self.name, ctx)
        space = ctx.task.space()
        if space is None:
            raise UsageError(f"task {ctx.task.name!r} has no offline search moves; give the agent an LLM")
        proposal, idea = self.move(space, ctx)
        return Draft(proposal=proposal, idea=f"[offline] {idea}")

    def move(self, space: Any, ctx: OperatorContext) -> tuple[Any, str]:
        raise NotImplementedError


class DraftOp(_SearchOperator):
    name = "draft"

    def move(self, space, ctx):
        return _fresh(lambda: space.sample(ctx.rng), ctx.memory)


class ImproveOp(_SearchOperator):
    name = "improve"
    n_parents = 1

    def move(self, space, ctx):
        return _fresh(lambda: space.mutate(ctx.parents[0].proposal, ctx.rng), ctx.memory)


class DebugOp(_SearchOperator):
    name = "debug"
    n_parents = 1

    def move(self, space, ctx):
        failed = ctx.parents[0]
        return space.repair(failed.proposal, failed.error, ctx.rng)


class CrossoverOp(_SearchOperator):
    name = "crossover"
    n_parents = 2

    def move(self, space, ctx):
        a, b = ctx.parents
        return _fresh(lambda: space.crossover(a.proposal, b.proposal, ctx.rng), ctx.memory)


OPERATORS: dict[str, Operator] = {op.name: op for op in (DraftOp(), ImproveOp(), DebugOp(), CrossoverOp())}

