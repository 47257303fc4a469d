"""Which database errors become the 503 "try again" answer, and which stay 500s (in-process)."""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from eventapp.extensions import db
from tests.factories import make_event
from tests.faults.support import migrated_app, signup_body

# Scratch SQLite apps whatever the run's database: once is enough (PostgreSQL: test_db_outage.py).
pytestmark = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="runs in the SQLite run")


@pytest.fixture
def scratch_app(tmp_path):
    app = migrated_app(f"sqlite:///{tmp_path / 'errors.sqlite3'}", SQLITE_BUSY_TIMEOUT_S=0.2,
                       SIGNUP_RATE_LIMIT="1000000/minute")

    def lost_connection():
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    def broken_invariant():
        raise IntegrityError("INSERT …", {}, Exception("UNIQUE constraint failed"))

    app.add_url_rule("/_test/lost", view_func=lost_connection)
    app.add_url_rule("/api/_test/lost", endpoint="api_lost", view_func=lost_connection)
    app.add_url_rule("/_test/integrity", view_func=broken_invariant)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_lost_connection_is_a_503_page_in_japanese_with_retry_after(scratch_app):
    response = scratch_app.test_client().get("/_test/lost")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    html = response.get_data(as_text=True)
    assert "ただいま一時的にご利用いただけません" in html and "server closed" not in html


def test_lost_connection_in_the_api_is_json_unavailable(scratch_app):
    response = scratch_app.test_client().get("/api/_test/lost")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    assert "Retry-After" in response.headers


def test_other_database_errors_stay_500s(scratch_app):
    scratch_app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the 500 page, not a raise
    response = scratch_app.test_client().get("/_test/integrity")
    assert response.status_code == 500
    assert "UNIQUE" not in response.get_data(as_text=True)


def test_sqlite_locked_for_longer_than_the_busy_timeout_is_a_503(scratch_app, tmp_path):
    with scratch_app.app_context():
        event_id = make_event(capacity=5).id
    # Someone else (a long backup restore, a stuck script) holds the write lock.
    holder = sqlite3.connect(tmp_path / "errors.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = scratch_app.test_client().post(f"/api/v1/events/{event_id}/registrations",
                                                  json=signup_body(1, "locked"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "unavailable"
    again = scratch_app.test_client().post(f"/api/v1/events/{event_id}/registrations",
                                           json=signup_body(2, "locked"))
    assert again.status_code == 201
