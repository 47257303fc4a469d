"""A statement the database refuses is a bug: a 500 with its traceback logged, never the 503 outage page.
Only connection-level failures (server unreachable, connection lost, a lock not granted in time) are
503s. Runs on both databases: the drivers classify these errors differently (sqlite3 raises
OperationalError for a syntax error and for too many variables, psycopg for over 65,535 parameters)."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.exc import DBAPIError

from eventapp.errors_db import is_outage
from eventapp.extensions import db
from eventapp.models import Event
from tests.faults.support import app_for

# More than either database takes in one statement (SQLite: 32,766 variables; PostgreSQL protocol: 65,535).
TOO_MANY = 70_000


def _too_many_parameters():
    ids = list(range(TOO_MANY))
    dbapi_connection = db.session.connection().connection.dbapi_connection
    if isinstance(dbapi_connection, sqlite3.Connection):
        # Debian builds SQLite with a limit of 250,000; SQLite's own default is 32,766.
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
    db.session.execute(select(Event.id).where(Event.id.in_(bindparam("ids", expanding=True))), {"ids": ids})
    return "unreachable"


def _syntax_error():
    db.session.execute(text("SELEC 1"))
    return "unreachable"


def _check_violation():
    db.session.execute(text("CREATE TEMPORARY TABLE refused_check (n INTEGER CHECK (n > 0))"))
    db.session.execute(text("INSERT INTO refused_check (n) VALUES (-1)"))
    return "unreachable"


def _lock_wait():
    db.session.execute(text("SET LOCAL lock_timeout = '200ms'"))
    db.session.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
    return "unreachable"


@pytest.fixture
def refusing_app(database_url):
    app = app_for(database_url)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the handlers answer, nothing is raised
    for name, view in (("too_many", _too_many_parameters), ("syntax", _syntax_error),
                       ("check", _check_violation), ("lock", _lock_wait)):
        app.add_url_rule(f"/_test/{name}", endpoint=name, view_func=view)
        app.add_url_rule(f"/api/_test/{name}", endpoint=f"api_{name}", view_func=view)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("name", ["too_many", "syntax", "check"])
def test_a_refused_statement_is_a_500_with_a_logged_traceback(refusing_app, caplog, name):
    with caplog.at_level(logging.ERROR):
        response = refusing_app.test_client().get(f"/_test/{name}")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "エラーが発生しました" in html and "一時的にご利用いただけません" not in html
    assert "Retry-After" not in response.headers
    logged = [r for r in caplog.records if "not an outage" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR
    assert logged[0].exc_info and isinstance(logged[0].exc_info[1], DBAPIError)
    assert not any("database unavailable" in r.getMessage() for r in caplog.records)


def test_a_refused_statement_in_the_api_is_a_json_500(refusing_app):
    response = refusing_app.test_client().get("/api/_test/too_many")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "server_error"


def test_the_app_keeps_working_after_a_refused_statement(refusing_app):
    client = refusing_app.test_client()
    assert client.get("/_test/syntax").status_code == 500
    assert client.get("/healthz").status_code == 200


def test_an_unreachable_server_is_still_a_503(database_url, caplog):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite's outage (a held write lock) is tested in test_db_errors.py")
    # Nothing listens on port 1: connection refused, as while PostgreSQL is down.
    app = app_for("postgresql://eventapp@127.0.0.1:1/eventapp")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    with caplog.at_level(logging.WARNING):
        response = app.test_client().get("/")
        api = app.test_client().get("/api/v1/events")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert "ただいま一時的にご利用いただけません" in response.get_data(as_text=True)
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "unavailable"
    assert any("database unavailable" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_lock_not_granted_in_time_is_a_503(refusing_app, database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite: test_db_errors.py holds the write lock past the busy timeout")
    holder = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with holder.connect() as conn:
            conn.execute(text("LOCK TABLE events IN SHARE MODE"))  # held until this block ends
            response = refusing_app.test_client().get("/_test/lock")
            conn.rollback()
    finally:
        holder.dispose()
    assert response.status_code == 503
    assert "Retry-After" in response.headers


def test_the_classification_of_driver_errors():
    from sqlalchemy.exc import OperationalError, ProgrammingError

    def wrapped(cls, message, sqlstate=None):
        orig = Exception(message)
        orig.sqlstate = sqlstate
        return cls("SELECT …", {}, orig)

    assert is_outage(wrapped(OperationalError, "database is locked"))
    assert is_outage(wrapped(OperationalError, 'connection failed: connection to server at "10.0.0.5" failed: '
                                               "Connection refused"))
    assert is_outage(wrapped(OperationalError, "terminating connection due to administrator command", "57P01"))
    assert is_outage(wrapped(OperationalError, "sorry, too many clients already", "53300"))
    assert not is_outage(wrapped(OperationalError, "sending query and params failed: number of parameters "
                                                   "must be between 0 and 65535"))
    assert not is_outage(wrapped(OperationalError, "too many SQL variables"))
    assert not is_outage(wrapped(OperationalError, 'near "SELEC": syntax error'))
    assert not is_outage(wrapped(OperationalError, "canceling statement due to statement timeout", "57014"))
    assert not is_outage(wrapped(ProgrammingError, 'syntax error at or near "SELEC"', "42601"))
