"""Check-in at the door: 10 scanners admit people of an event with 10,000 registrations.

For SQLite and PostgreSQL: a migrated throwaway database, gunicorn with 2 workers, 10,000 confirmed
registrations, 10 concurrent scanners sending `POST /api/v1/events/{id}/checkins` (bearer token,
keep-alive) for 2,000 distinct tickets plus 200 repeat scans. Prints p50/p95/p99 of the server-side
latency (the app's own `Server-Timing` header: parsing, auth, the check-in, commit; no queueing), of
the worker's CPU time per scan (meaningful also on a busy machine) and of the latency the scanners
saw (plus waiting for a free worker), and checks that the database holds
exactly one check-in per admitted ticket. Target: server p95 < 20 ms.

Run alone from the project root: `.venv/bin/python -m benchmarks.checkin [--db SQLite]`.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import func, insert, select

from benchmarks._support import BENCH_SECRET, DATABASES, bench_app, percentiles, run_per_database
from tests.live_server import start_server

TITLE = "Check-in latency (gunicorn, 10,000 registrations, 10 scanners)"


def _prepare(app, registrations: int) -> tuple[int, list[str], str]:
    """An event with `registrations` confirmed people (bulk inserted) and a check-in user's token."""
    from eventapp.extensions import db
    from eventapp.formatting import JST
    from eventapp.models import Person, Registration
    from eventapp.services.accounts import create_token, create_user
    from eventapp.services.events import create_event
    from eventapp.services.privacy import current_notice
    from eventapp.services.tickets import make_manage_token, make_ticket_code

    starts = (datetime.now(JST) + timedelta(days=1)).replace(hour=13, minute=0, second=0, microsecond=0)
    with app.app_context():
        event = create_event({
            "slug": f"bench-checkin-{int(time.time() * 1000)}", "kind": "fieldwork", "status": "published",
            "title": "夏油温泉フィールドワーク(受付ベンチマーク)", "starts_at": starts,
            "ends_at": starts + timedelta(hours=5), "capacity": registrations, "venue_name": "夏油温泉観光ホテル",
        })
        create_user(f"bench-desk-{event.id}@example.jp", "checkin", "bench-password-123", "受付")
        db.session.flush()
        token = create_token(f"bench-desk-{event.id}@example.jp")
        version = current_notice().version
        now = datetime.now(UTC)
        tag = uuid.uuid4().hex[:8]
        db.session.execute(insert(Person), [
            {"email": f"b{tag}-{i}@example.com", "name": f"岩手 太郎{i}", "furigana": "いわて たろう",
             "phone": "", "prefecture": "東京都", "iwate_relation": "none", "occupation": "", "skills": "",
             "created_at": now, "updated_at": now} for i in range(registrations)])
        person_ids = db.session.execute(select(Person.id).where(Person.email.like(f"b{tag}-%"))).scalars().all()
        codes = [make_ticket_code(event.id) for _ in person_ids]
        db.session.execute(insert(Registration), [
            {"event_id": event.id, "person_id": pid, "status": "confirmed", "confirmed_at": now,
             "manage_token": make_manage_token(), "ticket_code": code, "consent_version": version,
             "consent_at": now, "source": "web", "staff_note": "", "cancelled_by": "",
             "created_at": now, "updated_at": now} for pid, code in zip(person_ids, codes, strict=True)])
        db.session.commit()
        return event.id, codes, token


def _checkins_in_db(app, event_id: int) -> int:
    from eventapp.extensions import db
    from eventapp.models import CheckIn, Registration

    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(CheckIn).join(Registration)
                               .where(Registration.event_id == event_id)).scalar_one()
        db.session.remove()
        db.engine.dispose()
    return n


def run(database: str, url: str, *, registrations: int, scans: int, repeats: int, scanners: int,
        workers: int) -> dict:
    app = bench_app(url)
    event_id, codes, token = _prepare(app, registrations)
    chosen = random.Random(4).sample(codes, scans)
    plan = chosen + random.Random(5).sample(chosen, repeats)
    server = start_server(url, secret_key=BENCH_SECRET, workers=workers)
    try:
        endpoint = f"{server.url}/api/v1/events/{event_id}/checkins"
        headers = {"Authorization": f"Bearer {token}"}
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "session"):
                local.session = requests.Session()
                local.session.headers.update(headers)
            return local.session

        for _ in range(workers * 3):  # warm every worker: imports, DB connection, caches
            session().get(f"{endpoint}?after=0", timeout=30)

        def scan(code: str) -> tuple[int, float, str, float, float]:
            started = time.perf_counter()
            server_s = cpu_s = 0.0
            try:
                response = session().post(endpoint, json={"code": code, "nonce": uuid.uuid4().hex}, timeout=60)
                status = response.status_code
                result = response.json().get("result", "") if status == 200 else ""
                timing = dict(part.strip().split(";dur=") for part in
                              response.headers.get("Server-Timing", "").split(",") if ";dur=" in part)
                server_s = float(timing.get("app", 0)) / 1000
                cpu_s = float(timing.get("cpu", 0)) / 1000
            except requests.RequestException:
                status, result = 0, ""
            return status, time.perf_counter() - started, result, server_s, cpu_s

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=scanners) as pool:
            results = list(pool.map(scan, plan))
        wall = time.perf_counter() - started
    finally:
        server.stop()

    outcomes = Counter(r[2] for r in results)
    in_db = _checkins_in_db(app, event_id)
    ok = outcomes.get("checked_in", 0) == scans and outcomes.get("already_checked_in", 0) == repeats and in_db == scans
    server = percentiles([r[3] for r in results])
    cpu = percentiles([r[4] for r in results])
    client = percentiles([r[1] for r in results])
    return {
        "database": database,
        "registrations": registrations,
        "scanners": scanners,
        "workers": workers,
        "scans/s": round(len(results) / wall, 1),
        **{f"server {key} ms": round(value, 1) for key, value in server.items()},
        "server p95 < 20 ms": "yes" if server["p95"] < 20 else "no",
        **{f"cpu {key} ms": round(value, 1) for key, value in cpu.items()},
        **{f"client {key} ms": round(value, 1) for key, value in client.items()},
        "check-ins in DB": in_db,
        "errors": sum(1 for r in results if r[0] != 200),
        "check": "OK (one check-in per ticket)" if ok else "FAILED",
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=10_000)
    parser.add_argument("--scans", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--scanners", type=int, default=10)
    # One worker per core: the check-in is CPU-bound Python, more workers only time-slice each other.
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", choices=[*DATABASES, "all"], default="all")
    args = parser.parse_args(argv if argv is not None else [])
    rows = run_per_database(args.db, lambda name, url: run(
        name, url, registrations=args.registrations, scans=args.scans, repeats=args.repeats,
        scanners=args.scanners, workers=args.workers), failure_column="check")
    return rows


if __name__ == "__main__":
    import sys

    rows = main(sys.argv[1:])
    sys.exit(0 if all(str(r.get("check", "")).startswith("OK") for r in rows) else 1)
