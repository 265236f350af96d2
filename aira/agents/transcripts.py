"""Bounded LLM transcripts: what the journal keeps of each message, and where the whole text goes.

A reply can be megabytes (a model that loops until a server's token limit), and the journal writes a
node's whole dict with each of its events: eight such nodes once grew a journal to 430 MB. So a node
keeps at most MESSAGE_CHARS of each message, its head and tail around a line that says how much was
cut, and the whole transcript is written once, as JSON, to `RUN/transcripts/<node id>.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from aira.agents.llm.parse import clip
from aira.agents.types import Node
from aira.fileio import write_atomic

MESSAGE_CHARS = 20_000
FOLDER = "transcripts"


def bound_transcript(node: Node, run_dir: str | Path) -> bool:
    """Clip the node's long messages in place, after saving the whole transcript beside the journal.
    True when something was cut."""
    def too_long(m: dict) -> bool:
        return len(str(m.get("content", ""))) > MESSAGE_CHARS

    if not any(too_long(m) for m in node.transcript):
        return False
    where = f"{FOLDER}/{node.id}.json"
    path = Path(run_dir) / where
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(node.transcript, default=str))
    node.transcript = [
        {**m, "content": clip(str(m["content"]), MESSAGE_CHARS, where=where)} if too_long(m) else m
        for m in node.transcript
    ]
    return True
