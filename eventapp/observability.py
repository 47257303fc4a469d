"""Request ids, structured request logs and the per-request metrics.

Every request gets an id: a sane incoming `X-Request-ID` (a proxy's or a client's, at most 64 of
[A-Za-z0-9._-]) or a new random one. It is answered in the `X-Request-ID` header, shown on error
pages and in API error bodies, and written in the request's log line, so a participant's "error
reference" leads to the line.

With LOG_FORMAT=json each request writes one JSON line to stderr (logger `eventapp.access`, which
gunicorn's error log collects), and the app's own log records are JSON lines too. The line holds the
route *rule* (`/r/<token>`), never the path: manage and ticket links carry secret tokens, and no
e-mail, name, query string or client address is logged. Who: the staff user's id, or the API token's.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request

from . import metrics

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
ACCESS_LOGGER = "eventapp.access"
# Metric labels take the method only from this set: any token is a valid HTTP method, and each new
# label value would be a new time series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id() -> str | None:
    """This request's id (made on first use), or None outside a request."""
    if not has_request_context():
        return None
    rid = g.get("request_id")
    if rid is None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(16)
        g.request_id = rid
    return rid


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the request id, any `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        else:
            line["message"] = record.getMessage()
            if rid := request_id():
                line["request_id"] = rid
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _json_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.eventapp_json = True  # recognised when another app in the process configures logging again
    return handler


def _configure_json_logging(app: Flask) -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO)
    access.propagate = False  # one line, not also through the root logger's text handler
    if not any(getattr(h, "eventapp_json", False) for h in access.handlers):
        access.addHandler(_json_handler())
    from flask.logging import default_handler
    app.logger.removeHandler(default_handler)
    if not any(getattr(h, "eventapp_json", False) for h in app.logger.handlers):
        app.logger.addHandler(_json_handler())


def _who() -> dict:
    """Ids only, and only of identities this request already loaded (no query is added for the log)."""
    who = {}
    if (token_id := g.get("api_token_id")) is not None:
        who["api_token_id"] = token_id
    user = g.get("api_user") or g.get("_login_user")  # Flask-Login keeps the loaded user there
    if user is not None and getattr(user, "is_authenticated", False):
        who["user_id"] = user.id
    return who


def init_app(app: Flask) -> None:
    json_logs = app.config.get("LOG_FORMAT") == "json"
    if json_logs:
        _configure_json_logging(app)
    access_log = logging.getLogger(ACCESS_LOGGER)

    def _start() -> None:
        g.started = time.perf_counter()
        request_id()

    # First of all hooks: a later hook that fails still has an id and a start time.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = request_id()
        response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        rule = request.url_rule
        endpoint = request.endpoint or "unmatched"  # a 404 has no endpoint; paths are not labels
        method = request.method if request.method in METHODS else "other"
        metrics.observe_request(endpoint, method, response.status_code, seconds)
        if json_logs:
            access_log.info("request", extra={"fields": {
                "request_id": rid, "method": method, "route": rule.rule if rule else None,
                "endpoint": endpoint, "status": response.status_code,
                "duration_ms": round(seconds * 1000, 2), **_who()}})
        return response
