"""Literature access for the operators (`--literature DIR`): a folder of papers and notes to search.

Every .txt / .md file below DIR is cut into passages (paragraphs, merged up to ~800 characters) and
indexed with BM25 over lower-cased word tokens, all in memory: no network, no model. `search(query, k)`
returns the best passages with their file names; `render(passages)` is the text the prompt shows
("Retrieved from the literature for '<query>'"), so the transcript says exactly what the agent read.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aira.errors import UsageError

PASSAGE_CHARS = 800
K1, B = 1.5, 0.75  # the usual BM25 constants
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Passage:
    source: str  # the file, relative to the literature folder
    text: str
    score: float = 0.0


def _passages(text: str) -> list[str]:
    out, cur = [], ""
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if cur and len(cur) + len(para) > PASSAGE_CHARS:
            out.append(cur)
            cur = ""
        cur = f"{cur} {para}".strip()
        while len(cur) > 2 * PASSAGE_CHARS:  # one huge paragraph: cut it
            out.append(cur[:PASSAGE_CHARS])
            cur = cur[PASSAGE_CHARS:]
    if cur:
        out.append(cur)
    return out


class Literature:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise UsageError(f"literature folder {folder} does not exist")
        self.passages: list[Passage] = []
        for path in sorted(p for p in self.folder.rglob("*") if p.suffix in (".txt", ".md") and p.is_file()):
            text = path.read_text(encoding="utf-8", errors="replace")
            rel = str(path.relative_to(self.folder))
            self.passages += [Passage(rel, t) for t in _passages(text)]
        if not self.passages:
            raise UsageError(f"literature folder {folder} holds no .txt or .md text")
        self._tf = [Counter(words(p.text)) for p in self.passages]
        self._len = [sum(tf.values()) for tf in self._tf]
        self._avg = sum(self._len) / len(self._len)
        df = Counter(w for tf in self._tf for w in tf)
        n = len(self.passages)
        self._idf = {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The k passages with the highest BM25 score for `query` (none that share no word with it)."""
        q = set(words(query))
        scored = []
        for i, tf in enumerate(self._tf):
            s = 0.0
            for w in q & tf.keys():
                f = tf[w]
                s += self._idf[w] * f * (K1 + 1) / (f + K1 * (1 - B + B * self._len[i] / self._avg))
            if s > 0:
                scored.append((s, i))
        scored.sort(key=lambda si: (-si[0], si[1]))
        return [Passage(self.passages[i].source, self.passages[i].text, s) for s, i in scored[:k]]

    def mentions(self, terms: list[str]) -> list[str]:
        """Which of `terms` (constant names' topics) any passage talks about, for the offline agent."""
        vocab = set().union(*self._tf)
        return [t for t in terms if vocab & set(words(t))]


def render(query: str, passages: list[Passage]) -> str:
    if not passages:
        return f"Retrieved from the literature for '{query}': nothing matched."
    lines = [f"Retrieved from the literature for '{query}':"]
    lines += [f"- [{p.source}] {p.text}" for p in passages]
    return "\n".join(lines)
