"""Helpers for the fault tests: scratch databases of the run's kind, apps bound to them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from eventapp import create_app
from eventapp.config import normalise_db_url
from tests.conftest import TEST_SECRET
from tests.live_server import PROJECT_ROOT

PG_SCRIPT = PROJECT_ROOT / "scripts" / "pg-test-server.sh"


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


class OwnPostgres:
    """A PostgreSQL server of this test's own (scripts/pg-test-server.sh), which the test may stop and start."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = subprocess.run([str(PG_SCRIPT), "start", str(directory)], check=True, capture_output=True,
                                  text=True, timeout=120).stdout.strip()
        self.port = (directory / "port").read_text().strip()

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = shutil.which("pg_ctl") or sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
        # The script runs the server as 'postgres' when we are root (initdb refuses root).
        owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*owner, str(pg_ctl), "-D", str(self.directory / "data"), *args], check=True,
                       capture_output=True, timeout=60)

    def stop_server(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start_server(self) -> None:
        self._pg_ctl("-l", str(self.directory / "server.log"), "-w", "-t", "60", "start", "-o",
                     f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off")

    def destroy(self) -> None:
        subprocess.run([str(PG_SCRIPT), "stop", str(self.directory)], capture_output=True, timeout=60)


def postgres_binaries_available() -> bool:
    return bool(shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")))
