"""Staff authentication: the Flask-Login user loader, server-side session validity and password helpers.

A staff session carries, besides Flask-Login's `_user_id`, the user's `session_version` at login and
when the session started and was last used. The loader refuses the session when the version no longer
matches (logout, password/role change, deactivation, "logout everywhere" bump it), after
STAFF_IDLE_TIMEOUT seconds without a request, or STAFF_SESSION_LIFETIME seconds after login. Only
these staff keys are touched: other session keys (the participants' `my_…`) are left alone.
"""

from __future__ import annotations

import secrets
import time
from functools import cache

from flask import Blueprint, current_app, session
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db, login_manager
from ..models import User

bp = Blueprint("auth", __name__, url_prefix="/staff")

PASSWORD_METHOD = "scrypt"
# Session keys of the staff login (Flask-Login's own and ours); nothing else is removed with them.
FLASK_LOGIN_KEYS = ("_user_id", "_fresh", "_id", "_remember", "_remember_seconds")
VERSION_KEY, STARTED_KEY, SEEN_KEY = "_staff_sv", "_staff_started", "_staff_seen"
# Password accepted, two-factor code still to come: {"uid", "sv", "at"}.
PENDING_KEY = "_staff_2fa"
STAFF_KEYS = (*FLASK_LOGIN_KEYS, VERSION_KEY, STARTED_KEY, SEEN_KEY, PENDING_KEY)
# The last-use stamp is rewritten at most this often (each rewrite sends a new cookie).
SEEN_RESOLUTION_S = 60


def clock() -> float:
    """Seconds since the epoch; the tests replace it to move time forward."""
    return time.time()


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not _session_valid(user):
        end_staff_session()
        return None
    return user


def _session_valid(user: User) -> bool:
    now = clock()
    config = current_app.config
    if session.get(VERSION_KEY) != user.session_version:
        return False
    started, seen = session.get(STARTED_KEY), session.get(SEEN_KEY)
    if not isinstance(started, int | float) or not isinstance(seen, int | float):
        return False
    if now - seen > config["STAFF_IDLE_TIMEOUT"] or now - started > config["STAFF_SESSION_LIFETIME"]:
        return False
    if now - seen >= SEEN_RESOLUTION_S:
        session[SEEN_KEY] = int(now)
    return True


def start_staff_session(user: User) -> None:
    """Called right after `login_user`: the version and times the loader checks from now on."""
    now = int(clock())
    session[VERSION_KEY] = user.session_version
    session[STARTED_KEY] = now
    session[SEEN_KEY] = now


def keep_staff_session(user: User) -> None:
    """After a change that bumped this user's version (own password change): this session stays in,
    every other one is out."""
    session[VERSION_KEY] = user.session_version


def end_staff_session() -> None:
    for key in STAFF_KEYS:
        session.pop(key, None)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


@cache
def _dummy_hash() -> str:
    # Same method and parameters as real hashes, so checking against it costs the same time.
    return hash_password(secrets.token_urlsafe(16))


def verify_password(user: User | None, password: str) -> bool:
    """Check a password; for no user (or one without a password) a dummy hash is checked instead, so an
    unknown address answers as slowly as a known one (no account enumeration by timing)."""
    if user is None or not user.password_hash:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)


from . import views  # noqa: E402,F401
