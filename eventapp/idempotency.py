"""Retry-safe sign-up: a request that carries an idempotency key gets the answer its first attempt got.

A client whose sign-up was committed but whose response was lost (a worker killed, a dropped mobile
connection) retries; without this it got 409 "already registered" and never saw its manage link.
The API takes an `Idempotency-Key` header (semantics as pretix's IdempotencyMiddleware and the IETF
draft); the HTML sign-up form carries a hidden one-time key.

The layer wraps a view (`api_view` / `form_view`). The view calls `remember(...)` with what it answers
just before its commit, so the stored response is written in the same transaction as the
registration: it exists exactly when the registration does. Then:

- a retry with the same key and the same request gets the stored status code and body (and
  `Idempotent-Replayed: true`), whatever happened since;
- the same key with a different request is refused: 422 `idempotency_key_reused`;
- a duplicate that runs while the first attempt is still open waits for it (the event lock, or the
  unique index on the key) and then gets its stored answer;
- only successful answers are stored: a refused request (validation, full event) may be retried with
  the same key and is decided anew;
- keys are kept for 24 hours: expired ones are ignored at once and deleted by `flask purge-expired`.

Keys are scoped per view and its arguments (the event) and, in the API, per client (bearer token or
anonymous): a key is a secret of whoever made it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, Response, current_app, g, render_template, request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import IdempotencyKey
from .models.base import utcnow
from .models.idempotency import KEY_MAX
from .services.errors import DomainError

HEADER = "Idempotency-Key"
FORM_FIELD = "idempotency_key"
TTL = timedelta(hours=24)
# Printable ASCII, as header values are; UUIDs and token_urlsafe() keys fit easily.
KEY_RE = re.compile(rf"^[\x21-\x7e]{{1,{KEY_MAX}}}$")
OPENAPI_HEADER = {
    "in": "header", "name": HEADER, "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": KEY_MAX, "pattern": "^[\\x21-\\x7e]+$"},
    "description": "任意。再送しても二重登録にならないキー(例: UUID)。同じキーの再送には最初の応答がそのまま返り"
                   "(`Idempotent-Replayed: true`)、別内容の再送は 422 `idempotency_key_reused`。24時間有効。",
}
REUSED_MESSAGE = "この Idempotency-Key は別の内容のリクエストに使われています。新しいキーで送信してください。"


@dataclass
class _Pending:
    scope: str
    key: str
    request_hash: str
    build: Callable[..., tuple[int, str, dict]]  # what the view answers → (status, body, headers)


def valid_key(value: str | None) -> bool:
    return bool(value) and bool(KEY_RE.match(value))


def new_form_key() -> str:
    """The hidden field's value: the posted key again when the form is shown with errors, else a new one."""
    posted = request.form.get(FORM_FIELD) if request.method == "POST" else None
    return posted if valid_key(posted) else secrets.token_urlsafe(24)


def _scope(kind: str, client: str) -> str:
    arguments = json.dumps(request.view_args or {}, sort_keys=True, default=str)
    return f"{kind}:{request.endpoint}:{arguments}:{client}"[:200]


def _api_client() -> str:
    auth = request.headers.get("Authorization", "")
    return "bearer:" + hashlib.sha256(auth.encode()).hexdigest()[:32] if auth else "anonymous"


def _fingerprint(body: object) -> str:
    canonical = json.dumps([request.method, request.path, body], sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(scope: str, key: str, now: datetime | None = None) -> IdempotencyKey | None:
    return db.session.execute(select(IdempotencyKey).where(
        IdempotencyKey.scope == scope, IdempotencyKey.key == key,
        IdempotencyKey.expires_at > (now or utcnow()))).scalar_one_or_none()


def remember(*answer) -> None:
    """Store what the view is about to answer, in the view's transaction (call it right before the commit).
    Does nothing for a request without a key. API views pass their response body (before the schema
    dumps it), form views the URL they redirect to."""
    pending: _Pending | None = g.get("idempotency")
    if pending is None:
        return
    status, body, headers = pending.build(*answer)
    now = utcnow()
    # An expired entry with the same key may still be there (purged daily): the key is free again.
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.scope == pending.scope,
                                                    IdempotencyKey.key == pending.key,
                                                    IdempotencyKey.expires_at <= now))
    db.session.add(IdempotencyKey(scope=pending.scope, key=pending.key, request_hash=pending.request_hash,
                                  status_code=status, response_body=body, response_headers=headers,
                                  created_at=now, expires_at=now + TTL))


def _run(view: Callable, args, kwargs, pending: _Pending, replay: Callable[[IdempotencyKey], Response]):
    stored = _stored(pending.scope, pending.key)
    if stored is not None:
        db.session.rollback()  # a read only
        return replay(stored)
    g.idempotency = pending
    try:
        return view(*args, **kwargs)
    except (DomainError, IntegrityError):
        # A duplicate of an attempt that committed while this one waited for its lock (the person is
        # already registered, or the key's unique index): answer what that attempt answered.
        db.session.rollback()
        stored = _stored(pending.scope, pending.key)
        if stored is None:
            raise
        db.session.rollback()
        return replay(stored)
    finally:
        g.pop("idempotency", None)


def _replayed(stored: IdempotencyKey) -> Response:
    response = current_app.response_class(stored.response_body, status=stored.status_code,
                                          headers=stored.response_headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def api_view(schema: type, status: int) -> Callable:
    """For a flask-smorest view answering `status` with `schema` (put it right above the function)."""

    def build(body: dict) -> tuple[int, str, dict]:
        # The bytes flask-smorest sends: the schema's dump through the app's JSON provider.
        response = current_app.json.response(schema().dump(body))
        return status, response.get_data(as_text=True), {"Content-Type": response.content_type}

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return view(*args, **kwargs)
            from .api.errors import error_response
            if not valid_key(key):
                return error_response(400, "invalid_idempotency_key",
                                      f"Idempotency-Key は {KEY_MAX} 文字以内の半角英数字・記号で指定してください。")
            pending = _Pending(_scope("api", _api_client()), key, _fingerprint(request.get_json(silent=True)),
                               build)

            def replay(stored: IdempotencyKey) -> Response:
                if stored.request_hash != pending.request_hash:
                    return error_response(422, "idempotency_key_reused", REUSED_MESSAGE)
                return _replayed(stored)

            return _run(view, args, kwargs, pending, replay)

        return wrapped

    return decorator


def form_view(view: Callable) -> Callable:
    """For an HTML form view whose success is a redirect; the form carries the hidden FORM_FIELD."""

    def build(location: str) -> tuple[int, str, dict]:
        return 303, "", {"Location": location}

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        key = request.form.get(FORM_FIELD) if request.method == "POST" else None
        if not valid_key(key):  # no key, or a hostile one: an ordinary post
            return view(*args, **kwargs)
        fields = sorted((k, v) for k, v in request.form.items(multi=True) if k not in (FORM_FIELD, "csrf_token"))
        pending = _Pending(_scope("form", "browser"), key, _fingerprint(fields), build)

        def replay(stored: IdempotencyKey) -> Response:
            if stored.request_hash != pending.request_hash:
                return Response(render_template("errors/error.html", status=422, title="送信内容が変わっています",
                                                message="同じ申込フォームが別の内容で再送信されました。"
                                                        "ページを開き直してからお申し込みください。"), status=422)
            return _replayed(stored)

        response = current_app.make_response(_run(view, args, kwargs, pending, replay))
        if response.status_code >= 400 and "Idempotent-Replayed" not in response.headers:
            # The view shows its own errors (also "already registered" for a double-clicked submit that
            # waited for the first one's lock): the first one's answer, if it stored one, is the better one.
            db.session.rollback()
            stored = _stored(pending.scope, pending.key)
            db.session.rollback()
            if stored is not None:
                return replay(stored)
        return response

    return wrapped


def purge_expired(now: datetime | None = None) -> int:
    """Delete keys older than their 24 hours (from `flask purge-expired`); returns how many."""
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow())))
    return result.rowcount or 0


def init_app(app: Flask) -> None:
    app.jinja_env.globals["idempotency_key"] = new_form_key
