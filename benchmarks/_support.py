"""Shared pieces for benchmarks: a migrated throwaway database (SQLite file or PostgreSQL server)
and latency statistics. The gunicorn launcher is the one the tests use (tests/live_server.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

BENCH_SECRET = "benchmark-secret-key-not-for-production"
FLASK = Path(sys.executable).parent / "flask"


def migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": BENCH_SECRET}
    subprocess.run([str(FLASK), "--app", "eventapp", "db", "upgrade"], cwd=PROJECT_ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    """A migrated SQLite file in a temporary directory."""
    directory = tempfile.mkdtemp(prefix="eventapp-bench-")
    try:
        url = f"sqlite:///{directory}/bench.sqlite3"
        migrate(url)
        yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A migrated database on a throwaway PostgreSQL server (scripts/pg-test-server.sh)."""
    directory = tempfile.mkdtemp(prefix="eventapp-bench-pg-")
    script = PROJECT_ROOT / "scripts" / "pg-test-server.sh"
    started = subprocess.run([str(script), "start", directory], capture_output=True, text=True)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"could not start PostgreSQL: {started.stderr.strip()}")
        url = started.stdout.strip().splitlines()[-1]
        migrate(url)
        yield url
    finally:
        subprocess.run([str(script), "stop", directory], capture_output=True)


DATABASES = {"SQLite": sqlite_database, "PostgreSQL": postgres_database}


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    if len(samples) < 2:
        value = samples[0] * 1000 if samples else 0.0
        return {"p50": value, "p95": value, "p99": value}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


def bench_app(database_url: str):
    """An app object for setting up data and checking results directly in the database."""
    from eventapp import create_app

    return create_app({"SECRET_KEY": BENCH_SECRET, "SQLALCHEMY_DATABASE_URI": database_url,
                       "MAIL_BACKEND": "null"})


def run_per_database(selected: str, run, *, failure_column: str) -> list[dict]:
    """Call `run(name, url)` for each database `selected` ("all" or one name) and print its row.

    A database that cannot be started (e.g. no PostgreSQL binaries) gives a row saying so in
    `failure_column`, and the other database's result is kept.
    """
    rows = []
    for name, database in DATABASES.items():
        if selected not in ("all", name):
            continue
        try:
            with database() as url:
                row = run(name, url)
        except Exception as exc:
            row = {"database": name, failure_column: f"not run: {exc}"}
        print(f"{name:10} " + "  ".join(f"{k}={v}" for k, v in row.items() if k != "database"), flush=True)
        rows.append(row)
    return rows


def post_json(base_url: str, path: str, body: dict, *, timeout: float = 120.0,
              headers: dict | None = None) -> tuple[int, dict, dict]:
    """One POST on a fresh connection with http.client: (status, JSON body, headers).

    The load generator shares the 2 cores with the server, so it is kept lean (`requests` costs the
    client several times more CPU per request). gunicorn's sync workers close every connection
    after one response anyway, so keep-alive would not be used.
    """
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", path, body=json.dumps(body).encode(),
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        payload = json.loads(raw) if raw and response.getheader("Content-Type", "").startswith("application/json") else {}
        return response.status, payload, dict(response.getheaders())
    finally:
        connection.close()


@contextlib.contextmanager
def mail_sender(server_env: dict) -> Iterator[subprocess.Popen]:
    """`flask send-mail --watch` next to the server (MAIL_DELIVERY=sender) under the idle CPU
    scheduling class (`chrt --idle 0`, as the README's service line): it runs only when the cores
    would otherwise be idle, so in a rush the sign-ups go first and the mail follows seconds later.
    (`nice 10` was not enough: a niced process still takes its share of a busy core.)"""
    priority = ["chrt", "--idle", "0"] if shutil.which("chrt") else ["nice", "-n", "19"]
    process = subprocess.Popen([*priority, str(FLASK), "--app", "eventapp", "send-mail", "--watch",
                                "--interval", "0.5"], cwd=PROJECT_ROOT, env=server_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
