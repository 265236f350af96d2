"""Getting structured answers out of free-text LLM replies, and asking again when that fails.

Replies come wrapped in prose, Markdown fences and, from reasoning models served locally, in
<think> blocks. The helpers here take what the caller asked for out of them and raise `ParseError`
with a reason precise enough to show the model itself: `complete_with_retries` sends that reason
back as a user turn and asks again (showing at most RESEND_CHARS of the failed reply: `clip`), and
when every attempt fails, the error carries the whole transcript so the caller can record an invalid
node with what was said.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aira.agents.base import LLM

T = TypeVar("T")


class ParseError(ValueError):
    """A reply did not contain what was asked for. `transcript` / `usage` are set by
    `complete_with_retries` when it gives up."""

    def __init__(self, reason: str, *, transcript: list[dict] | None = None, usage: Usage | None = None):
        super().__init__(reason)
        self.reason = reason
        self.transcript = transcript or []
        self.usage = usage


# ---------------------------------------------------------------------------------------- reasoning

_TAGS = r"think|thinking|reasoning"
_BLOCK = re.compile(rf"<({_TAGS})\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_OPEN = re.compile(rf"<({_TAGS})\b[^>]*>", re.IGNORECASE)
_CLOSE = re.compile(rf"</({_TAGS})\s*>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """The reply without <think>, <thinking> and <reasoning> blocks, stripped of outer whitespace."""
    # A closing tag before any opening one: the chat template opened the block inside the prompt
    # (DeepSeek-R1, Qwen3), so everything up to it is reasoning.
    close, open_ = _CLOSE.search(text), _OPEN.search(text)
    if close and (open_ is None or close.start() < open_.start()):
        text = text[close.end():]
    text = _BLOCK.sub("", text).strip()
    # A leading block that never closes: the reply was cut off while still thinking.
    m = _OPEN.match(text)
    if m:
        text = ""
    return text


def clip(text: str, limit: int, *, where: str = "") -> str:
    """`text` when it has at most `limit` characters, else its head and tail, `limit` characters in
    all, around one line saying how much was cut (and `where` the whole text is, when given)."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    see = f"; the whole text is in {where}" if where else ""
    marker = f"[... aira cut {len(text) - limit} of {len(text)} characters here{see} ...]"
    return f"{text[:head]}\n{marker}\n{text[-tail:]}"


# ------------------------------------------------------------------------------------------- fences

@dataclass
class Fenced:
    lang: str       # lower-case first word of the info string, "" when untagged
    content: str
    closed: bool


_FENCE_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)")
_ALIASES = {"py": "python", "python3": "python", "sh": "bash", "shell": "bash", "zsh": "bash",
            "yml": "yaml", "js": "javascript", "ts": "typescript", "jsonc": "json", "json5": "json"}


def _canon(lang: str) -> str:
    lang = lang.lower().strip("{}.")
    return _ALIASES.get(lang, lang)


def fenced_blocks(text: str) -> list[Fenced]:
    """Every fenced block (``` or ~~~, three or more), in order. A block closes at a line holding
    only the same fence character, at least as many times (so ```` can contain ```)."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), _canon(m.group(2))
        j = i + 1
        while j < len(lines):
            s = lines[j].strip()
            if len(s) >= len(fence) and set(s) == {fence[0]}:
                break
            j += 1
        blocks.append(Fenced(lang, "\n".join(lines[i + 1:j]), closed=j < len(lines)))
        i = j + 1
    return blocks


def extract_code_block(text: str, lang: str | None = None) -> str:
    """The fenced code block of the reply. With several: those tagged `lang` first, then untagged
    ones, and the longest of them. ParseError when there is none."""
    blocks = fenced_blocks(strip_reasoning(text))
    closed = [b for b in blocks if b.closed]
    if not closed:
        if blocks:
            raise ParseError("the code block is not closed with ``` (was the reply cut off at max_tokens?)")
        want = f"```{lang}" if lang else "```"
        raise ParseError(f"no fenced code block found; put the code in a {want} ... ``` block")
    pool = closed
    if lang:
        want = _canon(lang)
        pool = [b for b in closed if b.lang == want] or [b for b in closed if not b.lang]
        if not pool:
            if len(closed) > 1:
                found = ", ".join(sorted({b.lang for b in closed}))
                raise ParseError(f"no ```{lang} code block found (found blocks tagged: {found})")
            pool = closed  # one block in another language: the model mislabelled it
    return max(pool, key=lambda b: len(b.content)).content


# --------------------------------------------------------------------------------------------- JSON

_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _loads(s: str) -> tuple[Any, str | None]:
    try:
        return json.loads(s), None
    except json.JSONDecodeError as e:
        err = f"{e.msg} at line {e.lineno} column {e.colno}"
    # Trailing commas are the one slip common enough to forgive; anything else is sent back.
    try:
        return json.loads(_TRAILING_COMMA.sub(r"\1", s)), None
    except json.JSONDecodeError:
        return None, err


def _balanced_objects(text: str) -> tuple[list[str], bool]:
    """Every balanced {...} that could be a JSON object ('{' then '"' or '}'), in order of start,
    and whether such a start never closed. One pass with a stack of open braces, so a long reply
    full of unmatched braces (code) stays linear; quotes are tracked only inside braces, where a
    brace within a JSON string must not count."""
    spans, stack, in_str, esc = [], [], False, False
    for j, c in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"' and stack:
            in_str = True
        elif c == "{":
            stack.append(j)
        elif c == "}" and stack:
            spans.append((stack.pop(), j + 1))
    found = [text[a:b] for a, b in sorted(spans) if _opens_object(text, a)]
    return found, any(_opens_object(text, i) for i in stack)


def _opens_object(text: str, i: int) -> bool:
    return text[i + 1:i + 2000].lstrip()[:1] in ('"', "}")


def extract_json(text: str) -> dict:
    """The JSON object of the reply: from a ```json fence if there is one, else the first balanced
    {...} that parses. ParseError says why nothing qualified."""
    body = strip_reasoning(text)
    fenced = [b.content for b in fenced_blocks(body)
              if b.closed and (b.lang == "json" or (not b.lang and b.content.lstrip().startswith("{")))]
    loose, unclosed = _balanced_objects(body)
    first_err = None
    for cand in fenced + loose:
        obj, err = _loads(cand.strip())
        if isinstance(obj, dict):
            return obj
        if first_err is None:
            first_err = err or f"expected a JSON object {{...}}, got {type(obj).__name__}"
    if first_err:
        raise ParseError(f"the JSON object is malformed: {first_err}")
    if unclosed:
        raise ParseError("the JSON object is not closed with '}' (was the reply cut off at max_tokens?)")
    raise ParseError("no JSON object found; reply with one object in a ```json ... ``` block")


# ---------------------------------------------------------------------------------- ask again on error

@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    calls: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


FEEDBACK = "Your reply could not be parsed: {reason}. Reply again, following the requested format exactly."
RESEND_CHARS = 32_000  # of a failed reply shown to the model again (a runaway reply is megabytes)


def _entry(role: str, content: str, model: str = "", input_tokens: int = 0, output_tokens: int = 0,
           cost_usd: float = 0.0) -> dict:
    return {"role": role, "content": content, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "cost_usd": cost_usd, "model": model}


def complete_with_retries(llm: LLM, messages: Sequence[dict], parse_fn: Callable[[str], T], *,
                          attempts: int = 3, system: str | None = None, max_tokens: int = 4096,
                          temperature: float = 1.0) -> tuple[T, list[dict], Usage]:
    """Ask `llm`, parse the reply with `parse_fn`; on a ParseError (or any ValueError, e.g. a
    validator's UsageError) send the reason back and ask again, `attempts` calls in all.

    Returns (parsed, transcript, usage). The transcript holds the system prompt, the messages, each
    reply (with its tokens, cost and model) and each complaint, in order. When every attempt fails,
    raises ParseError with the last reason, `.transcript` and `.usage`. LLM errors (after the
    backend's own retries) and BudgetExceeded propagate unchanged.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    convo = [{"role": m["role"], "content": m["content"]} for m in messages]
    transcript = ([_entry("system", system)] if system else []) + [_entry(m["role"], m["content"])
                                                                   for m in convo]
    usage = Usage()
    reason = ""
    for attempt in range(attempts):
        c = llm.complete(convo, system=system, max_tokens=max_tokens, temperature=temperature)
        usage.input_tokens += c.input_tokens
        usage.output_tokens += c.output_tokens
        usage.cost_usd += c.cost_usd
        usage.seconds += c.seconds
        usage.calls += 1
        transcript.append(_entry("assistant", c.text, c.model, c.input_tokens, c.output_tokens, c.cost_usd))
        try:
            return parse_fn(c.text), transcript, usage
        except ValueError as e:
            reason = str(e) or type(e).__name__
        if attempt + 1 == attempts:
            break
        feedback = FEEDBACK.format(reason=reason.rstrip("."))
        # The model sees its answer without the reasoning (providers ask not to send it back).
        shown = clip(strip_reasoning(c.text), RESEND_CHARS)
        convo += [{"role": "assistant", "content": shown or "(empty reply)"},
                  {"role": "user", "content": feedback}]
        transcript.append(_entry("user", feedback))
    raise ParseError(f"no parsable reply after {attempts} attempts: {reason}", transcript=transcript,
                     usage=usage)
