"""Helpers for the fault tests: scratch databases of the run's kind, apps bound to them."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from eventapp import create_app
from eventapp.config import normalise_db_url
from tests.conftest import TEST_SECRET


@contextlib.contextmanager
def scratch_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database next to the session's one: a new SQLite file, or a new PostgreSQL database
    on the TEST_DATABASE_URL server (dropped afterwards)."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    name = f"eventapp_scratch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_db_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(normalise_db_url(server_url)).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def app_for(database_url: str, **config) -> Flask:
    return create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET, "SQLALCHEMY_DATABASE_URI": database_url,
                       "MAIL_BACKEND": "null", "PUBLIC_BASE_URL": "http://testserver.local", **config})


def migrated_app(database_url: str, **config) -> Flask:
    """An app on `database_url` with the schema created by the migrations."""
    from flask_migrate import upgrade

    app = app_for(database_url, **config)
    with app.app_context():
        upgrade()
    return app


def signup_body(n: int, prefix: str = "fault") -> dict:
    return {"name": f"障害 太郎{n}", "furigana": "しょうがい たろう", "email": f"{prefix}{n}@example.com",
            "consent_privacy": True}
