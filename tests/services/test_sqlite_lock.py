"""SQLite's write lock is taken at BEGIN IMMEDIATE, waiting for it in short steps (database.begin_immediate)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from eventapp.database import begin_immediate


@pytest.fixture
def database_file(tmp_path):
    path = tmp_path / "lock.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (n INTEGER)")
    return path


def _connect(path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def test_waits_for_the_lock_and_then_holds_it(database_file):
    holder, waiter = _connect(database_file), _connect(database_file)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.05, holder.execute, args=("COMMIT",))
    release.start()
    begin_immediate(waiter, busy_timeout_s=5)  # returns once the holder has committed
    release.join()
    assert waiter.in_transaction
    waiter.execute("INSERT INTO t VALUES (2)")
    waiter.execute("COMMIT")
    assert [n for (n,) in waiter.execute("SELECT n FROM t ORDER BY n")] == [1, 2]
    # The connection's own busy timeout is back for everything else.
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (5000,)


def test_gives_up_after_the_busy_timeout(database_file):
    holder, waiter = _connect(database_file), _connect(database_file)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(waiter, busy_timeout_s=0.05)
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (50,)
    holder.execute("ROLLBACK")
