"""Sign-up burst: many participants press 申し込む at once for a popular event.

For SQLite and PostgreSQL: a migrated throwaway database, gunicorn with 4 workers, an event with
50 seats and 500 sign-ups from 32 concurrent clients through `POST /api/v1/events/{id}/registrations`.
Prints sign-ups per second, p50/p95/p99 latency, confirmed / waitlisted / errors and the oversell
check (confirmed ≤ capacity in the database, waiting-list places 1..n without gaps). In the same run
and with the same clients, the rate of `GET /healthz` (one `SELECT 1`: the server's ceiling for a
trivial request) and the ratio between the two; the worker CPU per sign-up comes from the
Server-Timing header (SERVER_TIMING=1), which stays meaningful when the machine is busy.

Run alone from the project root: `.venv/bin/python -m benchmarks.signup_race [--db SQLite]`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import requests
from sqlalchemy import func, select

from benchmarks._support import BENCH_SECRET, DATABASES, bench_app, percentiles, run_per_database
from tests.live_server import start_server

TITLE = "Sign-up burst (gunicorn, real database)"


def _create_event(app, capacity: int) -> int:
    from eventapp.extensions import db
    from eventapp.formatting import JST
    from eventapp.services.events import create_event

    starts = (datetime.now(JST) + timedelta(days=30)).replace(hour=13, minute=0, second=0, microsecond=0)
    with app.app_context():
        event = create_event({
            "slug": f"bench-{int(time.time() * 1000)}", "kind": "fieldwork", "status": "published",
            "title": "岩手・花巻でブドウ収穫体験フィールドワーク", "starts_at": starts,
            "ends_at": starts + timedelta(hours=5), "capacity": capacity, "venue_name": "かんたはうす",
        })
        db.session.commit()
        return event.id


def _db_counts(app, event_id: int) -> dict[str, int]:
    from eventapp.extensions import db
    from eventapp.models import Registration

    with app.app_context():
        rows = db.session.execute(select(Registration.status, func.count())
                                  .where(Registration.event_id == event_id).group_by(Registration.status)).all()
        db.session.remove()
        db.engine.dispose()
    return dict(rows)


def run_burst(database: str, url: str, *, signups: int, capacity: int, clients: int, workers: int) -> dict:
    app = bench_app(url)
    event_id = _create_event(app, capacity)
    server = start_server(url, secret_key=BENCH_SECRET, workers=workers, extra_env={"SERVER_TIMING": "1"})
    try:
        endpoint = f"{server.url}/api/v1/events/{event_id}/registrations"
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            return local.session

        for _ in range(workers * 2):  # every worker has imported everything and opened a connection
            session().get(f"{server.url}/api/v1/events/{event_id}", timeout=30)

        cpu_ms: list[float] = []

        def sign_up(i: int) -> tuple[int, float, dict]:
            body = {"name": f"岩手 太郎{i}", "furigana": "いわて たろう", "email": f"bench{i}@example.com",
                    "consent_privacy": True}
            started = time.perf_counter()
            try:
                response = session().post(endpoint, json=body, timeout=120)
                status, payload = response.status_code, response.json() if response.status_code == 201 else {}
                cpu_ms.extend(server_cpu_ms(response))
            except requests.RequestException:
                status, payload = 0, {}
            return status, time.perf_counter() - started, payload

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = list(pool.map(sign_up, range(signups)))
        wall = time.perf_counter() - started
        trivial_rate, trivial_errors = trivial_requests(server.url, session, clients=clients, requests_n=signups * 2)
    finally:
        server.stop()

    statuses = Counter(status for status, _, _ in results)
    created = [payload["registration"] for status, _, payload in results if status == 201]
    told = sorted(r["waitlist_position"] for r in created if r["status"] == "waitlisted")
    in_db = _db_counts(app, event_id)
    confirmed, waitlisted = in_db.get("confirmed", 0), in_db.get("waitlisted", 0)
    oversell_ok = (confirmed == capacity and confirmed + waitlisted == len(created)
                   and told == list(range(1, waitlisted + 1)))
    return {
        "database": database,
        "sign-ups": signups,
        "clients": clients,
        "workers": workers,
        "sign-ups/s": round(len(created) / wall, 1),
        **{key: round(value, 1) for key, value in percentiles([t for _, t, _ in results]).items()},
        "confirmed": confirmed,
        "waitlisted": waitlisted,
        "errors": signups - statuses.get(201, 0),
        "5xx": sum(n for status, n in statuses.items() if status >= 500),
        "CPU ms/sign-up": round(statistics.median(cpu_ms), 1) if cpu_ms else "",
        "/healthz req/s": round(trivial_rate, 1),
        "ratio": f"{len(created) / wall / trivial_rate:.2f}" if trivial_rate else "",
        "healthz errors": trivial_errors,
        "target (PostgreSQL)": ("≥100/s, p95 ≤ 200 ms: " + (
            "met" if len(created) / wall >= 100 and percentiles([t for _, t, _ in results])["p95"] <= 200
            else "not met")) if database == "PostgreSQL" else "-",
        "oversell check": "OK (no oversell, queue 1..n)" if oversell_ok else "FAILED",
    }


def server_cpu_ms(response: requests.Response) -> list[float]:
    """The worker's CPU milliseconds from `Server-Timing: …, cpu;dur=12.3` (none if absent)."""
    found = re.search(r"cpu;dur=([0-9.]+)", response.headers.get("Server-Timing", ""))
    return [float(found.group(1))] if found else []


def trivial_requests(base_url: str, session, *, clients: int, requests_n: int) -> tuple[float, int]:
    """Rate of `GET /healthz` from the same clients: what this server manages for a near-empty request."""
    def one(_: int) -> bool:
        try:
            return session().get(f"{base_url}/healthz", timeout=60).status_code == 200
        except requests.RequestException:
            return False

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        ok = list(pool.map(one, range(requests_n)))
    return sum(ok) / (time.perf_counter() - started), ok.count(False)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signups", type=int, default=500)
    parser.add_argument("--capacity", type=int, default=50)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--db", choices=[*DATABASES, "all"], default="all")
    args = parser.parse_args(argv if argv is not None else [])
    return run_per_database(args.db, lambda name, url: run_burst(
        name, url, signups=args.signups, capacity=args.capacity, clients=args.clients, workers=args.workers),
        failure_column="oversell check")


if __name__ == "__main__":
    import sys

    rows = main(sys.argv[1:])
    sys.exit(0 if all(str(r.get("oversell check", "")).startswith("OK") for r in rows) else 1)
