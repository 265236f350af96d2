"""Replaying recorded completions, and recording real ones in the same format."""

from __future__ import annotations

import json

import pytest

from aira.agents.llm import (
    CostLedger,
    RecordingLLM,
    ReplayExhausted,
    ReplayLLM,
    ReplayMismatch,
    complete_with_retries,
    extract_json,
    make_llm,
)
from aira.errors import UsageError

ASK = [{"role": "user", "content": "Propose a 16-layer pattern."}]


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_replay_in_order_then_exhausted(tmp_path):
    f = write(tmp_path / "r.jsonl", [
        {"text": "first", "model": "claude-haiku-4-5", "input_tokens": 10**6, "output_tokens": 0},
        {"text": "second", "model": "m", "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.25},
    ])
    ledger = CostLedger()
    llm = make_llm(f"replay:{f}", ledger=ledger)
    assert isinstance(llm, ReplayLLM) and llm.spec == f"replay:{f}"
    a, b = llm.complete(ASK), llm.complete(ASK)
    assert (a.text, a.model, a.cost_usd) == ("first", "claude-haiku-4-5", pytest.approx(1.0))  # priced
    assert (b.text, b.input_tokens, b.output_tokens, b.cost_usd) == ("second", 1, 2, 0.25)  # recorded
    assert ledger.calls == 2 and ledger.spent == pytest.approx(1.25)
    with pytest.raises(ReplayExhausted, match="all 2 recorded completions are used"):
        llm.complete(ASK)


def test_replay_match_guards_the_prompt(tmp_path):
    f = write(tmp_path / "r.jsonl", [{"text": "x", "match": "16-layer"}, {"text": "y", "match": "debug"}])
    llm = ReplayLLM(f)
    assert llm.complete(ASK).text == "x"
    with pytest.raises(ReplayMismatch, match="completion #2 was recorded for a prompt containing 'debug'"):
        llm.complete(ASK)
    assert llm.complete(ASK, system="You debug code.").text == "y"  # the system prompt counts


def test_replay_drives_parse_retries(tmp_path):
    f = write(tmp_path / "r.jsonl", [{"text": "AMAM?"}, {"text": '{"pattern": "AMAM"}'}])
    parsed, transcript, usage = complete_with_retries(ReplayLLM(f), ASK, extract_json)
    assert parsed == {"pattern": "AMAM"} and usage.calls == 2 and len(transcript) == 4


@pytest.mark.parametrize("content, reason", [
    ('{"text": "ok"}\nnot json\n', "r.jsonl:2: not valid JSON"),
    ('{"model": "m"}\n', "r.jsonl:1: a replay record needs a \"text\" string"),
])
def test_bad_replay_files(tmp_path, content, reason):
    (tmp_path / "r.jsonl").write_text(content)
    with pytest.raises(UsageError, match=reason):
        ReplayLLM(tmp_path / "r.jsonl")


def test_recording_round_trip(tmp_path):
    src = write(tmp_path / "src.jsonl", [
        {"text": "one", "model": "gpt-5", "input_tokens": 100, "output_tokens": 20},
        {"text": "two\nlines", "model": "gpt-5", "input_tokens": 5, "output_tokens": 6},
    ])
    out = tmp_path / "sub" / "rec.jsonl"
    rec = RecordingLLM(ReplayLLM(src), out)
    originals = [rec.complete(ASK), rec.complete(ASK)]
    assert rec.spec == f"replay:{src}"
    replayed = ReplayLLM(out)
    for c in originals:
        r = replayed.complete(ASK)
        assert (r.text, r.model, r.input_tokens, r.output_tokens) == (c.text, c.model, c.input_tokens,
                                                                      c.output_tokens)
        assert r.cost_usd == pytest.approx(c.cost_usd) and c.cost_usd > 0
    assert replayed.remaining == 0
