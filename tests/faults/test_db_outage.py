"""PostgreSQL restarted under a running app: 503 pages (Japanese HTML, JSON `unavailable`) during the
outage, no tracebacks, and the app recovers by itself when the server is back (the pool discards
connections after a disconnect error and pings idle ones: eventapp/database.py)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import OutboxMessage
from tests.conftest import TEST_SECRET
from tests.factories import make_event
from tests.faults.support import OwnPostgres, migrated_app, postgres_binaries_available, signup_body
from tests.live_server import server_errors, start_server

pytestmark = [
    pytest.mark.server,
    # It brings its own PostgreSQL server, so one run is enough: the PostgreSQL one.
    pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="runs in the PostgreSQL run"),
    pytest.mark.skipif(not postgres_binaries_available(), reason="PostgreSQL server binaries not installed"),
]


def _get_until_ok(url: str, attempts: int = 10) -> list[int]:
    statuses = []
    for _ in range(attempts):
        statuses.append(requests.get(url, timeout=30).status_code)
        if statuses[-1] == 200:
            break
        time.sleep(0.5)
    return statuses


def _wait_for_outbox_empty() -> None:
    for _ in range(100):
        pending = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.status == "pending"))
        db.session.rollback()
        if pending == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the confirmation mail was not delivered")


def test_postgresql_restart_gives_503_then_recovers(tmp_path):
    pg = OwnPostgres(Path(tempfile.mkdtemp(prefix="eventapp-pg-outage.")))
    server = None
    try:
        app = migrated_app(pg.url)
        with app.app_context():
            event_id = make_event(capacity=5, title="再起動試験").id
            db.engine.dispose()
        server = start_server(pg.url, secret_key=TEST_SECRET, workers=2, log_path=tmp_path / "gunicorn.log",
                              extra_env={"SIGNUP_RATE_LIMIT": "1000000/minute"})
        signup_url = f"{server.url}/api/v1/events/{event_id}/registrations"
        # Every worker holds pooled connections before the outage, which then go stale.
        for _ in range(6):
            assert requests.get(f"{server.url}/", timeout=30).status_code == 200
        assert requests.post(signup_url, json=signup_body(0, "outage"), timeout=30).status_code == 201
        # Its confirmation mail goes out after the response; let that finish before pulling the plug.
        with app.app_context():
            _wait_for_outbox_empty()
            db.engine.dispose()

        pg.stop_server()

        for _ in range(3):  # both workers, stale pooled connections and refused new ones alike
            page = requests.get(f"{server.url}/", timeout=30)
            assert page.status_code == 503
            assert page.headers["Content-Type"].startswith("text/html")
            assert int(page.headers["Retry-After"]) > 0
            assert "ただいま一時的にご利用いただけません" in page.text
            assert "Traceback" not in page.text and "OperationalError" not in page.text
        api = requests.get(f"{server.url}/api/v1/events", timeout=30)
        assert api.status_code == 503
        assert api.json()["error"]["code"] == "unavailable"
        assert "Retry-After" in api.headers
        signup = requests.post(signup_url, json=signup_body(1, "outage"), timeout=30)
        assert (signup.status_code, signup.json()["error"]["code"]) == (503, "unavailable")

        pg.start_server()

        statuses = _get_until_ok(f"{server.url}/")
        assert statuses[-1] == 200, statuses
        # Recovered for good, on every worker: pages, the API and a sign-up.
        assert [requests.get(f"{server.url}/", timeout=30).status_code for _ in range(8)] == [200] * 8
        after = requests.post(signup_url, json=signup_body(2, "outage"), timeout=30)
        assert after.status_code == 201, after.text
        assert after.json()["registration"]["status"] == "confirmed"
        listing = requests.get(f"{server.url}/api/v1/events/{event_id}", timeout=30)
        assert listing.status_code == 200

        log = server.log()
        assert "database unavailable" in log  # operators see the outage in the log
        assert [line for line in server_errors(server) if "Traceback" in line] == []
    finally:
        if server is not None:
            server.stop()
        pg.destroy()
