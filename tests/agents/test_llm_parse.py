"""Reply parsing: reasoning tags, fences, JSON with nested braces, and asking again on bad replies."""

from __future__ import annotations

import json

import pytest

from aira.agents.base import LLM
from aira.agents.llm import (
    ParseError,
    complete_with_retries,
    extract_code_block,
    extract_json,
    strip_reasoning,
)
from aira.agents.types import Completion
from aira.errors import UsageError

F = "```"


@pytest.mark.parametrize("text, expected", [
    ("<think>let me see {\"a\": 1}</think>\nAnswer", "Answer"),
    ("<thinking>\nhmm\n</thinking>A<reasoning kind='x'>b</reasoning>C", "AC"),
    ("<THINK>x</THINK>  kept  ", "kept"),
    ("the template opened it\n</think>\nfinal", "final"),   # DeepSeek-R1 / Qwen3 style
    ("<think>cut off while thinking, no close", ""),
    ("<think>a</think>one<think>b</think>two", "onetwo"),
    ("plain reply", "plain reply"),
])
def test_strip_reasoning(text, expected):
    assert strip_reasoning(text) == expected


def test_extract_json_prefers_fence_and_ignores_reasoning():
    text = ('<think>maybe {"pattern": "wrong"}</think>Sure! Here is {not json}.\n'
            f'{F}json\n{{"pattern": "AMAM", "why": "x"}}\n{F}\n')
    assert extract_json(text) == {"pattern": "AMAM", "why": "x"}


def test_extract_json_nested_braces_and_braces_in_strings():
    obj = {"a": {"b": {"c": [1, {"d": "}{"}]}}, "code": "def f():\n    return {'k': 1}"}
    text = "Reasoning with a stray { brace.\n" + json.dumps(obj) + "\nThat's it. {\"other\": 2}"
    assert extract_json(text) == obj


def test_extract_json_after_many_unmatched_braces():
    # a long reply of code with unbalanced braces must neither hide the answer nor take quadratic time
    text = 'x = {"k": v for v in range(3)\n' * 3000 + 'Answer: {"pattern": "AM"} done.'
    assert extract_json(text) == {"pattern": "AM"}


def test_extract_json_untagged_fence_and_trailing_commas():
    assert extract_json(f'{F}\n{{"x": [1, 2,],}}\n{F}') == {"x": [1, 2]}


def test_extract_json_skips_objects_that_do_not_parse():
    assert extract_json('{"a": nope} then {"b": 1}') == {"b": 1}


@pytest.mark.parametrize("text, reason", [
    ("no braces here", "no JSON object found"),
    ('{"a": 1 "b": 2}', "the JSON object is malformed: Expecting ',' delimiter at line 1 column 9"),
    (f'{F}json\n[1, 2]\n{F}', "expected a JSON object {...}, got list"),
    ('Here: {"pattern": "AM', "not closed with '}'"),
])
def test_extract_json_errors(text, reason):
    with pytest.raises(ParseError) as e:
        extract_json(text)
    assert reason in str(e.value)


def test_extract_code_block_prefers_language_then_longest():
    text = (f"Install:\n{F}bash\npip install x\n{F}\nCode:\n{F}python\nshort = 1\n{F}\n"
            f"Better:\n{F}py\nlonger = 1\nmore = 2\n{F}\n")
    assert extract_code_block(text, "python") == "longer = 1\nmore = 2"
    assert extract_code_block(text, "bash") == "pip install x"
    assert extract_code_block(text) == "longer = 1\nmore = 2"  # no language: the longest


def test_extract_code_block_fallbacks_and_nesting():
    assert extract_code_block(f"{F}\nx = 1\n{F}", "python") == "x = 1"  # untagged counts
    assert extract_code_block(f"{F}text\nx = 1\n{F}", "python") == "x = 1"  # the only block
    # a longer fence may contain a shorter one (a Markdown file with code in it)
    md = f"````markdown\n# T\n{F}python\nprint(1)\n{F}\n````"
    assert extract_code_block(md, "markdown") == f"# T\n{F}python\nprint(1)\n{F}"
    assert extract_code_block(f"<think>{F}python\nbad\n{F}</think>{F}python\ngood\n{F}") == "good"


@pytest.mark.parametrize("text, lang, reason", [
    ("just prose", "python", "no fenced code block found; put the code in a ```python"),
    (f"{F}python\ndef f():\n    return", "python", "not closed"),
    (f"{F}bash\na\n{F}\n{F}yaml\nb\n{F}", "python", "no ```python code block found (found blocks tagged: bash, yaml)"),
])
def test_extract_code_block_errors(text, lang, reason):
    with pytest.raises(ParseError) as e:
        extract_code_block(text, lang)
    assert reason in str(e.value)


class Scripted(LLM):
    """Answers from a list and remembers what it was asked."""

    spec = "scripted"

    def __init__(self, replies: list[str]):
        self.replies, self.calls = list(replies), []

    def complete(self, messages, *, system=None, max_tokens=4096, temperature=1.0) -> Completion:
        self.calls.append([dict(m) for m in messages])
        return Completion(text=self.replies.pop(0), model="m", input_tokens=10, output_tokens=2,
                          cost_usd=0.5, seconds=0.1)


def test_complete_with_retries_feeds_the_error_back():
    llm = Scripted(["<think>hm</think>I think AMAM", f'{F}json\n{{"pattern": "AMAM"}}\n{F}'])
    parsed, transcript, usage = complete_with_retries(
        llm, [{"role": "user", "content": "Go"}], extract_json, system="Sys")
    assert parsed == {"pattern": "AMAM"}
    assert (usage.calls, usage.input_tokens, usage.output_tokens, usage.cost_usd) == (2, 20, 4, 1.0)
    second = llm.calls[1]
    assert second[1] == {"role": "assistant", "content": "I think AMAM"}  # reasoning not sent back
    assert second[2]["content"].startswith("Your reply could not be parsed: no JSON object found")
    assert [e["role"] for e in transcript] == ["system", "user", "assistant", "user", "assistant"]
    assert transcript[2]["content"] == "<think>hm</think>I think AMAM"  # recorded verbatim
    assert transcript[4]["cost_usd"] == 0.5 and transcript[4]["model"] == "m"
    assert transcript[4]["output_tokens"] == 2 and transcript[1]["input_tokens"] == 0


def test_complete_with_retries_gives_up_with_transcript():
    llm = Scripted(["nope", "still nope", '{"pattern": "AM', "unused"])
    with pytest.raises(ParseError) as e:
        complete_with_retries(llm, [{"role": "user", "content": "Go"}], extract_json, attempts=3)
    err = e.value
    assert str(err).startswith("no parsable reply after 3 attempts: the JSON object is not closed")
    assert len(llm.replies) == 1 and err.usage.calls == 3 and err.usage.cost_usd == 1.5
    # Go, 3 replies, 2 complaints (none after the last reply: it was never sent)
    assert [e["role"] for e in err.transcript] == ["user", "assistant", "user", "assistant", "user",
                                                   "assistant"]


def test_complete_with_retries_accepts_validator_errors():
    def parse(text: str) -> str:
        if text not in ("AM", "MA"):
            raise UsageError(f"unknown pattern {text!r}")
        return text

    llm = Scripted(["XX", "MA"])
    parsed, _, usage = complete_with_retries(llm, [{"role": "user", "content": "Go"}], parse)
    assert parsed == "MA" and usage.calls == 2
    assert "unknown pattern 'XX'" in llm.calls[1][-1]["content"]


def test_a_runaway_reply_is_resent_clipped():
    from aira.agents.llm.parse import RESEND_CHARS, clip

    huge = "H" * 100 + "x" * 3_000_000 + "T" * 100
    llm = Scripted([huge, '{"pattern": "AMAM"}'])
    _, transcript, _ = complete_with_retries(llm, [{"role": "user", "content": "Go"}], extract_json)
    shown = llm.calls[1][1]["content"]
    cut = len(huge) - RESEND_CHARS
    marker = f"\n[... aira cut {cut} of {len(huge)} characters here ...]\n"
    assert shown == huge[: RESEND_CHARS // 2] + marker + huge[-RESEND_CHARS // 2 :]
    assert shown.startswith("H" * 100) and shown.endswith("T" * 100)
    assert transcript[1]["content"] == huge  # the caller decides what it keeps (aira.agents.transcripts)
    assert clip("short", 10) == "short" and clip("abcdefghijkl", 4, where="f.json") == (
        "ab\n[... aira cut 8 of 12 characters here; the whole text is in f.json ...]\nkl")
