"""SQLite's write lock is taken at BEGIN IMMEDIATE, waiting for it in short steps (database.begin_immediate)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError

from eventapp.database import begin_immediate


@pytest.fixture
def database_file(tmp_path):
    path = tmp_path / "lock.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (n INTEGER)")
    return path


@pytest.fixture
def engine(database_file):
    engine = create_engine(f"sqlite:///{database_file}", connect_args={"timeout": 5})

    @event.listens_for(engine, "connect")
    def _manual_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    yield engine
    engine.dispose()


def _holder(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def test_waits_for_the_lock_and_then_holds_it(database_file, engine):
    holder = _holder(database_file)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.05, holder.execute, args=("COMMIT",))
    release.start()
    with engine.connect() as conn:
        begin_immediate(conn, busy_timeout_s=5)  # returns once the holder has committed
        release.join()
        assert conn.connection.dbapi_connection.in_transaction
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        conn.exec_driver_sql("COMMIT")
        assert [n for (n,) in conn.exec_driver_sql("SELECT n FROM t ORDER BY n")] == [1, 2]
        # The connection's own busy timeout is back for everything else.
        assert conn.exec_driver_sql("PRAGMA busy_timeout").one() == (5000,)


def test_gives_up_after_the_busy_timeout_with_sqlalchemys_error(database_file, engine):
    holder = _holder(database_file)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with engine.connect() as conn:
            with pytest.raises(OperationalError, match="locked"):
                begin_immediate(conn, busy_timeout_s=0.05)
            assert not conn.connection.dbapi_connection.in_transaction
            assert conn.exec_driver_sql("PRAGMA busy_timeout").one() == (50,)
    finally:
        holder.execute("ROLLBACK")
