"""Database outages (PostgreSQL restarting, SQLite locked for too long) answer 503 with Retry-After.

A clear "try again shortly" page instead of a traceback; the connection pool replaces the dead
connections once the server is back (see database._ping_if_idle), so the app recovers without a restart.

Every other database error (a statement the server refuses: too many parameters, a syntax error, a
constraint violation that escaped a service) is a bug: a 500 with its traceback in the log, never the
503 page, which would hide it as an outage.
"""

from __future__ import annotations

import contextlib

from flask import Flask, render_template, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import InternalServerError

from .extensions import db

RETRY_AFTER_S = 10
TITLE = "ただいま一時的にご利用いただけません"
MESSAGE = ("システムの保守または混雑のため、一時的に処理できませんでした。お手数ですが、"
           "少し時間をおいてからもう一度お試しください。送信した内容が保存されていない場合があります。")

# PostgreSQL SQLSTATEs of an unreachable or overloaded server: class 08 connection exception, 53
# insufficient resources (too many connections, disk full), 58 system error (I/O), 57P01–57P03 the server
# shutting down / starting up, 55P03 a lock wait timeout (the counterpart of SQLite's "database is locked").
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "58")
_OUTAGE_SQLSTATES = {"57P01", "57P02", "57P03", "55P03"}
# Errors raised by the drivers themselves carry no SQLSTATE: known connection-level messages (libpq,
# psycopg, sqlite3). "sending query and params failed: number of parameters …" is deliberately absent.
_OUTAGE_MESSAGES = (
    "database is locked", "database table is locked", "unable to open database file", "disk i/o error",
    "connection failed", "connection refused", "connection is closed", "connection is lost",
    "connection not open", "closed the connection", "terminating connection", "could not receive data",
    "could not send data", "could not connect", "the database system is", "no connection to the server",
    "connection timeout", "timeout expired", "consuming input failed", "server conn crashed",
)


def is_outage(exc: BaseException) -> bool:
    """Connection-level failures only: the driver saw the connection die (SQLAlchemy's disconnect flag),
    the server could not be reached or is shutting down, or a lock was not granted in time. A statement
    the server refuses is a bug and stays a 500, whatever DBAPI class the driver gives it (sqlite3 raises
    OperationalError for a syntax error and for "too many SQL variables", psycopg for over 65,535
    parameters)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES or sqlstate in _OUTAGE_SQLSTATES
    message = str(exc.orig).lower()
    return any(fragment in message for fragment in _OUTAGE_MESSAGES)


def register(app: Flask) -> None:
    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        with contextlib.suppress(DBAPIError):  # the connection may be gone already; the pool discards it
            db.session.rollback()
        if not is_outage(exc):
            propagate = app.config["PROPAGATE_EXCEPTIONS"]
            if propagate or (propagate is None and (app.testing or app.debug)):
                raise exc  # tests and debug: the error itself, as Flask does for any other bug
            # A code error: the traceback at ERROR level (what the log alerting watches), then the 500 page.
            app.logger.exception("database error (%s, not an outage): %s %s", type(exc.orig).__name__,
                                 request.method, request.path)
            return app.handle_http_exception(InternalServerError(original_exception=exc))
        # One line, no traceback: an outage is an operational event, not a code error.
        app.logger.warning("database unavailable (%s): %s %s", type(exc.orig).__name__, request.method,
                           request.path)
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        if request.path.startswith("/api/"):
            from .api.errors import error_response
            return error_response(503, "unavailable", "データベースに接続できません。しばらくしてからお試しください。",
                                  headers=headers)
        # errors/error.html reads nothing from the database, so it renders during the outage.
        return render_template("errors/error.html", status=503, title=TITLE, message=MESSAGE), 503, headers
