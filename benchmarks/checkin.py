"""Check-in at the door: 10 scanners admit people of an event with 10,000 registrations.

For SQLite and PostgreSQL: a migrated throwaway database, gunicorn with 2 workers, 10,000 confirmed
registrations and 10 scanners sending `POST /api/v1/events/{id}/checkins` (bearer token) for 2,000
distinct tickets plus 200 repeat scans, each scanner once every 250 ms (`--interval`; a person at a
door takes seconds, so this is about ten times the real pace). The server-side latency is what
gunicorn's access log records for each request (`%(D)s`: from the parsed request until the response
is sent, so the whole app including rate limiting and auth); also the worker's CPU per scan (the
app's Server-Timing header) and what the scanners saw. Then 1,000 more scans with no pause give the
throughput ceiling ("flat out"). Checks that the database holds exactly one check-in per admitted
ticket. Target: server p95 < 20 ms.

Run alone from the project root: `.venv/bin/python -m benchmarks.checkin [--db SQLite]`.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from benchmarks._support import BENCH_SECRET, DATABASES, bench_app, percentiles, post_json, run_per_database
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
             "created_at": now, "updated_at": now, "name": f"岩手 太郎{n}", "furigana": "いわて たろう",
             "phone": "", "prefecture": "東京都", "iwate_relation": "none", "occupation": "", "skills": ""}
            for n, (pid, code) in enumerate(zip(person_ids, codes, strict=True))])
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


def _access_log_ms(path: Path, method: str, path_suffix: str) -> list[float]:
    """Request times gunicorn logged (`%(D)s` µs, from the parsed request to the response sent)."""
    times = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == method and parts[1].endswith(path_suffix) and parts[2] == "200":
            times.append(int(parts[3]) / 1000)
    return times


def _scan_phase(base_url: str, event_id: int, token: str, plan: list[str], *, scanners: int,
                interval_s: float) -> tuple[list[tuple[int, float, str, float]], float]:
    """`scanners` devices work through `plan`; each scans every `interval_s` (0: as fast as it can)."""
    path = f"/api/v1/events/{event_id}/checkins"
    headers = {"Authorization": f"Bearer {token}"}
    queues = [plan[i::scanners] for i in range(scanners)]

    def scanner(codes: list[str]) -> list[tuple[int, float, str, float]]:
        out = []
        next_due = time.perf_counter() + random.random() * interval_s  # devices are not in lockstep
        for code in codes:
            if interval_s:
                delay = next_due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                next_due += interval_s
            started = time.perf_counter()
            try:
                status, body, response_headers = post_json(base_url, path, {"code": code, "nonce": uuid.uuid4().hex},
                                                           headers=headers, timeout=60)
                timing = dict(part.strip().split(";dur=") for part in
                              response_headers.get("Server-Timing", "").split(",") if ";dur=" in part)
                out.append((status, time.perf_counter() - started, body.get("result", "") if status == 200 else "",
                            float(timing.get("cpu", 0)) / 1000))
            except OSError:
                out.append((0, time.perf_counter() - started, "", 0.0))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=scanners) as pool:
        results = [r for chunk in pool.map(scanner, queues) for r in chunk]
    return results, time.perf_counter() - started


def run(database: str, url: str, *, registrations: int, scans: int, repeats: int, scanners: int,
        workers: int, interval_s: float, flat_out_scans: int) -> dict:
    app = bench_app(url)
    event_id, codes, token = _prepare(app, registrations)
    chosen = random.Random(4).sample(codes, scans + flat_out_scans)
    paced_codes, flat_codes = chosen[:scans], chosen[scans:]
    plan = paced_codes + random.Random(5).sample(paced_codes, repeats)
    random.Random(6).shuffle(plan)
    access_log = Path(tempfile.mkstemp(prefix="eventapp-bench-access-", suffix=".log")[1])
    server = start_server(url, secret_key=BENCH_SECRET, workers=workers, extra_args=(
        "--access-logfile", str(access_log), "--access-logformat", "%(m)s %(U)s %(s)s %(D)s"))
    try:
        for _ in range(workers * 3):  # warm every worker: imports, DB connection, caches
            post_json(server.url, f"/api/v1/events/{event_id}/checkins", {"code": "", "nonce": uuid.uuid4().hex},
                      headers={"Authorization": f"Bearer {token}"})
        access_log.write_text("")
        results, wall = _scan_phase(server.url, event_id, token, plan, scanners=scanners, interval_s=interval_s)
        time.sleep(0.5)  # the last access-log lines
        server_ms = _access_log_ms(access_log, "POST", "/checkins")
        access_log.write_text("")
        flat, flat_wall = _scan_phase(server.url, event_id, token, flat_codes, scanners=scanners, interval_s=0)
        time.sleep(0.5)
        flat_server_ms = _access_log_ms(access_log, "POST", "/checkins")
    finally:
        server.stop()
        access_log.unlink(missing_ok=True)

    outcomes = Counter(r[2] for r in results)
    flat_outcomes = Counter(r[2] for r in flat)
    in_db = _checkins_in_db(app, event_id)
    ok = (outcomes.get("checked_in", 0) == scans and outcomes.get("already_checked_in", 0) == repeats
          and flat_outcomes.get("checked_in", 0) == flat_out_scans and in_db == scans + flat_out_scans)
    server = percentiles([ms / 1000 for ms in server_ms])
    cpu = percentiles([r[3] for r in results])
    client = percentiles([r[1] for r in results])
    flat_server = percentiles([ms / 1000 for ms in flat_server_ms])
    return {
        "database": database,
        "registrations": registrations,
        "scanners": scanners,
        "workers": workers,
        "scan every s": interval_s,
        "scans/s": round(len(results) / wall, 1),
        **{f"server {key} ms": round(value, 1) for key, value in server.items()},
        "server p95 < 20 ms": "yes" if server["p95"] < 20 else "no",
        **{f"cpu {key} ms": round(value, 1) for key, value in cpu.items()},
        **{f"client {key} ms": round(value, 1) for key, value in client.items()},
        "flat out scans/s": round(len(flat) / flat_wall, 1),
        "flat out server p50 ms": round(flat_server["p50"], 1),
        "flat out server p95 ms": round(flat_server["p95"], 1),
        "check-ins in DB": in_db,
        "errors": sum(1 for r in results + flat if r[0] != 200),
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
    # A person at the door takes seconds; a scanner every 250 ms is already ten times that pace.
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between one scanner's scans")
    parser.add_argument("--flat-out-scans", type=int, default=1_000,
                        help="then this many scans with no pause, for the throughput ceiling")
    parser.add_argument("--db", choices=[*DATABASES, "all"], default="all")
    args = parser.parse_args(argv if argv is not None else [])
    rows = run_per_database(args.db, lambda name, url: run(
        name, url, registrations=args.registrations, scans=args.scans, repeats=args.repeats,
        scanners=args.scanners, workers=args.workers, interval_s=args.interval,
        flat_out_scans=args.flat_out_scans), failure_column="check")
    return rows


if __name__ == "__main__":
    import sys

    rows = main(sys.argv[1:])
    sys.exit(0 if all(str(r.get("check", "")).startswith("OK") for r in rows) else 1)
