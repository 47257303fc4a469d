"""Test fixtures: one app and schema per session (SQLite, or PostgreSQL via TEST_DATABASE_URL),
tables emptied after each test, small factories for events and registrations."""

from __future__ import annotations

import os
import re
import time as time_module
from datetime import UTC, datetime, time, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from eventapp import create_app
from eventapp.extensions import db
from eventapp.formatting import JST

TEST_SECRET = "test-secret-key-not-for-production"
# Flask-Limiter is one object per process: any app a test creates re-initialises its storage. In-process
# tests count in memory (test code shares its session with the requests it makes, and a counter written
# on another connection in between would break that session's SQLite snapshot); real servers started by
# tests/live_server.py use the database storage.
os.environ.setdefault("RATELIMIT_STORAGE_URI", "memory://")


def _database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return _database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def mail_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="session")
def app(database_url, mail_dir):
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_BACKEND": "file",
        "MAIL_FILE_DIR": str(mail_dir),
        "PUBLIC_BASE_URL": "http://testserver.local",
        # Many tests log in from 127.0.0.1 within a minute; the limit itself is tested with its own value.
        "LOGIN_RATE_LIMIT": "10000/minute",
        "RATELIMIT_STORAGE_URI": "memory://",  # see above; the database storage: tests/security/test_rate_limits.py
        "SIGNUP_RATE_LIMIT": "10000/minute",
        "TOKEN_RATE_LIMIT": "10000/minute",
        "FEED_RATE_LIMIT": "10000/minute",
        "MY_LINK_RATE_LIMIT": "10000/minute",
        "MY_LINK_IP_RATE_LIMIT": "10000/minute",
        "CHECKIN_RATE_LIMIT": "100000/minute",
    })
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        # The schema comes from the migrations, so they are exercised by every run.
        upgrade()
    return app


@pytest.fixture(autouse=True)
def _clean_database(request, app, mail_dir):
    yield
    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        for attempt in range(5):
            try:
                with db.engine.begin() as conn:
                    if db.engine.dialect.name == "postgresql":
                        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                    else:
                        for table in tables:
                            conn.execute(text(f"DELETE FROM {table}"))
                break
            except OperationalError:
                # A live test server may still be answering the browser's last request: TRUNCATE then
                # takes its table locks in another order than that request and PostgreSQL ends one of
                # the two as a deadlock. The request finishes on its own; clean up again.
                if attempt == 4:
                    raise
                time_module.sleep(0.5)
    for path in mail_dir.glob("*.eml"):
        path.unlink()


@pytest.fixture
def ctx(app):
    """An application context for calling services directly."""
    with app.app_context():
        yield
        db.session.rollback()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sent_mail(mail_dir):
    """Read the .eml files the file mail backend wrote, oldest first."""

    def read() -> list:
        files = sorted(mail_dir.glob("*.eml"))
        return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]

    return read


def jst(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=JST)


def future(days: int = 30, hour: int = 13) -> datetime:
    base = datetime.now(JST) + timedelta(days=days)
    return base.replace(hour=hour, minute=0, second=0, microsecond=0)


_slug_counter = iter(range(1, 10**6))


def make_event(**overrides):
    """Create and commit a published event (a fieldwork by default)."""
    from eventapp.services.events import create_event

    starts = overrides.pop("starts_at", future())
    data = {
        "slug": f"event-{next(_slug_counter)}", "kind": "fieldwork", "title": "岩手・花巻でブドウ収穫体験フィールドワーク",
        "status": "published", "starts_at": starts, "ends_at": starts + timedelta(hours=5), "capacity": 20,
        "venue_name": "かんたはうす", "venue_address": "岩手県花巻市", "fee_yen": 3000,
        "organiser_email": "enren@example.jp",
    }
    data.update(overrides)
    event = create_event(data)
    db.session.commit()
    return event


def make_checkin_event(**overrides):
    """A published event held tomorrow at 13:00 JST: inside its default check-in window (which opens at
    00:00 JST the day before), so the door may scan, and still open for sign-ups whatever the time of day
    (an event today at 13:00 refused every sign-up once the suite ran after 13:00 JST)."""
    overrides.setdefault("starts_at", future(1, hour=13))
    return make_event(**overrides)


_person_counter = iter(range(1, 10**6))


def person_input(**overrides) -> dict:
    n = next(_person_counter)
    data = {"name": f"岩手 花子{n}", "furigana": "いわて はなこ", "email": f"person{n}@example.com",
            "prefecture": "東京都", "iwate_relation": "origin"}
    data.update(overrides)
    return data


def make_registration(event, **overrides):
    from eventapp.services.registration import register

    answers = overrides.pop("answers", {})
    now = overrides.pop("now", None)
    result = register(event.id, person_input(**overrides), answers, consent=True, now=now)
    db.session.commit()
    return result.registration


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


__all__ = ["JST", "UTC", "csrf_token_from", "future", "jst", "make_checkin_event", "make_event", "make_registration",
           "person_input", "time"]
