"""PostgreSQL: a pooled connection that died while it sat idle (server restart, a firewall's or the
server's idle timeout) is pinged and replaced before a request uses it; one used a moment ago is not
pinged (database.PING_AFTER_IDLE_S)."""

from __future__ import annotations

import os
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from eventapp import database
from eventapp.extensions import db

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="PostgreSQL only")


def _kill_idle_pooled_connections(url: str) -> int:
    """Terminate every idle connection to the test database (the pool's), from a connection of our own."""
    with psycopg.connect(url, autocommit=True) as killer:
        killed = killer.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'").fetchone()[0]
    time.sleep(0.2)  # the backends exit
    return killed


def _backend_pid() -> int:
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    db.session.remove()  # the connection goes back to the pool, idle
    return pid


def test_a_connection_killed_while_idle_is_replaced_before_use(app, database_url, monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 0.05)
    with app.app_context():
        old_pid = _backend_pid()
        assert _kill_idle_pooled_connections(database_url) >= 1
        assert _backend_pid() != old_pid  # the request's statement ran on a new connection


def test_without_the_idle_ping_the_dead_connection_reaches_the_request(app, database_url, monkeypatch):
    """The check above can fail: a connection used within PING_AFTER_IDLE_S is not pinged."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 3600)
    with app.app_context():
        _backend_pid()
        assert _kill_idle_pooled_connections(database_url) >= 1
        with pytest.raises(OperationalError):
            db.session.execute(text("SELECT 1")).scalar_one()
        db.session.rollback()
        # The disconnect made SQLAlchemy discard the pool's connections: the next request is fine.
        assert db.session.execute(text("SELECT 1")).scalar_one() == 1
        db.session.remove()
