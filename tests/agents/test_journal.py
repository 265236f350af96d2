"""The journal: idempotent appends, the materialised view, finish order, WAL concurrent reads."""

import sqlite3
import threading

import pytest

from aira.agents.journal import Journal
from aira.agents.types import Node, Result, Status


def _node(i: int, agent: str = "greedy:offline#0", **kw) -> Node:
    return Node(id=f"n{i:04d}", agent=agent, operator="draft", proposal="AM" * 8, **kw)


def _event_count(j: Journal) -> int:
    return len(j.events())


def test_lifecycle_and_replayed_writes_change_nothing(tmp_path):
    with Journal(tmp_path) as j:
        n = _node(1)
        assert j.add(n)
        n.status = Status.RUNNING
        assert j.update(n)
        n.apply(Result(status=Status.OK, metric=0.75, selection_metric=0.7, seconds=1.5))
        assert j.update(n)
        assert [k for _, _, k, _ in j.events()] == ["created", "started", "finished"]

        # Replays (a retry, a resume re-journaling the same node) are no-ops, even with other content.
        before = j.events()
        n.metric = 123.0
        assert not j.add(n) and not j.update(n)
        n.status = Status.RUNNING
        assert not j.update(n)
        assert j.events() == before
        got = j.get("n0001")
        assert got.status == Status.OK and got.metric == 0.75 and got.selection_metric == 0.7
        assert got.seconds == 1.5


def test_node_born_invalid_gets_created_and_finished(tmp_path):
    with Journal(tmp_path / "journal.sqlite") as j:
        n = _node(1, status=Status.INVALID, error="bad letter")
        j.add(n)
        assert [k for _, _, k, _ in j.events()] == ["created", "finished"]
        assert j.get(n.id).error == "bad letter"
        assert j.get("missing") is None


def test_views_filter_order_and_rebuild(tmp_path):
    with Journal(tmp_path) as j:
        for i, agent in enumerate(["a#0", "b#1", "a#0"], 1):
            n = _node(i, agent=agent)
            n.status = Status.RUNNING
            j.add(n)
        # Finish in reverse creation order: finished() follows finish order, nodes() creation order.
        for i, metric in ((3, 0.3), (1, 0.1)):
            n = j.get(f"n{i:04d}")
            n.apply(Result(status=Status.OK, metric=metric))
            j.update(n)
        assert [n.id for n in j.nodes()] == ["n0001", "n0002", "n0003"]
        assert [n.id for n in j.nodes(agent="a#0")] == ["n0001", "n0003"]
        assert [n.id for n in j.finished()] == ["n0003", "n0001"]
        assert j.get("n0002").status == Status.RUNNING

        before = [n.to_dict() for n in j.nodes()]
        j.rebuild()
        assert [n.to_dict() for n in j.nodes()] == before
        assert [n.id for n in j.finished()] == ["n0003", "n0001"]
        j.set_meta("elapsed_s", 12.5)
        assert j.meta("elapsed_s") == 12.5 and j.meta("nothing", 7) == 7
        assert len(j) == 3


def test_readonly_reader_sees_writes_while_a_writer_is_busy(tmp_path):
    writer = Journal(tmp_path)
    assert writer._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    writer.add(_node(0))
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def read():
        try:
            with Journal(tmp_path, readonly=True) as r:
                while not done.is_set():
                    seen.append(len(r.nodes()))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=read)
    t.start()
    for i in range(1, 150):
        n = _node(i)
        writer.add(n)
        n.apply(Result(status=Status.OK, metric=float(i)))
        writer.update(n)
    done.set()
    t.join()
    writer.close()
    assert not errors
    assert seen and seen == sorted(seen)  # a reader only ever sees whole, growing states
    with Journal(tmp_path, readonly=True) as r:
        assert len(r.nodes()) == 150
        with pytest.raises(PermissionError):
            r.update(_node(999))
        with pytest.raises(sqlite3.OperationalError):
            r._db.execute("DELETE FROM events")


def test_readonly_open_of_missing_journal(tmp_path):
    with pytest.raises(FileNotFoundError):
        Journal(tmp_path / "nope", readonly=True)


def test_a_writer_is_not_refused_by_a_readers_probe(tmp_path, monkeypatch):
    # `writer_pid` (the dashboard, `runs pause`) takes a shared lock for an instant; a writer starting in that
    # instant retries instead of being refused. The probe is released at the writer's first wait.
    import fcntl
    import os

    import aira.agents.journal as journal

    (tmp_path / journal.LOCK_FILENAME).write_text("")
    probe = os.open(tmp_path / journal.LOCK_FILENAME, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    waits = []

    def release(seconds):
        waits.append(seconds)
        fcntl.flock(probe, fcntl.LOCK_UN)

    monkeypatch.setattr(journal.time, "sleep", release)
    try:
        with journal.writer_lock(tmp_path):
            assert journal.writer_pid(tmp_path) == os.getpid()
    finally:
        os.close(probe)
    assert len(waits) == 1
    assert journal.writer_pid(tmp_path) is None
