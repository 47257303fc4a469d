"""Engine set-up: SQLite gets WAL, foreign keys, a busy timeout and `BEGIN IMMEDIATE` for writes.

On SQLite a deferred transaction that reads and then writes can fail with "database is locked"
when another connection wrote in between; taking the write lock at BEGIN avoids that. Requests
with an unsafe method (POST, PUT, PATCH, DELETE) and CLI commands that write set the write intent.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from flask import Flask
from sqlalchemy import Table, TextClause, bindparam, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError

from .extensions import db

_write_intent: ContextVar[bool] = ContextVar("write_intent", default=False)


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


@contextlib.contextmanager
def write_intent() -> Iterator[None]:
    """Transactions started inside this block take SQLite's write lock at BEGIN."""
    token = _write_intent.set(True)
    try:
        yield
    finally:
        _write_intent.reset(token)


def set_write_intent(value: bool) -> None:
    _write_intent.set(value)


def try_cluster_lock(name: str, session=None) -> bool:
    """Take the cluster-wide lock `name` until the current transaction ends; False if another holds it.

    For jobs that must run once per cluster however many app servers run them from cron
    (send-surveys, purge-expired): on PostgreSQL a transaction-level advisory lock, released by the
    commit or rollback (also when the process dies). On SQLite there is one machine, and its write
    lock (BEGIN IMMEDIATE under write_intent) already runs such jobs one after the other.
    """
    session = session or db.session
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = int.from_bytes(hashlib.sha256(f"eventapp:{name}".encode()).digest()[:8], "big", signed=True)
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar())


@contextlib.contextmanager
def cluster_lock(name: str) -> Iterator[bool]:
    """Hold the cluster-wide lock `name` for the whole block, across the block's commits (a job that
    commits in batches, such as purge-expired); yields False if another process holds it.

    On PostgreSQL a session-level advisory lock on a connection of its own, released at the end of the
    block or when the process dies (its connection closes). SQLite: one machine, always True.
    """
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(f"eventapp:{name}".encode()).digest()[:8], "big", signed=True)
    with db.engine.connect() as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def engine_options(uri: str, busy_timeout_s: float) -> dict:
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": busy_timeout_s, "check_same_thread": False}}
    # No `pool_pre_ping`: configure_engine pings only connections that sat idle (see _ping_if_idle).
    return {"pool_size": 5, "max_overflow": 10}


# A pooled connection unused for this long is pinged before use; one used more recently is not.
PING_AFTER_IDLE_S = 1.0


def configure_engine(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine, app.config["SQLITE_BUSY_TIMEOUT_S"])
        else:
            _ping_if_idle(engine)


def _ping_if_idle(engine: Engine) -> None:
    """Pre-ping for connections that sat idle in the pool: after a PostgreSQL restart (or a
    connection dropped by a firewall or an idle timeout) the pool replaces dead connections by
    itself, and the request never sees them.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one more round trip per request, a tenth
    of a sign-up's statements. Under load connections go back to work within milliseconds, and should
    the server go away between two uses, the failing statement's disconnect error makes SQLAlchemy
    discard every pooled connection at once (that request gets the 503 page, as it would during the
    outage anyway)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out another (or opens a new one).
            raise DisconnectionError("pooled connection is gone") from exc


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = _write_intent.get()
        if immediate:
            begin_immediate(conn, busy_timeout_s)
        else:
            conn.exec_driver_sql("BEGIN")
        conn.info["write_locked"] = immediate  # read by capacity.lock_event


# Waits between attempts to take SQLite's write lock: short, because transactions here last
# milliseconds. SQLite's own busy handler sleeps 1, 2, 5, 10, 15 … ms between its attempts, so a
# lock freed after 4 ms would keep the waiter asleep until 8 ms.
_LOCK_RETRY_S = (0.0002, 0.0005, 0.001, 0.002)


def begin_immediate(conn: Connection, busy_timeout_s: float) -> None:
    """BEGIN IMMEDIATE on a SQLite connection, waiting for the write lock in short steps (up to
    `busy_timeout_s`). Gives up with SQLAlchemy's OperationalError ("database is locked", a 503)."""
    conn.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + busy_timeout_s
        attempt = 0
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                message = str(exc.orig)
                if "locked" not in message and "busy" not in message or time.monotonic() >= deadline:
                    raise
            time.sleep(_LOCK_RETRY_S[min(attempt, len(_LOCK_RETRY_S) - 1)])
            attempt += 1
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")


def holds_sqlite_write_lock() -> bool:
    """Whether the session's transaction began with BEGIN IMMEDIATE: everything it reads is current
    and no other connection can write until it ends."""
    return is_sqlite() and bool(db.session.connection().info.get("write_locked"))


def insert_or_skip(table: Table, *, conflict: str = "", returning: Sequence[str] | None = None) -> TextClause:
    """`INSERT … ON CONFLICT [(conflict)] DO NOTHING RETURNING …` for `table`, the same SQL on SQLite
    (3.35+) and PostgreSQL, typed like the table's columns.

    Plain SQL because SQLAlchemy does not cache the compiled form of the dialects' own `insert()`
    with `on_conflict_do_nothing()`: every execution compiled it anew, which cost a hot path more
    than the rest of its request. The caller passes every column but the primary key (`column_values`
    fills in the model's Python defaults); a refused row returns nothing.
    """
    columns = [column for column in table.c if not column.primary_key]
    names = ", ".join(f'"{column.name}"' for column in columns)
    values = ", ".join(f":{column.name}" for column in columns)
    target = f' ("{conflict}")' if conflict else ""
    returned = list(returning or [column.name for column in table.c])
    returned_sql = ", ".join(f'"{name}"' for name in returned)
    statement = text(f'INSERT INTO "{table.name}" ({names}) VALUES ({values}) '
                     f"ON CONFLICT{target} DO NOTHING RETURNING {returned_sql}")
    statement = statement.bindparams(*(bindparam(column.name, type_=column.type) for column in columns))
    return statement.columns(*(table.c[name] for name in returned))


def column_values(table: Table, values: dict) -> dict:
    """`values` plus every other non-key column's Python default (what an ORM insert would add)."""
    complete = dict(values)
    for column in table.c:
        if column.primary_key or column.name in complete:
            continue
        default = column.default
        if default is None:
            complete[column.name] = None
        elif default.is_callable:
            complete[column.name] = default.arg(None)
        else:
            complete[column.name] = default.arg
    return complete
