"""The run journal: an append-only SQLite file (`journal.sqlite`) in WAL mode, one writer.

Two tables:
- `events`: the source of truth, append-only. One row per (node id, kind), kinds "created",
  "started", "finished". The pair is UNIQUE and written with INSERT OR IGNORE, so a replayed
  write (a retry after a crash, a resume that re-journals a node) changes nothing.
- `nodes`: a materialised view, one row per node holding its latest state; it is updated in the
  same transaction as the event that changed it and can be rebuilt from `events` (`rebuild()`).

A small `meta` table keeps run-level counters (e.g. wall-clock seconds already spent, for resume), and
`steering` the researcher's actions on a live run (aira.agents.steering), append-only: each guidance
version ("guidance": version, sha256, text) and each control request applied ("control": action, id, ...).
WAL mode lets `aira runs show` read the file (`Journal(path, readonly=True)`) while the
orchestrator writes it. One writer is enforced, not assumed: `writer_lock(run_dir)` holds an exclusive
`flock` on `writer.lock` in the run folder for as long as a run or resume lives (the OS drops it when
the process dies, so a crash never leaves a stale lock), and a second writer gets one clear line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from aira.agents.types import Node, Status
from aira.errors import UsageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts REAL NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (node_id, kind)
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    created_seq INTEGER NOT NULL,
    finished_seq INTEGER,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_agent ON nodes (agent, created_seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steering (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
"""

EVENT_KINDS = ("created", "started", "finished")


def event_kind(node: Node) -> str:
    """The event a node's current status stands for."""
    if node.status == Status.PENDING:
        return "created"
    if node.status == Status.RUNNING:
        return "started"
    return "finished"


class JournalError(UsageError):
    """A journal file that is not one (empty, truncated, overwritten): one line for the user, exit 2."""


class Journal:
    """Append-only record of every node of a run. Use as a context manager or call close().

    An existing file is checked before anything is written to it or read from it: a corrupt one
    raises JournalError, and so does any read that meets a damaged page or row later."""

    FILENAME = "journal.sqlite"

    def __init__(self, path: str | Path, *, readonly: bool = False):
        path = Path(path)
        if path.is_dir():
            path = path / self.FILENAME
        self.path = path
        self.readonly = readonly
        if readonly and not path.exists():
            raise FileNotFoundError(f"no journal at {path}")
        existed = path.is_file()
        if existed and path.stat().st_size == 0:
            # In WAL mode the first write puts a header in the file itself: 0 bytes is no run at all.
            raise JournalError(f"{path} is empty (0 bytes): not a run journal")
        if readonly:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open transactions explicitly so an event and its view row
            # land together or not at all.
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        try:
            if existed:
                self._check_tables()
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise JournalError(f"{path} cannot be read as a run journal ({e})") from None
        except JournalError:
            self._db.close()
            raise

    def _check_tables(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if missing := {"events", "nodes"} - tables:
            raise JournalError(f"{self.path} is not a run journal (no table {', '.join(sorted(missing))})")

    # --- writing (the orchestrator only) ---------------------------------------------------------

    def add(self, node: Node) -> bool:
        """Journal a node for the first time. Its current status decides the event(s) written: a
        node born finished (e.g. INVALID) gets "created" and "finished"."""
        wrote = self._append(node, "created")
        if node.status != Status.PENDING:
            wrote = self._append(node, event_kind(node)) or wrote
        return wrote

    def update(self, node: Node) -> bool:
        """Append the event for the node's new status. False when that event was already written."""
        return self._append(node, event_kind(node))

    def _append(self, node: Node, kind: str) -> bool:
        if self.readonly:
            raise PermissionError("journal opened read-only")
        data = json.dumps(node.to_dict(), default=str)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "INSERT OR IGNORE INTO events (node_id, kind, ts, payload) VALUES (?, ?, ?, ?)",
                (node.id, kind, time.time(), data),
            )
            inserted = cur.rowcount == 1
            if inserted:
                self._materialise(node.id, kind, cur.lastrowid, node.agent, node.status.value, data)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return inserted

    def _materialise(self, node_id: str, kind: str, seq: int, agent: str, status: str, data: str) -> None:
        if kind == "created":
            self._db.execute(
                "INSERT OR IGNORE INTO nodes (id, created_seq, agent, status, data) VALUES (?, ?, ?, ?, ?)",
                (node_id, seq, agent, status, data),
            )
            return
        # A later event never moves a finished node back (events may be replayed out of order).
        self._db.execute(
            "UPDATE nodes SET status = ?, data = ?, finished_seq = CASE WHEN ? = 'finished' THEN ? "
            "ELSE finished_seq END WHERE id = ? AND finished_seq IS NULL",
            (status, data, kind, seq, node_id),
        )

    def rebuild(self) -> None:
        """Recompute the `nodes` table from `events` (after a manual edit, or to check the view)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM nodes")
            rows = db.execute("SELECT seq, node_id, kind, payload FROM events ORDER BY seq").fetchall()
            for seq, node_id, kind, payload in rows:
                d = json.loads(payload)
                self._materialise(node_id, kind, seq, d.get("agent", ""), d.get("status", "pending"), payload)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add_steering(self, kind: str, data: dict) -> None:
        """Append one steering event ("guidance" or "control"), stamped with the time."""
        if self.readonly:
            raise PermissionError("journal opened read-only")
        self._db.execute("INSERT INTO steering (ts, kind, payload) VALUES (?, ?, ?)",
                         (time.time(), kind, json.dumps(data, default=str)))

    def steering(self) -> list[tuple[float, str, dict]]:
        """(time, kind, data) of every steering event, oldest first; [] for a journal from before steering."""
        try:
            rows = self._db.execute("SELECT ts, kind, payload FROM steering ORDER BY seq").fetchall()
        except sqlite3.OperationalError:  # no such table: written before steering existed
            return []
        except sqlite3.DatabaseError as e:
            raise JournalError(f"{self.path} cannot be read as a run journal ({e})") from None
        return [(ts, kind, self._decode(p, "steering event")) for ts, kind, p in rows]

    def set_meta(self, key: str, value) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # --- reading ---------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise JournalError(f"{self.path} cannot be read as a run journal ({e})") from None

    def _decode(self, text: str, what: str):
        """A stored JSON value, or Node when `what` is "node"; a row that does not decode is corruption."""
        try:
            value = json.loads(text)
            return Node.from_dict(value) if what == "node" else value
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            why = f"{type(e).__name__}: {e}"
            raise JournalError(f"{self.path} holds a {what} that cannot be read ({why})") from None

    def meta(self, key: str, default=None):
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return self._decode(rows[0][0], "meta value") if rows else default

    def nodes(self, agent: str | None = None) -> list[Node]:
        """Every node, in creation order; only one agent's when `agent` is given."""
        if agent is None:
            rows = self._rows("SELECT data FROM nodes ORDER BY created_seq")
        else:
            rows = self._rows("SELECT data FROM nodes WHERE agent = ? ORDER BY created_seq", (agent,))
        return [self._decode(r[0], "node") for r in rows]

    def finished(self) -> list[Node]:
        """Finished nodes in the order they finished: the order policies observed them."""
        rows = self._rows("SELECT data FROM nodes WHERE finished_seq IS NOT NULL ORDER BY finished_seq")
        return [self._decode(r[0], "node") for r in rows]

    def get(self, node_id: str) -> Node | None:
        rows = self._rows("SELECT data FROM nodes WHERE id = ?", (node_id,))
        return self._decode(rows[0][0], "node") if rows else None

    def events(self) -> list[tuple[int, str, str, dict]]:
        """(seq, node id, kind, node dict) of every event, oldest first."""
        rows = self._rows("SELECT seq, node_id, kind, payload FROM events ORDER BY seq")
        return [(s, n, k, self._decode(p, "event")) for s, n, k, p in rows]

    def __len__(self) -> int:
        return self._rows("SELECT COUNT(*) FROM nodes")[0][0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


LOCK_FILENAME = "writer.lock"




def _lock_exclusive(fd: int, tries: int = 10, wait_s: float = 0.01) -> None:
    """flock(LOCK_EX) without blocking, retried for ~0.1 s: `writer_pid`'s shared probe (the dashboard, `runs
    pause`) holds the lock for an instant, which must not refuse a starting writer. BlockingIOError when a
    writer really holds it."""
    for i in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if i == tries - 1:
                raise
            time.sleep(wait_s)


def writer_pid(run_dir: str | Path) -> int | None:
    """The pid of the process writing the run now (holding `writer.lock`), or None when no process does."""
    path = Path(run_dir) / LOCK_FILENAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            # a shared probe, released at once: it fails only while a writer holds the exclusive lock
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(holder) if holder.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

@contextlib.contextmanager
def writer_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run folder's writer lock, or raise UsageError when another process (or another open
    of the lock in this one) holds it. The holder's pid is written into the lock file for the message."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILENAME
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # a file in its place, a folder that cannot be written: the user's --out
        raise UsageError(f"cannot use {run_dir} as a run folder: {e.strerror or e}") from None
    try:
        try:
            _lock_exclusive(fd)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise UsageError(
                f"{run_dir} is being written by {who}: one run folder takes one writer; "
                f"wait for it to end (or stop it) and try again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
