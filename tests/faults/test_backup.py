"""`flask backup` copies a running SQLite database consistently; on PostgreSQL it points to pg_dump."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Person, Registration
from tests.conftest import TEST_SECRET
from tests.factories import make_event
from tests.faults.support import app_for, migrated_app, signup_body
from tests.live_server import PROJECT_ROOT, server_errors, start_server

FLASK = str(Path(sys.executable).parent / "flask")
on_postgresql = bool(os.environ.get("TEST_DATABASE_URL"))


def _flask_backup(database_url: str, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET}
    env.pop("TEST_DATABASE_URL", None)
    return subprocess.run([FLASK, "--app", "eventapp", "backup", str(path)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.server
@pytest.mark.skipif(on_postgresql, reason="SQLite backup; the PostgreSQL run checks the refusal instead")
def test_backup_while_signups_run_contains_every_committed_registration(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    app = migrated_app(db_url)
    with app.app_context():
        event_id = make_event(capacity=15, title="バックアップ試験").id
        db.engine.dispose()
    server = start_server(db_url, secret_key=TEST_SECRET, workers=2, log_path=tmp_path / "gunicorn.log",
                          extra_env={"SIGNUP_RATE_LIMIT": "1000000/minute"})
    committed: list[tuple[float, str]] = []  # (time the 201 arrived, manage token)
    failures: list[str] = []
    stop = threading.Event()
    counter = iter(range(10**6))
    lock = threading.Lock()

    def sign_up_until_stopped() -> None:
        session = requests.Session()
        while not stop.is_set():
            with lock:
                n = next(counter)
            response = session.post(f"{server.url}/api/v1/events/{event_id}/registrations",
                                    json=signup_body(n, "backup"), timeout=60)
            if response.status_code == 201:
                committed.append((time.monotonic(), response.json()["registration"]["manage_token"]))
            else:
                failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=sign_up_until_stopped) for _ in range(6)]
    backup_path = tmp_path / "backup.sqlite3"
    try:
        for thread in threads:
            thread.start()
        while len(committed) < 30 and not failures:
            time.sleep(0.05)
        backup_started = time.monotonic()
        result = _flask_backup(db_url, backup_path)
        time.sleep(0.3)  # sign-ups keep coming after the copy
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.stop()

    assert result.returncode == 0, result.stderr
    assert "backup written to" in result.stdout
    assert failures == []
    before = {token for at, token in committed if at < backup_started}
    assert len(before) >= 30

    with sqlite3.connect(backup_path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file

    # Restore = use the copy as DATABASE_URL.
    restored = app_for(f"sqlite:///{backup_path}")
    with restored.app_context():
        rows = db.session.execute(select(Registration, Person).join(Person)).all()
        in_backup = {registration.manage_token for registration, _ in rows}
        assert before <= in_backup, f"{len(before - in_backup)} committed registrations missing"
        assert in_backup <= {token for _, token in committed}
        statuses = [registration.status for registration, _ in rows]
        # A snapshot of a consistent moment: seats filled first, then the queue.
        assert statuses.count("confirmed") == min(15, len(rows))
        assert all(person.email.startswith("backup") for _, person in rows)
        db.engine.dispose()
    assert server_errors(server) == []


@pytest.mark.skipif(not on_postgresql, reason="refusal message for PostgreSQL")
def test_backup_on_postgresql_refuses_and_points_to_pg_dump(database_url, tmp_path):
    result = _flask_backup(database_url, tmp_path / "copy.sqlite3")
    assert result.returncode != 0
    assert "pg_dump" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "copy.sqlite3").exists()


@pytest.mark.skipif(on_postgresql, reason="SQLite-only, runs in the SQLite run")
def test_backup_refuses_to_overwrite_an_existing_file(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'small.sqlite3'}"
    migrated_app(db_url)
    existing = tmp_path / "existing.sqlite3"
    existing.write_bytes(b"keep me")
    result = _flask_backup(db_url, existing)
    assert result.returncode != 0
    assert "already exists" in result.stderr
    assert existing.read_bytes() == b"keep me"
