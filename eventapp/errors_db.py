"""Database outages (PostgreSQL restarting, SQLite locked for too long) answer 503 with Retry-After.

A clear "try again shortly" page instead of a traceback; the connection pool replaces the dead
connections once the server is back (see database._ping_if_idle), so the app recovers without a restart.
"""

from __future__ import annotations

import contextlib

from flask import Flask, render_template, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .extensions import db

RETRY_AFTER_S = 10
TITLE = "ただいま一時的にご利用いただけません"
MESSAGE = ("システムの保守または混雑のため、一時的に処理できませんでした。お手数ですが、"
           "少し時間をおいてからもう一度お試しください。送信した内容が保存されていない場合があります。")


def is_outage(exc: BaseException) -> bool:
    """Connection-level failures only; constraint violations and bad SQL stay 500s (they are bugs)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def register(app: Flask) -> None:
    @app.errorhandler(DBAPIError)
    def _database_unavailable(exc: DBAPIError):
        if not is_outage(exc):
            raise exc  # Flask's 500 handling: logged with its traceback, generic error page
        with contextlib.suppress(DBAPIError):  # the connection is already gone; the pool discards it
            db.session.rollback()
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
